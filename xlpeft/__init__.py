"""xlpeft: cross-lingual transfer with parameter-efficient modules on frozen multilingual language models."""

__version__ = "0.1.0"
