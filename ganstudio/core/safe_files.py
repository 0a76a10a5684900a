"""Writing files inside a folder that may have come from someone else.

A run folder travels: a shared drive, an archive sent by a colleague, a run
watched live. Whoever prepared it may have planted symbolic links (or hard
links) where GAN Studio writes, hoping a write lands in a file outside the
folder. Every write inside a run folder, by GAN Studio or by a plugin, goes
through this module, which guarantees:

* a new file is first written under a fresh, unpredictable temporary name in
  the same folder, created exclusively (``O_CREAT | O_EXCL | O_NOFOLLOW``),
  so nothing planted under that name is ever opened, then renamed over the
  final name (a kill leaves the old file or the new one, never half of one);
* a final name that is a symbolic link is refused with :class:`UnsafeFileError`
  naming the file (a rename would replace the link, but a folder holding one
  was tampered with, and the user should know);
* appends open without following links; a file that has other hard links is
  first replaced by a private copy (appending to it would change a file elsewhere);
* folders between the trusted top (``within``, usually the run folder) and
  the file are entered without following links (directory descriptors where
  the platform has them), and created when missing;
* an error names the user's file, never the internal temporary one.

Public API for plugins: :func:`write_atomic`, :func:`atomic_file`,
:func:`open_append`, :func:`make_dirs`, :func:`remove_stale_temporaries` and
:class:`UnsafeFileError`.
"""
from __future__ import annotations

import contextlib
import errno
import io
import os
import re
import secrets
import stat
from pathlib import Path
from typing import IO, Iterator

from .errors import UserError

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)
_BINARY = getattr(os, "O_BINARY", 0)
_CLOEXEC = getattr(os, "O_CLOEXEC", 0)
#: Directory descriptors (``openat``) where the platform has them (Linux, macOS, BSD).
_DIR_FD = os.open in os.supports_dir_fd and os.rename in os.supports_dir_fd and bool(_DIRECTORY)
#: ``.<final name>.<pid>.<random hex>.tmp``: the pid lets a later writer remove files of
#: writers that died; the random part makes the name impossible to plant in advance.
TEMP_RE = re.compile(r"^\.(?P<final>.+)\.(?P<pid>\d+)\.[0-9a-f]{16}\.tmp$")


class UnsafeFileError(UserError):
    """A path GAN Studio would write is a link or not a plain file: refused, not followed."""

    def __init__(self, path: str | os.PathLike, reason: str):
        self.path = Path(path)
        self.reason = reason
        super().__init__(f"{path} {reason}; refused for safety (a run folder must hold its "
                         "own plain files)")


def _token() -> str:
    return secrets.token_hex(8)


def temporary_name(final_name: str) -> str:
    """A fresh temporary name for ``final_name`` in the same folder."""
    return f".{final_name}.{os.getpid()}.{_token()}.tmp"


def _renamed_error(error: OSError, path: str | os.PathLike) -> OSError:
    """The same error, naming the user's file instead of a temporary or a descriptor."""
    new = type(error)(error.errno, error.strerror or str(error), os.fspath(path))
    return new


def _relative_parts(folder: Path, within: Path | None) -> tuple[Path, list[str]]:
    """(trusted top, names of the folders below it down to ``folder``)."""
    if within is None:
        return folder, []
    within = Path(within)
    try:
        rel = folder.relative_to(within)
    except ValueError:
        raise UnsafeFileError(folder, f"is outside {within}") from None
    parts = [p for p in rel.parts if p not in ("", ".")]
    if any(p == ".." for p in parts):
        raise UnsafeFileError(folder, f"is outside {within}")
    return within, parts


class _Folder:
    """An opened folder: a directory descriptor (no-follow below the top) or, where the
    platform has none, a path checked component by component."""

    def __init__(self, folder: Path, within: Path | None, create: bool):
        self.path = folder
        self.fd: int | None = None
        top, parts = _relative_parts(folder, within)
        if create:
            top.mkdir(parents=True, exist_ok=True)
        if _DIR_FD:
            fd = os.open(top, os.O_RDONLY | _DIRECTORY | _CLOEXEC)
            try:
                here = top
                for name in parts:
                    here = here / name
                    child = self._enter(fd, name, here, create)
                    os.close(fd)
                    fd = child
            except BaseException:
                os.close(fd)
                raise
            self.fd = fd
        else:  # pragma: no cover - Windows: no openat; check each level instead
            here = top
            for name in parts:
                here = here / name
                if here.is_symlink():
                    raise UnsafeFileError(here, "is a symbolic link")
                if create and not here.exists():
                    here.mkdir()
                if not here.is_dir():
                    raise UnsafeFileError(here, "is not a folder")

    @staticmethod
    def _enter(parent_fd: int, name: str, path: Path, create: bool) -> int:
        """Open the folder ``name`` below ``parent_fd`` without following a link (the
        caller closes ``parent_fd``)."""
        flags = os.O_RDONLY | _DIRECTORY | _NOFOLLOW | _CLOEXEC
        try:
            try:
                return os.open(name, flags, dir_fd=parent_fd)
            except FileNotFoundError:
                if not create:
                    raise
            try:
                os.mkdir(name, 0o777, dir_fd=parent_fd)
            except FileExistsError:
                pass
            return os.open(name, flags, dir_fd=parent_fd)
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.ENOTDIR, errno.EMLINK):
                kind = "a symbolic link" if _is_link(name, parent_fd) else "not a folder"
                raise UnsafeFileError(path, f"is {kind}") from None
            raise _renamed_error(e, path) from None

    # -- operations on entries of this folder ------------------------------------------------
    def _kw(self) -> dict:
        return {"dir_fd": self.fd} if self.fd is not None else {}

    def _where(self, name: str) -> str:
        return name if self.fd is not None else os.fspath(self.path / name)

    def lstat(self, name: str) -> os.stat_result | None:
        try:
            return os.stat(self._where(name), follow_symlinks=False, **self._kw())
        except FileNotFoundError:
            return None

    def open(self, name: str, flags: int, mode: int = 0o666) -> int:
        return os.open(self._where(name), flags | _CLOEXEC, mode, **self._kw())

    def unlink(self, name: str) -> None:
        os.unlink(self._where(name), **self._kw())

    def replace(self, src: str, dst: str) -> None:
        if self.fd is not None:
            os.replace(src, dst, src_dir_fd=self.fd, dst_dir_fd=self.fd)
        else:  # pragma: no cover - Windows
            os.replace(self.path / src, self.path / dst)

    def fsync(self) -> None:
        if self.fd is None:  # pragma: no cover - Windows cannot fsync a folder
            return
        try:
            os.fsync(self.fd)
        except OSError:
            pass

    def close(self) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    def __enter__(self) -> "_Folder":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def _is_link(name: str, dir_fd: int) -> bool:
    try:
        return stat.S_ISLNK(os.stat(name, dir_fd=dir_fd, follow_symlinks=False).st_mode)
    except OSError:
        return False


def _open_folder(path: Path, within: str | os.PathLike | None, create: bool = True) -> _Folder:
    try:
        return _Folder(path.parent, Path(within) if within is not None else None, create)
    except UnsafeFileError:
        raise
    except OSError as e:
        raise _renamed_error(e, e.filename or path.parent) from None


def _check_final(folder: _Folder, path: Path) -> None:
    st = folder.lstat(path.name)
    if st is None:
        return
    if stat.S_ISLNK(st.st_mode):
        raise UnsafeFileError(path, "is a symbolic link")
    if stat.S_ISDIR(st.st_mode):
        raise UnsafeFileError(path, "is a folder, not a file")


@contextlib.contextmanager
def atomic_file(path: str | os.PathLike, mode: str = "wb", *,
                within: str | os.PathLike | None = None, fsync: bool = True,
                encoding: str = "utf-8", errors: str = "strict",
                newline: str | None = None) -> Iterator[IO]:
    """Write ``path`` as a whole: yields a file open on a fresh temporary name; when the
    block ends without an error the file is flushed, fsync'ed (``fsync``) and renamed
    over ``path``; on an error the temporary file is removed and ``path`` is untouched.

    ``mode`` is ``"wb"`` or ``"w"`` (text, with ``encoding``/``errors``/``newline``).
    ``within`` is the trusted top folder (a run folder): the folders between it and
    ``path`` are entered without following links and created when missing. Without it,
    ``path``'s own folder is trusted as given.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    with _open_folder(path, within) as folder:
        _check_final(folder, path)
        tmp, fd = None, -1
        for _attempt in range(16):
            tmp = temporary_name(path.name)
            try:
                fd = folder.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | _NOFOLLOW | _BINARY)
                break
            except FileExistsError:
                continue  # something sits under that name: never touch it, pick another
            except OSError as e:
                raise _renamed_error(e, path) from None
        else:  # pragma: no cover - 16 collisions of 64 random bits
            raise UnsafeFileError(path, "could not get a fresh temporary name")
        done = False
        try:
            raw = os.fdopen(fd, "wb")
            f: IO = raw if mode == "wb" else io.TextIOWrapper(
                raw, encoding=encoding, errors=errors, newline=newline)
            with f:
                yield f
                f.flush()
                if fsync:
                    os.fsync(raw.fileno())
            _check_final(folder, path)
            folder.replace(tmp, path.name)
            done = True
            if fsync:
                folder.fsync()
        except OSError as e:
            raise _renamed_error(e, path) from None
        finally:
            if not done:
                try:
                    folder.unlink(tmp)
                except OSError:
                    pass


def write_atomic(path: str | os.PathLike, data: bytes | str, *,
                 within: str | os.PathLike | None = None, fsync: bool = True,
                 encoding: str = "utf-8", errors: str = "strict") -> Path:
    """Write ``data`` (bytes, or text in ``encoding``) to ``path`` through a fresh
    temporary file and a rename; see :func:`atomic_file`. Returns ``path``."""
    if isinstance(data, str):
        data = data.encode(encoding, errors)
    with atomic_file(path, "wb", within=within, fsync=fsync) as f:
        f.write(data)
    return Path(path)


def open_append(path: str | os.PathLike, *, within: str | os.PathLike | None = None,
                binary: bool = False, encoding: str = "utf-8",
                errors: str = "backslashreplace", newline: str | None = None) -> IO:
    """Open ``path`` for appending (created when missing) without following a link.

    Refused with :class:`UnsafeFileError`: a symbolic link, and something that is not
    a plain file (a pipe would block the writer). A file with other hard links (shared
    with a place outside, or with a backup snapshot) is first replaced by a private copy
    of itself, so the append never changes the other names' file."""
    path = Path(path)
    for _attempt in range(3):
        fd = _open_for_append(path, within)
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFileError(path, "is not a plain file")
            if st.st_nlink > 1:
                os.close(fd)
                fd = -1
                content = _read_nofollow(path, within)
                write_atomic(path, content, within=within)  # a copy of our own, renamed in
                continue
            if _NONBLOCK:
                import fcntl
                fcntl.fcntl(fd, fcntl.F_SETFL, fcntl.fcntl(fd, fcntl.F_GETFL) & ~_NONBLOCK)
        except BaseException:
            if fd >= 0:
                os.close(fd)
            raise
        raw = os.fdopen(fd, "ab")
        if binary:
            return raw
        return io.TextIOWrapper(raw, encoding=encoding, errors=errors, newline=newline,
                                write_through=True)
    raise UnsafeFileError(path, "keeps getting other hard links")


def _read_nofollow(path: Path, within: str | os.PathLike | None) -> bytes:
    with _open_folder(path, within, create=False) as folder:
        try:
            fd = folder.open(path.name, os.O_RDONLY | _NOFOLLOW | _NONBLOCK | _BINARY)
        except OSError as e:
            raise _renamed_error(e, path) from None
    with os.fdopen(fd, "rb") as f:
        return f.read()


def _open_for_append(path: Path, within: str | os.PathLike | None) -> int:
    with _open_folder(path, within) as folder:
        try:
            return folder.open(path.name, os.O_WRONLY | os.O_APPEND | os.O_CREAT | _NOFOLLOW
                               | _NONBLOCK | _BINARY)
        except OSError as e:
            if e.errno == errno.ELOOP or (e.errno == errno.EMLINK and _NOFOLLOW):
                raise UnsafeFileError(path, "is a symbolic link") from None
            if e.errno == errno.ENXIO:
                raise UnsafeFileError(path, "is not a plain file") from None
            raise _renamed_error(e, path) from None


def make_dirs(path: str | os.PathLike, *, within: str | os.PathLike | None = None) -> Path:
    """Create the folder ``path`` (and missing parents below ``within``) without
    following links; refuse a link or a file where a folder should be."""
    path = Path(path)
    marker = path / "_"  # _open_folder opens the parent of its argument: path itself
    with _open_folder(marker, within):
        pass
    return path


def pid_alive(pid: int) -> bool:
    """True when process ``pid`` runs (or it cannot be told: then its files stay)."""
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError, OverflowError):
        return True
    return True


def remove_stale_temporaries(folder: str | os.PathLike) -> list[Path]:
    """Delete temporary files left by writers of this module that died mid-write (their
    process is gone). Links planted under such names are removed, never followed."""
    folder = Path(folder)
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return removed
    for entry in entries:
        m = TEMP_RE.match(entry.name)
        if m and not pid_alive(int(m.group("pid"))):
            try:
                os.unlink(entry.path)
                removed.append(Path(entry.path))
            except OSError:
                pass
    return removed


# -- text that names files -------------------------------------------------------------------
#: Characters that would let a file name forge or hide log lines: line breaks, terminal
#: control sequences (ESC, CSI), other control characters, bidirectional overrides.
_UNSAFE_CHARS = re.compile("[\x00-\x08\x0a-\x1f\x7f-\x9f\u2028\u2029\u200e\u200f"
                           "\u202a-\u202e\u2066-\u2069]")
_NAMED = {"\n": "\\n", "\r": "\\r"}


def printable(text: str) -> str:
    """``text`` with control characters escaped (``\\n``, ``\\x1b``, ``\\u202e``): safe
    to put on one line of a log or a terminal. Tabs and ordinary characters stay."""
    def esc(m: re.Match) -> str:
        ch = m.group(0)
        if ch in _NAMED:
            return _NAMED[ch]
        code = ord(ch)
        return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"
    return _UNSAFE_CHARS.sub(esc, text)
