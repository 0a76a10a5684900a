"""A run's history kept safe: guarded reading of metrics lines, and setting the history
aside when a run starts over.

A metrics line is parsed only after a size and a nesting guard (a crafted line of
100,000 brackets would exhaust the JSON parser's recursion); a line that cannot
be read is reported with the reason, never raised. A restart moves everything of
the run's past into ``RUN/previous-<date>-<time>/`` instead of deleting it.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
from pathlib import Path

from .safe_files import make_dirs, write_atomic

#: A metrics line longer than this is not a metrics row (a real one is ~200 bytes).
MAX_METRICS_LINE = 64 * 1024
#: Deepest JSON nesting read from a metrics line (a real row is one flat object).
MAX_METRICS_DEPTH = 16
#: Names kept in place when a run's history is set aside for a restart.
KEPT_ON_RESTART = ("run.json", "events.log", ".lock")


def _json_depth(line: bytes) -> int:
    """Deepest bracket nesting of a JSON text (brackets inside strings do not count)."""
    depth = deepest = 0
    in_string = escaped = False
    for byte in line:
        if in_string:
            if escaped:
                escaped = False
            elif byte == 0x5C:      # backslash
                escaped = True
            elif byte == 0x22:      # closing quote
                in_string = False
        elif byte == 0x22:
            in_string = True
        elif byte in (0x5B, 0x7B):  # [ {
            depth += 1
            deepest = max(deepest, depth)
        elif byte in (0x5D, 0x7D):
            depth -= 1
    return deepest


def parse_metrics_line(line: bytes) -> tuple[dict | None, str]:
    """One metrics.jsonl line -> (row, "") or (None, why it cannot be read).

    Guarded: an oversized or deeply nested line is refused before the JSON parser
    sees it (a crafted line of 100,000 brackets would exhaust its recursion)."""
    if len(line) > MAX_METRICS_LINE:
        return None, f"too long ({len(line):,} bytes)"
    if line.count(b"[") + line.count(b"{") > MAX_METRICS_DEPTH \
            and _json_depth(line) > MAX_METRICS_DEPTH:
        return None, "nested too deeply"
    try:
        row = json.loads(line)
    except RecursionError:
        return None, "nested too deeply"
    except (ValueError, UnicodeDecodeError):
        return None, "not valid JSON (a line cut short by a crash, or damaged)"
    if not isinstance(row, dict):
        return None, "not a JSON object"
    step = row.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        return None, "no valid 'step'"
    return row, ""


def set_history_aside(run_dir: Path) -> Path | None:
    """Move a run's history (metrics, grids, checkpoints and whatever else a plugin wrote)
    into ``run_dir/previous-<date>-<time>/`` with a copy of run.json, so a restart loses
    nothing: that folder is a complete run folder of its own. run.json and events.log
    stay. Returns the new folder, or None when there was nothing to move."""
    names = []
    for entry in os.scandir(run_dir):
        if entry.name in KEPT_ON_RESTART or entry.name.startswith("previous-"):
            continue
        names.append(entry.name)
    if not names:
        return None
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    dest = run_dir / f"previous-{stamp}"
    n = 1
    while os.path.lexists(dest):
        n += 1
        dest = run_dir / f"previous-{stamp}-{n}"
    make_dirs(dest, within=run_dir)
    if (run_dir / "run.json").is_file() and not (run_dir / "run.json").is_symlink():
        info_text = (run_dir / "run.json").read_bytes()
        write_atomic(dest / "run.json", info_text, within=run_dir)
    for name in names:
        os.rename(run_dir / name, dest / name)  # renames the entry; links not followed
    return dest
