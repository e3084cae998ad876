"""Training: configs, regimes (prompt / joint / full) and the loop; language modules on raw text (method B)."""
