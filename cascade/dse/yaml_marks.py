"""YAML with positions: a config file -> plain dicts and lists that remember where each value was.

`load_marked(text, file)` composes the YAML node tree and builds `Marked` dicts and lists whose
`where(key)` gives `file:line:col` of a key's value (and `where()` of the container itself), so
that every config error can name its place. Scalars are converted as `yaml.safe_load` would.
"""

from __future__ import annotations

from typing import Any

from ..errors import CascadeError


class MarkedDict(dict):
    """A YAML mapping; `where(key)` is the place of that key's value, `where()` the mapping's."""

    file: str = ""
    mark: tuple[int, int] = (0, 0)
    marks: dict[Any, tuple[int, int]]

    def where(self, key: Any = None) -> str:
        line, col = self.marks.get(key, self.mark) if key is not None else self.mark
        return f"{self.file}:{line}:{col}"


class MarkedList(list):
    """A YAML sequence; `where(i)` is the place of item i, `where()` the sequence's."""

    file: str = ""
    mark: tuple[int, int] = (0, 0)
    marks: list[tuple[int, int]]

    def where(self, index: int | None = None) -> str:
        line, col = self.marks[index] if index is not None and index < len(self.marks) else self.mark
        return f"{self.file}:{line}:{col}"


def _mark(node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1


def load_marked(text: str, file: str) -> Any:
    """The YAML document as `MarkedDict`/`MarkedList`/scalars; syntax errors name file:line:col."""
    import yaml

    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        raise CascadeError(f"{where}: not valid YAML: {getattr(exc, 'problem', None) or exc}") from None
    if node is None:
        return None
    return _build(node, file, yaml.SafeLoader(""))


def _build(node, file: str, loader) -> Any:
    import yaml

    if isinstance(node, yaml.MappingNode):
        out = MarkedDict()
        out.file, out.mark, out.marks = file, _mark(node), {}
        for key_node, value_node in node.value:
            key = _build(key_node, file, loader)
            if isinstance(key, (dict, list)):
                raise CascadeError(f"{file}:{_mark(key_node)[0]}:{_mark(key_node)[1]}: a key must be a plain name")
            if key in out:
                line, col = _mark(key_node)
                raise CascadeError(f"{file}:{line}:{col}: '{key}' is given twice")
            out[key] = _build(value_node, file, loader)
            out.marks[key] = _mark(value_node)
        return out
    if isinstance(node, yaml.SequenceNode):
        seq = MarkedList(_build(item, file, loader) for item in node.value)
        seq.file, seq.mark, seq.marks = file, _mark(node), [_mark(item) for item in node.value]
        return seq
    return loader.construct_object(node, deep=True)
