"""Mapping search: the best mappings of a cascade on a target (`search`), spatial or grid.
Imports `lang`, `mapping`, `model` and the base modules; never `api` or `commands`."""

from .dispatch import search

__all__ = ["search"]
