"""What the command line says: the console wording of errors, failures and file names.

Core returns data (events with kinds, suggestions as settings to change); this
module turns them into the lines a person reads in a terminal. The studio words
the same data its own way. Keep console wording here so that it is written once.
"""
from __future__ import annotations

import re
import shlex
from typing import Any

# torch's refusal of a pickled object advises loading with weights_only=False, which
# would run code from the file: never repeat that advice for a file someone sent us.
_UNSAFE_ADVICE = re.compile(r"\s*\(?Weights only load failed\.")
_SAFE_REASON = "it holds objects other than plain tensors and values, which are never loaded"
_ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def shown(name: Any) -> str:
    """A file name (or any text from outside) made safe to print on one line: control
    characters (newlines, escape sequences, ...) are written as ``\\n``, ``\\x1b``..."""
    text = str(name)
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii")
                   for c in text)


# Temporary siblings a file is written to before it is renamed into place:
# "grid.png.tmp", or ".grid.png.k3j4h5g6.tmp" with a random part.
_TEMP_NAME = re.compile(r"^(?:\.(?P<hidden>.+)\.[A-Za-z0-9_]+|(?P<plain>.+))\.tmp$")


def user_file(path: Any) -> str:
    """The file the user knows for an internal temporary file name (``x.png.tmp`` ->
    ``x.png``), so that a write error names the user's file."""
    text = str(path)
    head, sep, name = text.rpartition("/")
    m = _TEMP_NAME.match(name)
    if m and "." in (m.group("hidden") or m.group("plain")):   # "notes.tmp" stays
        name = m.group("hidden") or m.group("plain")
    return head + sep + name


def one_line(text: str) -> str:
    """A message made safe to print as one line, without torch's unsafe advice."""
    text = _without_unsafe_advice(str(text))
    text = _ANSI.sub("", text).strip()
    return shown(text)


def _without_unsafe_advice(text: str) -> str:
    """Cut torch's refusal text (and its advice) from the end of a message; where nothing
    else says why, say it plainly."""
    m = _UNSAFE_ADVICE.search(text)
    if m is None:
        return text
    head = text[:m.start()].rstrip()
    if not head or head.endswith(":"):
        head = f"{head} {_SAFE_REASON}".strip()
    return head


def error_line(message: str) -> str:
    return f"error: {one_line(message)}"


def warning_line(message: str) -> str:
    return f"warning: {one_line(message)}"


def older_checkpoint_warning(path: Any, why: str) -> str:
    return warning_line(f"{why}; using an older checkpoint")


# -- training failures ---------------------------------------------------------------------------
def failure_lines(failed: Any, out: str, events_path: Any) -> list[str]:
    """The lines printed when a training run ends with a ``Failed`` event: what went
    wrong, the command that continues (when the engine suggests settings), and where
    the traceback is."""
    lines = [error_line(failed.message)]
    suggestion = getattr(failed, "suggestion", None)
    if suggestion:
        sets = " ".join(f"--set {shlex.quote(item)}" for item in str(suggestion).split())
        lines.append(f"to continue: ganstudio train --resume --out {shlex.quote(shown(out))} "
                     f"{sets}")
    if getattr(failed, "traceback", None):
        lines.append(f"(traceback in {shown(events_path)})")
    return lines
