"""Analysis of a checked cascade: the iteration-space graph, pass counting and its report.
Imports `lang` and the base modules."""
