"""Soft prompt modules: the L x d prompt, its initialisations and reparameterizations."""

from xlpeft.prompts.soft_prompt import SoftPrompt, initial_prompt

__all__ = ["SoftPrompt", "initial_prompt"]
