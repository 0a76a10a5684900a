"""Run folders: the one contract between whoever writes a run and whoever reads it.

::

    RUN/run.json          model id, plugin name+version, full config, dataset summary, device, created
    RUN/metrics.jsonl     one JSON object per logged point: {"step": int, "time": float, "<name>": number}
    RUN/samples/          fixed-noise grids as PNG, named by step (step_00001234.png)
    RUN/checkpoints/      atomic checkpoints (ckpt_00001234.pt), keep-last-N
    RUN/events.log        human-readable log: warnings, skipped files, errors

The GUI, the CLI and anything else read runs only through this module.

Safety: a run folder may come from someone else (a shared drive, a download).
Its entries are plain files and folders; a symbolic link among them (say
``events.log`` pointing at a shell start-up file) is refused rather than
followed. Every write goes through :mod:`ganstudio.core.safe_files` (fresh
temporary names created exclusively without following links, then renamed;
appends that refuse links and shared hard links). run.json is size-capped and
validated, metrics lines are parsed with a size and depth guard (an unreadable
line is skipped and noted), lines written to events.log have their control
characters escaped, and every other path taken from a run goes through
:meth:`RunFolder.inside`.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .errors import UserError
from .run_lock import RunError, RunLock  # noqa: F401 - part of this module's interface
from .run_history import (MAX_METRICS_DEPTH, MAX_METRICS_LINE, parse_metrics_line,  # noqa: F401
                          set_history_aside)
from .safe_files import make_dirs, open_append, printable, write_atomic

RUN_FORMAT = 1
SAMPLE_RE = re.compile(r"^step_(\d{8,})\.png$")
#: run.json larger than this is refused unread (a real one is a few kilobytes).
MAX_INFO_BYTES = 4 * 1024 * 1024
MAX_DISPLAY_NAME = 120
MAX_EVENTS_BYTES = 16 * 1024 * 1024  # events.log read back for warning markers
#: Entries of a run folder that must never be symbolic links.
_MEMBERS = ("run.json", "metrics.jsonl", "events.log", "samples", "checkpoints")
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
#: Other files written at the top of a run folder (plugins' and the explorer's).
_ALSO_WRITTEN = frozenset({"metrics.csv", "explore.json", ".lock"})


def _now() -> str:
    return _dt.datetime.now().astimezone().isoformat(timespec="seconds")


def _json_safe(value: Any) -> Any:
    """Replace NaN/Inf (not valid JSON) with None so every line stays parseable."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def validate_run_info(info: Any, where: str = "run.json") -> dict:
    """Check the shape of run.json; raise RunError naming what is wrong."""
    if not isinstance(info, dict):
        raise RunError(f"{where}: expected a JSON object")
    for key, typ in (("model_id", str), ("config", dict)):
        if not isinstance(info.get(key), typ):
            raise RunError(f"{where}: '{key}' is missing or not a {typ.__name__}")
    for key in ("plugin", "plugin_version", "created", "device", "kind", "display_name"):
        if key in info and info[key] is not None and not isinstance(info[key], str):
            raise RunError(f"{where}: '{key}' must be a string")
    if "dataset" in info and info["dataset"] is not None and not isinstance(info["dataset"], dict):
        raise RunError(f"{where}: 'dataset' must be an object")
    if "total_steps" in info and (not isinstance(info["total_steps"], int)
                                  or isinstance(info["total_steps"], bool)
                                  or info["total_steps"] < 0):
        raise RunError(f"{where}: 'total_steps' must be a non-negative integer")
    fmt = info.get("format", RUN_FORMAT)
    if not isinstance(fmt, int) or isinstance(fmt, bool):
        raise RunError(f"{where}: 'format' must be an integer")
    if fmt > RUN_FORMAT:
        raise RunError(f"{where}: written by a newer GAN Studio (run format {fmt}; this "
                       f"version reads up to {RUN_FORMAT}); update GAN Studio to open it")
    if not info["model_id"].strip():
        raise RunError(f"{where}: 'model_id' is empty")
    dataset = info.get("dataset")
    if isinstance(dataset, dict) and dataset.get("folder") is not None \
            and not isinstance(dataset["folder"], str):
        raise RunError(f"{where}: 'dataset.folder' must be a string")
    return info


_WARNING_TAG_RE = re.compile(r"^(?P<text>.*) \[(?P<kind>[a-z_]+) at step (?P<step>\d+)\]$")


def warning_tag(kind: str, step: int) -> str:
    """What ends an engine warning's line in events.log, so a reopened run finds it:
    ``[collapse at step 120]`` (read back by :meth:`RunFolder.read_warnings`)."""
    return f"[{kind} at step {int(step)}]"


@dataclass
class RunSummary:
    path: Path
    model_id: str
    created: str
    steps: int
    thumbnail: Path | None
    info: dict


class RunFolder:
    """Read and write one run folder. Safe to read while another process writes it."""

    def __init__(self, path: str | os.PathLike):
        self.path = Path(path).expanduser().absolute()
        #: Lines of metrics.jsonl that could not be read: (line number, why), filled by
        #: :meth:`read_metrics` (line numbers count from the start of the file when it was
        #: read from the start; 0 when unknown).
        self.unreadable_lines: list[tuple[int, str]] = []
        self._read_end = (0, 0)       # (byte offset, line number) where the last read ended
        self._tail_checked = False     # appends: the file's last line was checked once

    # -- layout ------------------------------------------------------------------------------
    @property
    def info_path(self) -> Path:
        return self.path / "run.json"

    @property
    def metrics_path(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def samples_dir(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints_dir(self) -> Path:
        return self.path / "checkpoints"

    @property
    def events_path(self) -> Path:
        return self.path / "events.log"

    def inside(self, relative: str | os.PathLike) -> Path:
        """Resolve ``relative`` inside the run folder; refuse paths that escape it
        (``..``, absolute paths, symbolic links pointing elsewhere)."""
        base = self.path.resolve()
        rel = os.fspath(relative)
        if "\0" in rel:
            raise RunError(f"path {rel!r} is not a valid path")
        target = (base / rel).resolve()
        if target != base and base not in target.parents:
            raise RunError(f"path '{rel}' points outside the run folder {base}")
        return target

    def check_layout(self) -> None:
        """Refuse a run folder whose contract entries are symbolic links or the wrong kind
        (a crafted ``events.log`` link would make every log line land in another file)."""
        for name in _MEMBERS:
            p = self.path / name
            if p.is_symlink():
                raise RunError(f"{p} is a symbolic link; a run folder must hold its own "
                               "files (refused for safety)")
            if name in ("samples", "checkpoints"):
                if p.exists() and not p.is_dir():
                    raise RunError(f"{p} should be a folder")
            elif p.exists() and not p.is_file():
                raise RunError(f"{p} should be a file")

    def check_for_writing(self) -> None:
        """Before a run writes into an existing folder: :meth:`check_layout`, and no symbolic
        link among the sample grids, the checkpoints or the other files GAN Studio and its
        built-in plugins write. (Writes never follow a link anyway; this refuses the
        tampered folder at once, naming the link, before anything is changed.)"""
        from .checkpoints import KEEP_FILE, NAME_RE
        self.check_layout()
        places = [(self.path, lambda n: n in _ALSO_WRITTEN),
                  (self.samples_dir, SAMPLE_RE.match),
                  (self.checkpoints_dir, lambda n: n == KEEP_FILE or NAME_RE.match(n))]
        for folder, written in places:
            try:
                entries = list(os.scandir(folder))
            except OSError:
                continue
            for entry in entries:
                if written(entry.name) and entry.is_symlink():
                    raise RunError(f"{entry.path} is a symbolic link; a run folder must hold "
                                   "its own files (refused for safety)")

    # -- existence ---------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.info_path.is_file()

    def has_checkpoint(self) -> bool:
        from .checkpoints import list_checkpoints
        return bool(list_checkpoints(self.checkpoints_dir))

    # -- run.json ----------------------------------------------------------------------------
    def create(self, info: dict) -> None:
        """Create the folder structure and write run.json (``created`` is added)."""
        if self.path.exists() and not self.path.is_dir():
            raise RunError(f"{self.path} exists and is not a folder")
        self.path.mkdir(parents=True, exist_ok=True)
        self.check_layout()
        make_dirs(self.samples_dir, within=self.path)
        make_dirs(self.checkpoints_dir, within=self.path)
        info = dict(info)
        info.setdefault("format", RUN_FORMAT)
        info.setdefault("created", _now())
        self.write_info(info)

    def write_info(self, info: dict) -> None:
        validate_run_info(info)
        write_atomic(self.info_path, json.dumps(info, indent=2, sort_keys=True, default=str),
                     within=self.path, errors="backslashreplace")

    def read_info(self) -> dict:
        """run.json, checked: size, JSON, shape, and no symbolic links in the layout."""
        if not self.info_path.is_file():
            raise RunError(f"{self.path} is not a run folder (no run.json)")
        self.check_layout()
        try:
            size = self.info_path.stat().st_size
            if size > MAX_INFO_BYTES:
                raise RunError(f"{self.info_path} is {size:,} bytes; a run.json is a few "
                               "kilobytes (refused)")
            info = json.loads(self.info_path.read_text(encoding="utf-8"))
        except RecursionError:
            raise RunError(f"{self.info_path} cannot be read: nested too deeply") from None
        except (OSError, UnicodeDecodeError, ValueError) as e:
            raise RunError(f"{self.info_path} cannot be read: {e}") from None
        return validate_run_info(info, str(self.info_path))

    def update_info(self, **changes: Any) -> dict:
        info = self.read_info()
        info.update(changes)
        self.write_info(info)
        return info

    def set_display_name(self, name: str) -> dict:
        """Name the run for people (``display_name`` in run.json, written atomically);
        an empty name removes it. The folder keeps its name."""
        name = " ".join(str(name).split())
        if len(name) > MAX_DISPLAY_NAME:
            raise RunError(f"a run's name is at most {MAX_DISPLAY_NAME} characters "
                           f"(this one has {len(name)})")
        info = self.read_info()
        if name:
            info["display_name"] = name
        else:
            info.pop("display_name", None)
        self.write_info(info)
        return info

    # -- metrics -----------------------------------------------------------------------------
    def append_metrics(self, rows: list[dict]) -> None:
        """Append rows (one JSON line each); never through a link (UnsafeFileError)."""
        if not rows:
            return
        text = "".join(json.dumps({k: _json_safe(v) for k, v in r.items()}) + "\n" for r in rows)
        if not self._tail_checked:
            # A crash mid-line leaves a torn last line: start on a fresh line so the first
            # new row is not glued to it (and lost with it).
            self._tail_checked = True
            if not self._ends_with_newline():
                text = "\n" + text
        with open_append(self.metrics_path, within=self.path) as f:
            f.write(text)

    def _ends_with_newline(self) -> bool:
        try:
            fd = os.open(self.metrics_path, os.O_RDONLY | _NOFOLLOW)
        except OSError:
            return True
        try:
            size = os.fstat(fd).st_size
            return size == 0 or os.pread(fd, 1, size - 1) == b"\n"
        except OSError:
            return True
        finally:
            os.close(fd)

    def read_metrics(self, offset: int = 0) -> tuple[list[dict], int]:
        """Rows from byte ``offset``; returns (rows, new offset). A partly written last
        line (another process mid-write) is left for the next call. Lines that cannot be
        read (damaged, oversized, nested too deeply) are skipped and listed in
        :attr:`unreadable_lines`."""
        try:
            fd = os.open(self.metrics_path, os.O_RDONLY | _NOFOLLOW)
        except FileNotFoundError:
            return [], offset
        except OSError as e:
            raise RunError(f"{self.metrics_path} cannot be read: {e.strerror or e}") from None
        with os.fdopen(fd, "rb") as f:
            f.seek(offset)
            data = f.read()
        if offset == 0:
            line_no, self.unreadable_lines = 0, []
        elif offset == self._read_end[0]:
            line_no = self._read_end[1]
        else:
            line_no = -1  # unknown
        rows = []
        end = data.rfind(b"\n")
        if end < 0:
            return [], offset
        for line in data[:end].split(b"\n"):
            if line_no >= 0:
                line_no += 1
            line = line.strip()
            if not line:
                continue
            row, problem = parse_metrics_line(line)
            if row is None:
                self.unreadable_lines.append((max(line_no, 0), problem))
                continue
            rows.append(row)
        new_offset = offset + end + 1
        self._read_end = (new_offset, max(line_no, 0))
        return rows, new_offset

    def truncate_metrics_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (resume replays them from the checkpoint).

        The file is rewritten only when a row goes (unreadable lines then go with it);
        unreadable lines are noted in events.log."""
        if not self.metrics_path.exists():
            return
        rows, _end = self.read_metrics(0)
        kept = [r for r in rows if r["step"] <= step]
        bad = self.unreadable_lines
        for line_no, why in bad[:20]:
            self.log(f"metrics.jsonl line {line_no}: {why}; skipped", "WARNING")
        if len(bad) > 20:
            self.log(f"metrics.jsonl: {len(bad) - 20} more unreadable lines skipped", "WARNING")
        if len(kept) == len(rows):
            return
        write_atomic(self.metrics_path,
                     "".join(json.dumps({k: _json_safe(v) for k, v in r.items()}) + "\n"
                             for r in kept), within=self.path)
        self._tail_checked = True

    # -- samples -----------------------------------------------------------------------------
    def sample_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:08d}.png"

    def list_samples(self) -> list[tuple[int, Path]]:
        if not self.samples_dir.is_dir():
            return []
        out = []
        for p in self.samples_dir.iterdir():
            m = SAMPLE_RE.match(p.name)
            if m and p.is_file() and not p.is_symlink():
                out.append((int(m.group(1)), p))
        return sorted(out)

    def prune_samples_after(self, step: int) -> int:
        """Remove sample grids newer than ``step`` (a resume goes back to a checkpoint:
        the time-lapse must not keep frames of the lost future). Returns how many."""
        removed = 0
        for s, p in self.list_samples():
            if s > step:
                try:
                    p.unlink()
                    removed += 1
                except OSError:
                    pass
        return removed

    # -- one writer at a time ----------------------------------------------------------------
    def lock(self) -> "RunLock":
        """Take the run's writer lock (``RUN/.lock``) or raise RunError if another
        process or thread trains this run. The OS drops the lock when the process dies,
        so a killed run never stays locked."""
        return RunLock(self.path / ".lock")

    def is_busy(self) -> bool:
        """Whether another process or window holds this run's writer lock (a read-only
        probe that never takes the lock; see :meth:`RunLock.held_elsewhere`)."""
        return RunLock.held_elsewhere(self.path / ".lock")

    # -- events.log --------------------------------------------------------------------------
    def log(self, message: str, level: str = "INFO") -> None:
        """Append ``message`` to events.log, one stamped line per line of the message.

        Control characters (terminal escapes, carriage returns, ...) are escaped, and the
        lines after the first are marked ``| ``: nothing in a message (a file name with
        a newline, say) can forge an entry of its own."""
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = [printable(line) for line in str(message).rstrip("\n").split("\n")]
        text = "".join(f"{stamp} {level:<7} {'| ' if i else ''}{line}\n"
                       for i, line in enumerate(lines))
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open_append(self.events_path, within=self.path) as f:
                f.write(text)
        except (OSError, UserError):
            pass  # the log must never be the thing that stops a run (links are not followed)

    def read_warnings(self) -> list[tuple[int, str, str]]:
        """(step, kind, message) of each engine warning in events.log, oldest first."""
        try:
            fd = os.open(self.events_path, os.O_RDONLY | _NOFOLLOW)
            with os.fdopen(fd, "rb") as f:
                data = f.read(MAX_EVENTS_BYTES)
        except OSError:
            return []
        out = []
        for line in data.decode("utf-8", "replace").splitlines():
            parts = line.split(None, 3)  # date, time, level, message
            if len(parts) == 4 and parts[2] == "WARNING":
                text = parts[3][2:] if parts[3].startswith("| ") else parts[3]
                m = _WARNING_TAG_RE.match(text)
                if m:
                    out.append((int(m["step"]), m["kind"], m["text"]))
        return out

    # -- history: what a restart must not lose ---------------------------------------------
    def has_history(self) -> bool:
        """True when the folder holds anything of a run's past: metrics rows, sample grids
        after step 0, checkpoints (usable or set aside). (The step-0 grid alone is not: a
        start from step 0 draws the same one again.)"""
        try:
            if self.metrics_path.stat().st_size > 0:
                return True
        except OSError:
            pass
        if any(step > 0 for step, _ in self.list_samples()):
            return True
        try:
            return any(e.name.startswith("ckpt_") for e in os.scandir(self.checkpoints_dir))
        except OSError:
            return False

    def history_bound(self) -> int | None:
        """The largest step this run can have reached by its own records (the last
        metrics row, run.json's ``total_steps``); None when it keeps none. A checkpoint
        claiming a later step did not come from this run."""
        bound = None
        try:
            rows, _ = self.read_metrics(0)
        except UserError:
            rows = []
        if rows:
            bound = max(r["step"] for r in rows)
        try:
            total = self.read_info().get("total_steps")
        except UserError:
            total = None
        if isinstance(total, int) and not isinstance(total, bool):
            bound = total if bound is None else max(bound, total)
        return bound

    def set_history_aside(self) -> Path | None:
        """Move the run's history (metrics, grids, checkpoints and whatever else a plugin
        wrote) into ``RUN/previous-<date>-<time>/`` with a copy of run.json, so a restart
        loses nothing: that folder is a complete run folder of its own. run.json and
        events.log stay. Returns the new folder, or None when there was nothing to move."""
        dest = set_history_aside(self.path)
        self.unreadable_lines, self._read_end, self._tail_checked = [], (0, 0), False
        return dest

    # -- summaries ---------------------------------------------------------------------------
    def last_step(self) -> int:
        from .checkpoints import list_checkpoints, NAME_RE
        steps = [int(NAME_RE.match(p.name).group(1)) for p in list_checkpoints(self.checkpoints_dir)]
        samples = self.list_samples()
        if samples:
            steps.append(samples[-1][0])
        return max(steps, default=0)

    def summary(self) -> RunSummary:
        info = self.read_info()
        samples = self.list_samples()
        return RunSummary(self.path, info["model_id"], str(info.get("created", "")),
                          self.last_step(), samples[-1][1] if samples else None, info)


def list_runs(root: str | os.PathLike) -> list[RunSummary]:
    """Every valid run folder directly below ``root`` (newest first); damaged ones skipped."""
    root = Path(root)
    out = []
    if not root.is_dir():
        return out
    for child in root.iterdir():
        rf = RunFolder(child)
        if child.is_dir() and rf.exists():
            try:
                out.append(rf.summary())
            except UserError:
                continue
    out.sort(key=lambda s: s.created, reverse=True)
    return out
