"""Mappings: mapping files (read, validate, write), binding a mapping into loop trees with storage
and loads (`schedule`), and rendering them as a loop nest. Imports `lang` and the base modules."""
