"""The state directory: created 0700, refused when others could write to it."""

from __future__ import annotations

import fcntl
import os
import stat
from pathlib import Path
from typing import IO


class StateDirError(Exception):
    """The state directory cannot be used safely."""


def prepare_state_dir(path: Path) -> Path:
    """Create ``path`` (mode 0700) if needed and check it is private and writable."""
    try:
        path.mkdir(mode=0o700, parents=True, exist_ok=True)
    except PermissionError:
        raise StateDirError(f"state directory {path}: cannot create it: permission denied") from None
    except FileExistsError:
        raise StateDirError(f"state directory {path}: exists and is not a directory") from None
    except OSError as exc:
        raise StateDirError(f"state directory {path}: cannot create it: {exc.strerror}") from None
    st = path.stat()
    if not stat.S_ISDIR(st.st_mode):
        raise StateDirError(f"state directory {path}: is not a directory")
    if st.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise StateDirError(
            f"state directory {path}: writable by group or others (mode {stat.S_IMODE(st.st_mode):04o});"
            f" run: chmod 700 {path}"
        )
    if st.st_uid != os.geteuid():
        raise StateDirError(
            f"state directory {path}: owned by uid {st.st_uid}, not by this user ({os.geteuid()})"
        )
    if not os.access(path, os.W_OK | os.X_OK):
        raise StateDirError(f"state directory {path}: not writable (read-only file system?)")
    probe = path / ".write-probe"
    try:
        with open(probe, "wb") as fh:
            fh.write(b"ok")
        probe.unlink()
    except OSError as exc:
        raise StateDirError(f"state directory {path}: not writable: {exc.strerror}") from None
    return path


def lock_state_dir(path: Path) -> IO[bytes]:
    """Take the daemon's exclusive lock; a second daemon on the same directory is refused."""
    # Held open for the process lifetime: the lock dies with the process, even on kill -9.
    fh = open(path / "daemon.lock", "a+b")
    try:
        fcntl.flock(fh.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.close()
        raise StateDirError(
            f"state directory {path}: another rekam daemon is already running on it"
        ) from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()).encode())
    fh.flush()
    return fh
