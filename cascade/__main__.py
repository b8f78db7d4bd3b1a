"""`python -m cascade` is the `cascade` command."""

from .cli import main

raise SystemExit(main())
