"""One module per `cascade` subcommand; shared helpers for them live in `common.py`.
Imports anything below it (`api`, `demo`, `plot`, the stages); nothing but `cli` imports it."""
