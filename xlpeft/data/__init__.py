"""Datasets, the language registry and few-shot sampling."""
