"""Rewrites of whole cascades that keep what is computed: `reduce_passes` (fewer passes over a
rank, with a sympy certificate), the isomorphism check and the differential verifier they use."""
