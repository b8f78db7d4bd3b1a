"""Other tools' formats brought into cascade (TeAAL specs). Imports `lang`, `mapping` and the base
modules; what it produces goes through the ordinary parser and checker."""
