"""An exclusive lock on a run folder: two runs never write into one folder at once.

The lock is ``fcntl.flock`` on ``<folder>/.m2pt.lock``: the kernel releases it when the holding
process ends in any way (SIGKILL included), so a stale lock file never blocks a resume. The
file records who holds the lock (pid, host, command, start time) for the refusal message.
"""

from __future__ import annotations

import fcntl
import json
import os
import socket
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional, Union

from .run_dir import RunFolderError

LOCK = ".m2pt.lock"

#: Descriptors of the locks this process holds; a forked child inherits them (and with them the lock).
_HELD_FDS: set[int] = set()


def close_inherited_locks() -> None:
    """In a forked child (a DataLoader worker), close the inherited lock descriptors without unlocking.

    ``flock`` belongs to the open file, which a fork shares: a child that kept it open would hold
    the run folder's lock after its parent was killed, until the child noticed and exited.
    """
    for fd in list(_HELD_FDS):
        try:
            os.close(fd)
        except OSError:
            pass
    _HELD_FDS.clear()


class RunFolderLockedError(RunFolderError):
    """Another process holds the run folder's lock."""


class RunFolderLock:
    """Hold ``<folder>/.m2pt.lock`` exclusively until :meth:`release` (or the process ends).

    Args:
        folder: The run folder (created if missing).

    Raises:
        RunFolderLockedError: another process holds the lock; the message says which.
    """

    def __init__(self, folder: Path) -> None:
        if folder.exists() and not folder.is_dir():
            raise RunFolderError(f"output {folder} exists and is not a folder")
        self.path = folder / LOCK
        try:
            folder.mkdir(parents=True, exist_ok=True)
            self._fd: Optional[int] = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        except OSError as exc:
            raise RunFolderError(f"output folder {folder} is not writable: {exc}") from exc
        try:
            fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = self._holder()
            os.close(self._fd)
            self._fd = None
            raise RunFolderLockedError(
                f"run folder {folder} is in use by another m2pt process ({holder}); wait for it to end, stop it, "
                "or choose another --output") from None
        owner = {"pid": os.getpid(), "host": socket.gethostname(), "command": " ".join(sys.argv),
                 "started": time.strftime("%Y-%m-%d %H:%M:%S")}
        _HELD_FDS.add(self._fd)
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(owner).encode(), 0)

    def _holder(self) -> str:
        try:
            owner = json.loads(self.path.read_text() or "{}")
        except (OSError, ValueError):
            owner = {}
        if not owner:
            return "holder unknown"
        return (f"pid {owner.get('pid')} on {owner.get('host')}, started {owner.get('started')}: "
                f"{owner.get('command')}")

    def release(self) -> None:
        """Release the lock (idempotent); the lock file stays, empty of meaning."""
        if self._fd is not None:
            _HELD_FDS.discard(self._fd)
            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> "RunFolderLock":
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def folder_in_use(folder: Union[str, os.PathLike]) -> bool:
    """Whether a process holds ``folder``'s lock now (read-only; a folder without a lock file is free).

    It takes a shared lock for an instant and releases it, so a run starting in that same
    instant would be refused as if the folder were in use.
    """
    try:
        fd = os.open(Path(folder) / LOCK, os.O_RDONLY)
    except OSError:
        return False
    try:
        fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    else:
        fcntl.flock(fd, fcntl.LOCK_UN)
        return False
    finally:
        os.close(fd)


@contextmanager
def lock_run_folder(path: Union[str, os.PathLike], enabled: bool = True) -> Iterator[Optional[RunFolderLock]]:
    """Hold the run folder's lock for the block (``enabled=False``: on ranks that write nothing)."""
    if not enabled:
        yield None
        return
    with RunFolderLock(Path(path).expanduser()) as lock:
        yield lock
