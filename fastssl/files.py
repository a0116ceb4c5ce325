"""Files fastssl writes and reads: atomic writes, and what a file is when it is not what we expected.

Every file a run, `prepare` or the bench writes goes through `atomic_write` (or `atomic_save`
for torch objects): a temporary file beside the target, flushed and fsynced, then renamed over
it, so a killed process leaves either the old file or the new one, never half of one.
"""
from __future__ import annotations

import contextlib
import os
import zipfile
from pathlib import Path
from typing import IO, Iterator


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "w") -> Iterator[IO]:
    """Open a temporary file beside `path`; on a clean exit it replaces `path` (on an exception
    it is removed and `path` is untouched)."""
    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    try:
        with open(tmp, mode) as f:
            yield f
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


def atomic_write(path: str | os.PathLike, data: str | bytes) -> Path:
    """Write `data` (text or bytes) to `path` atomically."""
    with atomic_open(path, "wb" if isinstance(data, bytes) else "w") as f:
        f.write(data)
    return Path(path)


def atomic_save(obj, path: str | os.PathLike) -> Path:
    """torch.save `obj` to `path` atomically."""
    import torch
    with atomic_open(path, "wb") as f:
        torch.save(obj, f)
    return Path(path)


def describe_file(path: str | os.PathLike, expected: str) -> str:
    """What a file is, said for an error message when it is not `expected` (e.g. "a checkpoint"):
    "an empty file", "a ...-byte zip archive that torch cannot read ...", "a text file (first
    line: ...)", "N bytes of binary data"."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        return "an empty file"
    with open(path, "rb") as f:
        head = f.read(512)
    # torch.save writes a zip archive; a truncated one has lost its central directory (at the
    # end), so is_zipfile says no, but its first bytes are still a zip entry's header
    if zipfile.is_zipfile(path) or head.startswith(b"PK\x03\x04"):
        return f"a {size}-byte zip archive that torch cannot read as {expected} (truncated or damaged?)"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:
        return f"{size} bytes of binary data, not {expected}"
    lines = text.splitlines()
    return f"a text file (first line: {lines[0][:60] if lines else ''!r}), not {expected}"
