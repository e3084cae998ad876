"""Training objectives: verbalizer classification with the LM head."""

from xlpeft.objectives.verbalizer import Verbalizer

__all__ = ["Verbalizer"]
