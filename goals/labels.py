"""Canonical names of the learning-rate strategies and search directions.

Every module, table and figure uses these identifiers, in this order, so a strategy keeps one
name, one colour and one marker across the whole companion.
"""

from __future__ import annotations

#: Strategy identifier -> label shown in figures and tables (EXPERIMENTS.md, 11 strategies).
STRATEGY_LABELS: dict[str, str] = {
    "goals": "GOALS (GOS-LSC)",
    "gos-ls": "GOS-LS",
    "gols-i": "GOLS-I",
    "gols-back": "GOLS-Back",
    "sls-armijo": "SLS-Armijo",
    "constant": "Constant",
    "constant-x10": "Constant ×10",
    "constant-x0.1": "Constant ×0.1",
    "step-decay": "Step decay",
    "cosine": "Cosine",
    "cosine-restarts": "Cosine restarts",
}

#: Strategies whose learning rate comes from a line search.
LINE_SEARCH_STRATEGIES: tuple[str, ...] = ("goals", "gos-ls", "gols-i", "gols-back", "sls-armijo")

#: Search direction identifier -> label.
DIRECTION_LABELS: dict[str, str] = {"sgd": "SGD", "rmsprop": "RMSprop", "adam": "Adam"}

STRATEGIES: tuple[str, ...] = tuple(STRATEGY_LABELS)
DIRECTIONS: tuple[str, ...] = tuple(DIRECTION_LABELS)
