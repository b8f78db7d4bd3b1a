"""TeAAL import: a TeAAL YAML spec (einsum and mapping sections) -> a `.einsum` cascade and a
mapping file. Imports `lang`, `mapping` and the base modules."""
