"""Exclusive OS file locks (flock) that name their holder: one writer per run directory (or export folder).

The kernel drops a flock when its process ends, however it ends, so a SIGKILLed holder leaves no stale lock and
nothing has to be cleaned up. The lock file holds the holder's PID, for the message the next process gets.
"""

from __future__ import annotations

import fcntl
import os
import time


class LockHeld(Exception):
    """Another process holds the lock at `path`; `holder` is its PID as written in the file ('?' if unknown)."""

    def __init__(self, path: str, holder: str) -> None:
        super().__init__(f"{path} is held by PID {holder}")
        self.path, self.holder = path, holder


class FileLock:
    """A held lock; `release()` (or the end of the process) lets it go. Not re-entrant: a second `acquire` of the
    same file, in this process too, raises LockHeld."""

    def __init__(self, fd: int, path: str) -> None:
        self._fd: int | None = fd
        self.path = path

    @classmethod
    def acquire(cls, path: str) -> "FileLock":
        """Takes the lock at `path` (creating the file) without waiting.

        Raises:
            LockHeld: when another holder has it.
        """
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = ""
            for _ in range(20):  # the holder writes its PID just after taking the lock
                holder = os.pread(fd, 32, 0).decode(errors="replace").strip()
                if holder:
                    break
                time.sleep(0.05)
            os.close(fd)
            raise LockHeld(path, holder or "?") from None
        try:
            os.ftruncate(fd, 0)
            os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        except BaseException:  # a full disk: the lock is not kept (nor its descriptor) by a holder that failed
            os.close(fd)
            raise
        return cls(fd, path)

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.ftruncate(fd, 0)
            os.close(fd)  # closing the descriptor drops the flock

    def __del__(self) -> None:
        if os is not None:  # at interpreter exit the module may be torn down first; the kernel drops the lock then
            self.release()
