"""Training objectives: verbalizer classification with the LM head."""

from xlpeft.objectives.verbalizer import Verbalizer, label_words

__all__ = ["Verbalizer", "label_words"]
