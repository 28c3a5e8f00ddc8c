"""Stage 5: crystals — map configurations onto the reference, enumerate supercell clusters, featurize."""
