"""Method B (Vykopal et al. 2025): the seven configurations, the stack of a language module under a task
module, and the registry of language modules with borrowing by URIEL distance."""
