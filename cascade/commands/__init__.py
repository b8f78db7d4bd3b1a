"""One module per `cascade` subcommand; shared helpers for them live in `common.py`."""
