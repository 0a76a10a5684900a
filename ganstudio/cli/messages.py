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


# -- suggestions (settings to change, run options, an action) -------------------------------------
#: the command-line option of each run option the engine may suggest
RUN_OPTION_FLAGS = {"precision": "--precision", "device": "--device"}


def setting_text(settings: dict) -> str:
    """``{"lr_g": 0.0001, "batch_size": 8}`` -> ``lr_g=0.0001 batch_size=8``."""
    return " ".join(f"{k}={_value(v)}" for k, v in settings.items())


def _value(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:g}"
    if isinstance(value, (list, tuple)):
        return ",".join(_value(v) for v in value)
    if value is None:
        return "auto"
    return str(value)


def set_args(settings: dict, run_options: dict | None = None) -> str:
    """The command-line arguments that apply a suggestion."""
    args = [f"--set {shlex.quote(f'{k}={_value(v)}')}" for k, v in settings.items()]
    for key, value in (run_options or {}).items():
        flag = RUN_OPTION_FLAGS.get(key)
        if flag:
            args.append(f"{flag} {shlex.quote(_value(value))}")
    return " ".join(args)


def _failure_advice(failed: Any) -> str:
    """What to do, in console words, for each kind of failure."""
    kind = getattr(failed, "kind", "")
    settings = dict(getattr(failed, "settings", None) or {})
    options = dict(getattr(failed, "run_options", None) or {})
    if kind == "out_of_memory" and settings:
        return f"; try a smaller batch ({setting_text(settings)}) and resume"
    if kind == "nan" and settings:
        return f"; resume with lower learning rates ({setting_text(settings)})"
    if kind == "precision" and options.get("precision"):
        return f"; resume with --precision {options['precision']}"
    if settings:
        return f"; try {setting_text(settings)}"
    return ""


def failure_lines(failed: Any, out: str, events_path: Any) -> list[str]:
    """The lines printed when a training run ends with a ``Failed`` event: what went
    wrong and what to do, the command that continues (when the engine suggests
    settings or run options), and where the traceback is."""
    lines = [error_line(failed.message + _failure_advice(failed))]
    args = set_args(dict(getattr(failed, "settings", None) or {}),
                    dict(getattr(failed, "run_options", None) or {}))
    if args:
        lines.append(f"to continue: ganstudio train --resume --out {shlex.quote(shown(out))} "
                     f"{args}")
    if getattr(failed, "traceback", None):
        lines.append(f"(traceback in {shown(events_path)})")
    return lines


def event_warning_line(warning: Any) -> str:
    """A Warning event in console words, with its advice (a setting to change, or that
    the folder may be too small or too varied)."""
    text = warning.message
    settings = dict(getattr(warning, "settings", None) or {})
    action = getattr(warning, "action", "")
    if settings and action == "rollback":
        text += f"; roll back with lower learning rates ({set_args(settings)})"
    elif settings and action == "restart":
        text += f"; start again with {set_args(settings)}"
    elif settings:
        text += f"; try {set_args(settings)} (resume with it)"
    elif action == "add_images":
        text += ("; the usual remedies are already in use: the folder may be too small or "
                 "too varied (add images, or keep to one kind of picture)")
    return warning_line(text)
