"""Frozen language models: loading (hub, local directory, embedded offline copies) and their facts."""

from xlpeft.backbones.loading import Backbone, load_backbone

__all__ = ["Backbone", "load_backbone"]
