"""Shared pytest options and fixtures.

`--update-golden` rewrites the golden files under tests/golden/ (text the user sees: `cascade
map` output, generated modules) instead of comparing with them; review the diff before
committing it.
"""

from __future__ import annotations

from pathlib import Path

import pytest

GOLDEN = Path(__file__).resolve().parent / "golden"


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--update-golden", action="store_true", default=False,
                     help="rewrite the golden files under tests/golden/ instead of comparing with them")


@pytest.fixture
def golden(request: pytest.FixtureRequest):
    """`golden(relative_path, text)`: compare `text` with tests/golden/<relative_path>, or
    write it there under --update-golden."""
    update = request.config.getoption("--update-golden")

    def check(relative: str, text: str) -> None:
        path = GOLDEN / relative
        if update:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
            return
        if not path.exists():
            pytest.fail(f"no golden file {path.relative_to(GOLDEN.parent)}: run pytest with --update-golden "
                        "to create it, then review it")
        assert text == path.read_text(), (f"output differs from {path.relative_to(GOLDEN.parent)}; if the change "
                                          "is intended, rerun with --update-golden and review the diff")

    return check
