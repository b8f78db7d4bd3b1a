"""Reading the project's input files (specs, mappings, targets, TeAAL specs): file -> text -> data.

One place owns how such a file is read: at most `MAX_INPUT_BYTES` (so `/dev/zero` or a huge file
is refused, not read until memory runs out; a missing, unreadable or non-UTF-8 file is the
caller's own error naming the file), and the bounded safe YAML loader: no tags constructed,
nesting at most `MAX_NESTING` deep, at most `MAX_YAML_NODES` nodes after alias expansion (a
"billion laughs" file is refused before anything walks it), duplicate keys refused with their
place, and a syntax error reported as `file:line:col: not valid YAML: <problem>`; never a traceback.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .limits import MAX_INPUT_BYTES, MAX_NESTING, MAX_YAML_NODES, human_bytes, quote


class InputTooLarge(OSError):
    """A file over MAX_INPUT_BYTES (or an endless device such as /dev/zero)."""


def read_bounded(path: str | Path, limit: int = MAX_INPUT_BYTES) -> bytes:
    """The bytes of a file, reading at most `limit` + 1 of them; more is `InputTooLarge`."""
    with open(path, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise InputTooLarge(f"larger than the {human_bytes(limit)} an input file may have")
    return data


def read_input(path: str | Path, what: str, error: type[Exception]) -> str:
    """The UTF-8 text of an input file; failing that, `error('path: cannot read <what>: why')`."""
    if not isinstance(path, (str, Path)):
        raise error(f"{quote(path)}: a {what} is given as a file path (str or pathlib.Path)")
    try:
        return read_bounded(path).decode("utf-8")
    except InputTooLarge as exc:
        raise error(f"{path}: cannot read {what}: {exc}") from None
    except OSError as exc:
        raise error(f"{path}: cannot read {what}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise error(f"{path}: cannot read {what}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None


def load_yaml(text: str, file: str, error: type[Exception]) -> Any:
    """Bounded `yaml.safe_load(text)`; any problem becomes `error('file:line:col: ...')`."""
    import yaml

    deep = _flow_too_deep(text)
    if deep is not None:
        raise error(f"{file}:{deep[0]}:{deep[1]}: nested more than {MAX_NESTING} levels deep")
    loader = _bounded_loader()(text)
    try:
        node = loader.get_single_node()
        if node is None:
            return None
        _check_expanded_size(node, file, error)
        return loader.construct_document(node)
    except _Refused as exc:
        raise error(f"{_where(file, exc.mark)}: {exc.message}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise error(f"{_where(file, mark)}: not valid YAML: {getattr(exc, 'problem', None) or quote(str(exc))}") from None
    except RecursionError:
        raise error(f"{file}: not valid YAML: nested too deeply (at most {MAX_NESTING} levels)") from None
    finally:
        loader.dispose()


def _flow_too_deep(text: str) -> tuple[int, int] | None:
    """(line, col) where `[`/`{` brackets first nest past MAX_NESTING, found in one linear pass
    before PyYAML's scanner (which looks ahead over every open bracket: quadratic on a bomb)."""
    if text.count("[") + text.count("{") <= MAX_NESTING:
        return None
    depth, line, col, quote_char, comment = 0, 1, 0, "", False
    prev = "\n"
    for ch in text:
        col += 1
        if ch == "\n":
            line, col, comment = line + 1, 0, False
        elif comment:
            pass
        elif quote_char:
            if ch == quote_char:
                quote_char = ""
        elif ch in "'\"" and prev in " \t\n[{,:":
            quote_char = ch
        elif ch == "#" and prev in " \t\n":
            comment = True
        elif ch in "[{":
            depth += 1
            if depth > MAX_NESTING:
                return line, col
        elif ch in "]}":
            depth = max(depth - 1, 0)
        prev = ch
    return None


class _Refused(Exception):
    def __init__(self, message: str, mark: Any):
        super().__init__(message)
        self.message, self.mark = message, mark


def _where(file: str, mark: Any) -> str:
    return f"{file}:{mark.line + 1}:{mark.column + 1}" if mark is not None else file


_LOADER: Any = None


def _bounded_loader() -> Any:
    """A SafeLoader that limits nesting while composing and refuses duplicate mapping keys."""
    global _LOADER
    if _LOADER is not None:
        return _LOADER
    import yaml

    class BoundedLoader(yaml.SafeLoader):
        depth = 0

        def compose_node(self, parent: Any, index: Any) -> Any:
            self.depth += 1
            try:
                if self.depth > MAX_NESTING:
                    raise _Refused(f"nested more than {MAX_NESTING} levels deep", self.peek_event().start_mark)
                return super().compose_node(parent, index)
            finally:
                self.depth -= 1

        def construct_mapping(self, node: Any, deep: bool = False) -> Any:
            if isinstance(node, yaml.MappingNode):
                seen: set[Any] = set()
                for key_node, _ in node.value:
                    if isinstance(key_node, yaml.ScalarNode) and key_node.tag != "tag:yaml.org,2002:merge":
                        key = (key_node.tag, key_node.value)
                        if key in seen:
                            raise _Refused(f"duplicate key {quote(key_node.value)}: give each key once",
                                           key_node.start_mark)
                        seen.add(key)
            return super().construct_mapping(node, deep)

    _LOADER = BoundedLoader
    return _LOADER


def _check_expanded_size(root: Any, file: str, error: type[Exception]) -> None:
    """Nodes the document has once every alias is expanded, counted without expanding (memoised
    per node, iteratively); over MAX_YAML_NODES is refused at the first alias-heavy node."""
    import yaml

    size: dict[int, int] = {}
    open_nodes: set[int] = set()  # on the current path: meeting one again is a cycle
    stack: list[tuple[Any, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in size:
            continue
        if isinstance(node, yaml.ScalarNode):
            size[id(node)] = 1
            continue
        kids = [n for pair in node.value for n in pair] if isinstance(node, yaml.MappingNode) else list(node.value)
        if not children_done:
            if id(node) in open_nodes:
                raise _Refused("an alias refers to a node that contains it (a cycle): write the values out",
                               node.start_mark)
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((k, False) for k in kids if id(k) not in size)
            continue
        open_nodes.discard(id(node))
        total = 1 + sum(size[id(k)] for k in kids)
        if total > MAX_YAML_NODES:
            raise _Refused(f"expands to more than {MAX_YAML_NODES} YAML nodes (aliases repeated many times, "
                           "a 'billion laughs' file?): write the values out", node.start_mark)
        size[id(node)] = total
