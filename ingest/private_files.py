"""Files only their owner may read: credentials, spooled readings, detector state, the store.

What citypulse writes to disk is either a secret (broker passwords, keys) or the
city's raw data (readings waiting in the spool, per-device baselines). Neither
should be readable by every account on the host, whatever the umask says, so
each is created with mode 0600 (directories 0700) rather than relying on the
process's umask, and a file citypulse owns that an older run left readable is
tightened when it is opened again.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path
from typing import IO

FILE_MODE = 0o600
DIRECTORY_MODE = 0o700


def private_directory(path: Path) -> Path:
    """Create ``path`` (and its parents) if needed and make it the owner's alone.

    Only for directories citypulse owns outright (the spool, a credentials folder):
    the parents are created with the usual mode, the directory itself gets 0700.
    """
    path.mkdir(parents=True, exist_ok=True, mode=DIRECTORY_MODE)
    if stat.S_IMODE(path.stat().st_mode) != DIRECTORY_MODE:
        path.chmod(DIRECTORY_MODE)
    return path


def open_private(path: Path, flags: int = os.O_WRONLY | os.O_CREAT | os.O_TRUNC) -> int:
    """``os.open`` that creates the file 0600 and tightens an existing one; returns the descriptor."""
    fd = os.open(path, flags, FILE_MODE)
    try:
        if stat.S_IMODE(os.fstat(fd).st_mode) != FILE_MODE:
            os.fchmod(fd, FILE_MODE)
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_private_binary(path: Path) -> IO[bytes]:
    """A new (truncated) binary file only its owner can read, as a Python file object."""
    return os.fdopen(open_private(path), "wb")


def write_private(path: Path, data: bytes) -> None:
    """Replace ``path`` atomically with ``data``; the file is the owner's alone from its first byte.

    ``mkstemp`` creates the temporary file 0600, so the secret is never readable
    by others, not even for the moment between writing and renaming.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def private_file(path: Path) -> None:
    """Make sure ``path`` exists and only its owner can read it, without opening an existing file.

    For databases: SQLite holds POSIX locks on its file, and closing *any* descriptor of
    that file in the process releases them all, so an existing database (perhaps open in
    this very process) is only chmod-ed, never opened and closed here.
    """
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, FILE_MODE))
    except FileExistsError:
        tighten(path)


def tighten(path: Path) -> None:
    """Make an existing file of citypulse's (a store, its journal) readable by its owner only."""
    with contextlib.suppress(FileNotFoundError):
        if stat.S_IMODE(path.stat().st_mode) != FILE_MODE:
            path.chmod(FILE_MODE)


def is_private(path: Path) -> bool:
    """True when neither group nor others have any access to ``path``."""
    return stat.S_IMODE(path.stat().st_mode) & 0o077 == 0
