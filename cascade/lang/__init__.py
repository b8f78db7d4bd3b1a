"""The language: grammar loading and parsing, the frozen IR, the checker and its semantics, shapes,
evaluation order, the operator table and printing. Imports only the base modules (errors, resources)."""
