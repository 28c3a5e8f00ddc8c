"""Datasets: reading and validating labelled configurations, sampling and labelling."""
