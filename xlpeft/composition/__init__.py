"""Composition: how a soft prompt is spliced into a frozen model's input, uncached and over cached text states."""
