"""Analysis: PES cuts, error statistics and plots."""
