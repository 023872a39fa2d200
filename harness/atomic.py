"""Atomic file writes: a reader sees the old file or the new one, never half of one."""

from __future__ import annotations

import errno
import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

#: The process's umask, read once: a written file gets the permissions ``open()`` would
#: give it (mkstemp's are owner-only, which would hide results from a shared group).
_UMASK = os.umask(0o022)
os.umask(_UMASK)


def make_dir(path: Path) -> None:
    """``mkdir -p path``; a file in its place is NotADirectoryError naming it (mkdir itself
    would say "File exists", which reads as if nothing were wrong)."""
    if path.exists() and not path.is_dir():
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(path))
    path.mkdir(parents=True, exist_ok=True)


@contextmanager
def naming(path: Path) -> Iterator[None]:
    """An OSError without a file name raised in the block (a full disk, a file-size limit)
    is raised again naming ``path``, so the command line can say which output failed."""
    try:
        yield
    except OSError as exc:
        if exc.filename is None:
            raise OSError(exc.errno, exc.strerror, str(path)) from exc
        raise


def write_atomic(path: Path, data: bytes | str) -> None:
    """Write to a temporary file in ``path``'s directory, fsync, then rename over ``path``.

    Text is written as UTF-8. The directory is created if missing; on any failure the
    temporary file is removed and ``path`` is left as it was. An OSError without a file
    name (a full disk, a file-size limit) is raised again naming ``path``, so the command
    line can say which output could not be written.
    """
    make_dir(path.parent)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with naming(path):
            os.fchmod(fd, 0o666 & ~_UMASK)
            with os.fdopen(fd, "wb") as f:
                f.write(payload)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
