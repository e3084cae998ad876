"""Training: configs, regimes (prompt / joint / full) and the loop."""
