"""The model zoo: small model organisms the book trains itself, committed with their recipes.

No machine the book runs on in CI can download weights, so every chapter defaults to an
organism from here. Each organism has a recipe (:mod:`lib.zoo.recipes`, listed in
:mod:`lib.zoo.registry`; a recipe may fine-tune a parent organism), a folder
``lib/organisms/<name>/`` of what training produced, every file hashed in its manifest and
verified on load (:mod:`lib.zoo.store`), and the engine that trains it deterministically
(:mod:`lib.zoo.training`). Retrain one with ``python -m lib.zoo train NAME``.

Introduced in chapter 'Induction heads' (chapters/induction_heads.py); the appendix chapter
(chapters/zoo.py) shows every recipe's training curve.
"""

from lib.zoo.recipe import Recipe
from lib.zoo.registry import ORGANISMS, recipe
from lib.zoo.store import (
    ORGANISMS_DIR,
    add_artifact,
    artifact,
    extend_log,
    load,
    manifest,
    sha256,
    state_dict,
    verify,
)
from lib.zoo.training import train, train_and_save

__all__ = [
    "ORGANISMS",
    "ORGANISMS_DIR",
    "Recipe",
    "add_artifact",
    "artifact",
    "extend_log",
    "load",
    "manifest",
    "recipe",
    "sha256",
    "state_dict",
    "train",
    "train_and_save",
    "verify",
]
