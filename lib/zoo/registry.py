"""The zoo's registry: every organism's name and the module of its recipe.

Recipes are imported only when asked for (training, the zoo appendix), so loading an organism
never imports the analyses a recipe's training log uses.
"""

from __future__ import annotations

import importlib

from lib.zoo.recipe import Recipe

ORGANISMS: dict[str, str] = {
    "induction-2l": "induction",
    "induction-2l-softmax1": "induction_softmax1",
    "language-4l": "language",
    "chat-4l": "chat",
    "fewshot-4l": "fewshot",
    "sort-4l": "sorting",
}
"""Organism name -> its recipe module under ``lib.zoo.recipes`` (a recipe may name a parent)."""


def unknown(name: str) -> ValueError:
    return ValueError(f"{name!r} is not a zoo organism; the zoo has: {', '.join(ORGANISMS)}")


def recipe(name: str) -> Recipe:
    """The recipe of a zoo organism; an unknown name raises a ``ValueError`` listing the zoo."""
    if name not in ORGANISMS:
        raise unknown(name)
    found = importlib.import_module(f"lib.zoo.recipes.{ORGANISMS[name]}").RECIPE
    assert found.name == name, f"lib.zoo.recipes.{ORGANISMS[name]} holds the recipe of {found.name!r}"
    return found
