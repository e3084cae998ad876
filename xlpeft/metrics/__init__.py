"""Scores: classification (accuracy, macro-F1) and the text-to-text tasks' community metrics (seqeval
entities, SQuAD exact match and F1)."""
