"""Input limits and the validated-number reader: every number from outside passes through here.

Owns the stated limits (input file size, rank size, tensor size, digits in a number, how much of a
bad value an error message quotes) and the readers that turn a value from a file, an argument or
the API into a checked `int` or finite `float`, or raise the caller's error type naming the field.
"""

from __future__ import annotations

import math
from typing import Any

MAX_INPUT_BYTES = 4 << 20         # a .einsum, mapping, target or TeAAL file
MAX_SHAPE = 1 << 40               # one rank's size (shapes beyond this are cost-model fiction anyway)
MAX_DIGITS = 20                   # digits in a number written as text
MAX_TENSOR_BYTES = 16 << 30       # one array the reference evaluator or an executor allocates
MAX_NESTING = 200                 # nesting depth of an expression or a YAML document
MAX_YAML_NODES = 100_000          # YAML nodes after alias expansion
MAX_QUOTE = 60                    # characters of a bad value quoted in an error message


def quote(value: Any, limit: int = MAX_QUOTE) -> str:
    """`repr(value)`, cut to `limit` characters with '...' so an error never echoes a bomb."""
    try:
        text = repr(value) if not isinstance(value, (list, dict, tuple, set)) or _small(value) else _short(value)
    except (ValueError, RecursionError):  # e.g. an int past Python's digit limit, a self-referencing list
        text = f"<{type(value).__name__}>"
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _small(value: Any) -> bool:
    return len(value) <= 8 and all(not isinstance(v, (list, dict, tuple, set)) for v in value)


def _short(value: Any) -> str:
    return f"<{type(value).__name__} of {len(value)}>"


def human_bytes(n: float) -> str:
    """1536 -> '1.5 KiB'; 8e12 -> '7.3 TiB'."""
    for unit in ("B", "KiB", "MiB", "GiB", "TiB", "PiB"):
        if n < 1024 or unit == "PiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} PiB"  # pragma: no cover - loop returns


def is_int(value: Any) -> bool:
    """A real integer (Python or NumPy), never a bool, a float or a string."""
    import numbers

    return isinstance(value, numbers.Integral) and not isinstance(value, bool) and type(value).__name__ != "bool_"


def read_int(value: Any, what: str, error: type[Exception], minimum: int = 1, maximum: int = MAX_SHAPE) -> int:
    """An integer in [minimum, maximum]; otherwise `error('<what>: <value> ...: write ...')`."""
    if not is_int(value):
        raise error(f"{what}: {quote(value)} is not an integer: write a whole number "
                    f"from {minimum} to {maximum}")
    number = int(value)
    if not minimum <= number <= maximum:
        raise error(f"{what}: {quote(number)} is out of range: write a whole number from {minimum} to {maximum}")
    return number


def parse_int_text(text: str, what: str, error: type[Exception], minimum: int = 1, maximum: int = MAX_SHAPE) -> int:
    """Digits written as text (ASCII only, at most MAX_DIGITS) -> a checked int."""
    digits = text.strip()
    if not digits or not digits.isascii() or not digits.isdigit() or len(digits) > MAX_DIGITS:
        raise error(f"{what}: {quote(text)} is not a whole number: write ASCII digits from {minimum} to {maximum}")
    return read_int(int(digits), what, error, minimum, maximum)


def read_real(value: Any, what: str, error: type[Exception], minimum: float = 0.0, *,
              above: bool = True, maximum: float = 1e30) -> float:
    """A finite number (int or float, not bool) above (or at least) `minimum` and at most `maximum`."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not is_int(value):
        raise error(f"{what}: expected a number, got {quote(value)}")
    try:
        number = float(value)
    except OverflowError:
        number = math.inf
    if not math.isfinite(number):
        raise error(f"{what}: expected a finite number, got {quote(value)}")
    low_ok = number > minimum if above else number >= minimum
    if not low_ok or number > maximum:
        bound = f"above {minimum:g}" if above else f"at least {minimum:g}"
        raise error(f"{what}: {quote(value)} is out of range: it must be {bound} and at most {maximum:g}")
    return number


def read_bool(value: Any, what: str, error: type[Exception]) -> bool:
    """true/false only (a YAML 'no' read as the string 'no' is refused, not taken as True)."""
    if not isinstance(value, bool):
        raise error(f"{what}: {quote(value)} is not true or false")
    return value


def available_memory() -> int:
    """Bytes of memory free for new arrays (Linux `MemAvailable`), else MAX_TENSOR_BYTES."""
    try:
        with open("/proc/meminfo", encoding="ascii") as handle:
            for line in handle:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return MAX_TENSOR_BYTES


def check_tensor_sizes(shapes: dict[str, tuple[int, ...]], itemsize: int, error: type[Exception],
                       hint: str = "give smaller shapes with --shape") -> None:
    """Refuse, before anything is allocated, a set of arrays that cannot fit: one over
    MAX_TENSOR_BYTES, or all together over the memory available ('A needs 7.3 TiB ...')."""
    sizes = {name: math.prod(shape) * itemsize for name, shape in shapes.items()}
    if not sizes:
        return
    name, biggest = max(sizes.items(), key=lambda kv: kv[1])
    free = available_memory()
    dims = " x ".join(map(str, shapes[name])) or "a scalar"
    if biggest > MAX_TENSOR_BYTES:
        raise error(f"{name} needs {human_bytes(biggest)} ({dims} elements of {itemsize} bytes), over the "
                    f"{human_bytes(MAX_TENSOR_BYTES)} one array may have: {hint}")
    total = sum(sizes.values())
    if total > free:
        raise error(f"the arrays need {human_bytes(total)} together ({name} alone {human_bytes(biggest)}), "
                    f"more than the {human_bytes(free)} of memory available: {hint}")
