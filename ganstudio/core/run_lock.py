"""The run folder's lock: one writer per run, across processes and windows.

:class:`RunLock` takes an exclusive advisory lock (``flock``; ``msvcrt`` on
Windows) on ``RUN/.lock`` before anything is written; :meth:`RunLock.held_elsewhere`
is the one "is this run being trained?" probe the faces use. A file system
without locks (some network shares) trains unlocked rather than not at all.
"""
from __future__ import annotations

import errno
import os
import sys
from pathlib import Path
from typing import Any

from .errors import UserError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class RunError(UserError):
    """A run folder is missing, damaged, or not a run."""


class RunLock:
    """An exclusive advisory lock on a file (``flock``; ``msvcrt`` on Windows)."""

    def __init__(self, path: Path):
        self.path = path
        self.locked = False
        self._fd = -1
        try:
            self._fd = os.open(path, os.O_RDWR | os.O_CREAT | _NOFOLLOW, 0o644)
        except OSError as e:
            raise RunError(f"cannot lock the run folder ({path}): {e.strerror or e}") from None
        try:
            if sys.platform == "win32":  # pragma: no cover - exercised on Windows only
                import msvcrt
                msvcrt.locking(self._fd, msvcrt.LK_NBLCK, 1)
            else:
                import fcntl
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            held = e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES,
                               getattr(errno, "EDEADLOCK", errno.EDEADLK))
            if not held:
                # A file system without locks (some network shares): go on unlocked
                # rather than refuse to train at all.
                self.locked = False
                return
            os.close(self._fd)
            self._fd = -1
            raise RunError(f"the run in {path.parent} is being trained by another process or "
                           "window; stop it first or choose another run folder") from None
        self.locked = True

    @staticmethod
    def held_elsewhere(path: str | os.PathLike) -> bool:
        """Whether someone holds the lock on ``path``: a shared, non-blocking probe on
        the existing file, so a run on a read-only share is "not held". Windows: False."""
        path = Path(path)
        if sys.platform == "win32" or not path.is_file():
            return False
        import fcntl
        try:
            fd = os.open(path, os.O_RDONLY | _NOFOLLOW)
        except OSError:
            return False
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError as e:
            return e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES)
        else:
            fcntl.flock(fd, fcntl.LOCK_UN)
            return False
        finally:
            os.close(fd)

    def release(self) -> None:
        if self._fd >= 0:
            try:
                if sys.platform != "win32":
                    import fcntl
                    fcntl.flock(self._fd, fcntl.LOCK_UN)
            finally:
                os.close(self._fd)
                self._fd = -1

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc: Any) -> None:
        self.release()

    def __del__(self) -> None:
        try:
            self.release()
        except Exception:  # noqa: BLE001
            pass
