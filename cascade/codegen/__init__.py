"""Code generators: `numpy_exec` turns a `MappedCascade` into a self-contained NumPy module."""
