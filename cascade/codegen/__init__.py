"""Code generators: `numpy_exec` turns a `MappedCascade` into a self-contained NumPy module, and
`loader` imports generated source. Imports `lang`, `mapping` and the base modules."""
