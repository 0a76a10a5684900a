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
_UNSAFE_ADVICE = re.compile(r"Weights only load failed\..*", re.DOTALL)
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


def one_line(text: str) -> str:
    """A message made safe to print as one line, without torch's unsafe advice."""
    text = _UNSAFE_ADVICE.sub(_SAFE_REASON, str(text))
    text = _ANSI.sub("", text).strip()
    return shown(text)


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
        lines.append(f"to continue: ganstudio train --resume --out {shlex.quote(str(out))} "
                     f"{sets}")
    if getattr(failed, "traceback", None):
        lines.append(f"(traceback in {shown(events_path)})")
    return lines
