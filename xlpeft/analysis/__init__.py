"""Analysis of evaluation results: plots (and, later, linguistic-distance correlations)."""
