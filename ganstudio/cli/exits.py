"""The exit-code policy of every ``ganstudio`` command, in one place.

- 0: done (also when the reader of our output left early, e.g. ``| head -1``);
- 1: the work itself failed (training diverged, a plugin check failed, or an
  unexpected error: its traceback goes to a log file, one short line to stderr);
- 2: the user can fix it (``UserError``: bad path, bad setting, bad value; or an
  ``OSError`` about a file: permission, disk full), one line ``error: ...`` on
  stderr naming the file, never a traceback;
- 130: interrupted by a second Ctrl-C (the first one stops training cleanly).

``GANSTUDIO_TRACEBACK=1`` prints unexpected tracebacks on stderr as well.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import traceback
from pathlib import Path
from typing import Callable

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def run_command(func: Callable[[argparse.Namespace], int], args: argparse.Namespace) -> int:
    """Run one command under the policy above and return its exit code."""
    from ganstudio.cli.messages import error_line, shown, user_file
    from ganstudio.core.errors import UserError
    try:
        return int(func(args) or EXIT_OK)
    except UserError as e:
        print(error_line(str(e)), file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("\naborted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        _silence_stdout()
        return EXIT_OK
    except OSError as e:
        if e.filename is None:
            return _unexpected(e)
        name = shown(user_file(e.filename))
        print(error_line(f"{name}: {e.strerror or e}"), file=sys.stderr)
        return EXIT_USAGE
    except Exception as e:  # noqa: BLE001 - the last line of defence: log, say it shortly
        return _unexpected(e)


def _unexpected(e: BaseException) -> int:
    from ganstudio.cli.messages import error_line
    log = write_crash_log(e)
    where = f"; traceback in {log}" if log else ""
    print(error_line(f"unexpected {type(e).__name__}: {e}{where}"), file=sys.stderr)
    if os.environ.get("GANSTUDIO_TRACEBACK"):
        traceback.print_exc()
    return EXIT_FAILED


def _silence_stdout() -> None:
    """After a broken pipe, point stdout at /dev/null so the interpreter's final flush
    does not print a second error."""
    try:
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    except (OSError, ValueError):
        pass


def crash_log_folder() -> Path:
    override = os.environ.get("GANSTUDIO_LOG_DIR")
    if override:
        return Path(override)
    import platformdirs
    return Path(platformdirs.user_log_dir("ganstudio", appauthor=False))


def write_crash_log(error: BaseException) -> Path | None:
    """Write the traceback of ``error`` to a new file in the log folder; None if that fails."""
    text = "".join(traceback.format_exception(type(error), error, error.__traceback__))
    header = f"ganstudio {' '.join(sys.argv[1:])}\n{time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
    try:
        folder = crash_log_folder()
        folder.mkdir(parents=True, exist_ok=True)
        path = folder / f"crash-{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}.log"
        with open(path, "x", encoding="utf-8") as f:
            f.write(header + text)
        return path
    except OSError:
        return None
