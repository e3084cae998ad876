"""Experiments: run directories (what training writes, what evaluation reads)."""
