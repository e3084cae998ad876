"""Cross-lingual task datasets beyond SIB-200, read from ``<DATA>/tasks/<name>/`` (see ``common``).

One module per dataset: its reader (``load(language, split, data_dir=None)``), its languages (in the
dataset's own codes), the language transfer starts from, its splits, where the files come from
(``ORIGIN``) and the SIB-200 codes of the languages SIB-200 also covers (``FLORES``). Each module's
docstring says where its English source training data come from when the local copy has none (XQuAD,
AmericasNLI). The tasks built on them, and their registry, are in :mod:`xlpeft.tasks`; tasks defined in YAML
(NusaX, XCOPA, ...) read their files through ``xlpeft.tasks.defined`` instead.
"""
