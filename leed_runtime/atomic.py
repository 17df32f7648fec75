"""Atomic outputs: every file leed writes appears whole or not at all.

Write to a temp name in the destination folder, fsync, then `os.replace` (atomic on POSIX
and Windows within one filesystem). torch-free: used by training, export and runtime.

Temp files are named `.tmp-{name}.{pid}.*`: one left by a killed process (SIGKILL, power
loss) is removed by the next write of the same `name` once that process is gone.
"""

from __future__ import annotations

import contextlib
import glob
import os
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import BinaryIO

TMP_PREFIX = ".tmp-"


def fsync_dir(path: Path) -> None:
    with contextlib.suppress(OSError):  # not every filesystem lets a folder be fsynced
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def pid_alive(pid: int) -> bool:
    """Whether process `pid` exists (on this machine)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def tmp_prefix(path: Path) -> str:
    """The name prefix of this process's temp files for `path`: `.tmp-{name}.{pid}.`."""
    return f"{TMP_PREFIX}{Path(path).name}.{os.getpid()}."


def clean_stale(path: Path) -> None:
    """Remove temp files of `path` left by killed writers (their process is gone)."""
    path = Path(path)
    prefix = f"{TMP_PREFIX}{path.name}."
    for tmp in path.parent.glob(f"{glob.escape(prefix)}*"):
        pid = tmp.name[len(prefix) :].split(".", 1)[0]
        if pid.isdigit() and not pid_alive(int(pid)) and tmp.is_file():
            tmp.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(path: Path, suffix: str = "") -> Iterator[Path]:
    """Yield a temp path next to `path` for a writer that wants a file name (ffmpeg, a
    memmap); on a clean exit it is fsynced and renamed onto `path`, on an error removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    clean_stale(path)
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=tmp_prefix(path), suffix=suffix or path.suffix)
    os.close(fd)
    tmp = Path(name)
    os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600; outputs get the usual permissions
    try:
        yield tmp
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write(path: Path, write: Callable[[BinaryIO], object]) -> None:
    """Call `write(file)` on a temp file and rename it onto `path` (streams: no copy in memory)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        write(fh)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write(path, lambda fh: fh.write(data))


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))
