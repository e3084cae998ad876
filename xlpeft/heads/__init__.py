"""Prompt splicing and prediction heads: where the prompt goes in a sequence, the classifier / tagger /
generator built on a backbone, and the text cache of a frozen model."""
