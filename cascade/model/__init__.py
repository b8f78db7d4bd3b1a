"""Targets and cost models: traffic (exact, symbolic), compute and latency on spatial and grid
targets. Imports `lang`, `mapping` and the base modules; never `codegen`."""
