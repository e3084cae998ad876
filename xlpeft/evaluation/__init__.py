"""Evaluation: predictions (cached multi-prompt or ordinary), metrics, the results table."""
