"""Reading input arrays from an `.npz` archive, bounded: file -> {name: ndarray}, checked first.

Every member is checked from the archive's directory and its `.npy` header *before* any data is
read: the name must be an expected tensor, the header's shape must be the spec's shape for it,
the dtype a real number type (bool, int, float; never an object, string, datetime or struct),
and the bytes it asks for within `MAX_TENSOR_BYTES`; the data is then read with exactly that many
bytes, so a deflate bomb or a header asking for terabytes is refused in well under a second.
"""

from __future__ import annotations

import math
import zipfile
from typing import Any

from .limits import MAX_TENSOR_BYTES, human_bytes, quote


def read_npz(path: str, expected: dict[str, tuple[int, ...]], error: type[Exception],
             labels: dict[str, str] | None = None) -> dict[str, Any]:
    """Arrays by tensor name from `path`; `expected` gives each tensor's shape as the spec says
    (`labels` a note per tensor for a shape mismatch, e.g. 'K=3, M=2')."""
    import numpy as np

    fmt = np.lib.format
    try:
        archive = zipfile.ZipFile(path)
    except (OSError, zipfile.BadZipFile, ValueError) as exc:
        raise error(f"{path}: cannot read inputs (expected an .npz archive of arrays by tensor name, as written "
                    f"by numpy.savez): {quote(str(exc), 120)}") from None
    out: dict[str, Any] = {}
    with archive:
        members = archive.infolist()
        if not members:
            raise error(f"{path}: the archive holds no arrays: save the inputs by tensor name with "
                        "numpy.savez(path, Q=..., K=...)")
        for info in members:
            name = info.filename[:-4] if info.filename.endswith(".npy") else info.filename
            where = f"{path}: member {quote(info.filename)}"
            if name not in expected:
                shown = name if name.isidentifier() and len(name) <= 60 else quote(name)
                raise error(f"{where}: unknown input {shown} (the cascade's inputs: "
                            f"{', '.join(expected) or 'none'})")
            try:
                with archive.open(info) as member:
                    version = fmt.read_magic(member)
                    if version not in ((1, 0), (2, 0)):
                        raise error(f"{where}: .npy format version {version} is not read: save with numpy.savez")
                    header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
                    shape, fortran, dtype = header(member, max_header_size=10000)
                    want = expected[name]
                    if tuple(shape) != tuple(want):
                        note = f" ({labels[name]})" if labels and name in labels else ""
                        raise error(f"{where}: input {name} has shape {tuple(shape)}, expected {tuple(want)}{note}")
                    array = _read_checked(member, info.file_size, name, (shape, fortran, dtype), where, error)
            except (OSError, ValueError, zipfile.BadZipFile, EOFError, RuntimeError) as exc:
                raise error(f"{where}: cannot read: {quote(str(exc), 120)}") from None
            out[name] = array
    return out


def _read_checked(member: Any, declared: int, name: str, header: tuple[Any, bool, Any],
                  where: str, error: type[Exception]) -> Any:
    """The member's data after its header, read only once the header is known to fit the spec."""
    import numpy as np

    shape, fortran, dtype = header
    if dtype.kind not in "biuf" or dtype.hasobject or dtype.fields is not None:
        raise error(f"{where}: dtype {quote(str(dtype))} is not a real number type: give float, int or bool arrays")
    nbytes = math.prod(shape) * dtype.itemsize
    if nbytes > MAX_TENSOR_BYTES:
        raise error(f"{where}: {name} needs {human_bytes(nbytes)}, over the {human_bytes(MAX_TENSOR_BYTES)} "
                    "one array may have")
    extra = declared - member.tell() - nbytes
    if extra > 0:  # e.g. a deflate bomb padded behind a small array
        raise error(f"{where}: {extra} bytes beyond the {human_bytes(nbytes)} its header describes: "
                    "not an array numpy.savez wrote")
    data = member.read(nbytes)
    if len(data) != nbytes:
        raise error(f"{where}: truncated: {len(data)} of {nbytes} data bytes")
    array = np.frombuffer(data, dtype=dtype)
    order = "F" if fortran else "C"
    return array.reshape(shape, order=order).copy(order="C")
