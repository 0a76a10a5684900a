"""Run folders: the one contract between whoever writes a run and whoever reads it.

::

    RUN/run.json          model id, plugin name+version, full config, dataset summary, device, created
    RUN/metrics.jsonl     one JSON object per logged point: {"step": int, "time": float, "<name>": number}
    RUN/samples/          fixed-noise grids as PNG, named by step (step_00001234.png)
    RUN/checkpoints/      atomic checkpoints (ckpt_00001234.pt), keep-last-N
    RUN/events.log        human-readable log: warnings, skipped files, errors

The GUI, the CLI and anything else read runs only through this module.
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

RUN_FORMAT = 1
SAMPLE_RE = re.compile(r"^step_(\d{8,})\.png$")


class RunError(UserError):
    """A run folder is missing, damaged, or not a run."""


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
    for key in ("plugin", "plugin_version", "created", "device", "kind"):
        if key in info and info[key] is not None and not isinstance(info[key], str):
            raise RunError(f"{where}: '{key}' must be a string")
    if "dataset" in info and info["dataset"] is not None and not isinstance(info["dataset"], dict):
        raise RunError(f"{where}: 'dataset' must be an object")
    if "total_steps" in info and not isinstance(info["total_steps"], int):
        raise RunError(f"{where}: 'total_steps' must be an integer")
    return info


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

    def inside(self, relative: str) -> Path:
        """Resolve ``relative`` inside the run folder; refuse paths that escape it."""
        base = self.path.resolve()
        target = (base / relative).resolve()
        if target != base and base not in target.parents:
            raise RunError(f"path '{relative}' points outside the run folder {base}")
        return target

    # -- existence ---------------------------------------------------------------------------
    def exists(self) -> bool:
        return self.info_path.is_file()

    def has_checkpoint(self) -> bool:
        from .checkpoints import list_checkpoints
        return bool(list_checkpoints(self.checkpoints_dir))

    # -- run.json ----------------------------------------------------------------------------
    def create(self, info: dict) -> None:
        """Create the folder structure and write run.json (``created`` is added)."""
        self.path.mkdir(parents=True, exist_ok=True)
        self.samples_dir.mkdir(exist_ok=True)
        self.checkpoints_dir.mkdir(exist_ok=True)
        info = dict(info)
        info.setdefault("format", RUN_FORMAT)
        info.setdefault("created", _now())
        self.write_info(info)

    def write_info(self, info: dict) -> None:
        validate_run_info(info)
        tmp = self.info_path.with_name("run.json.tmp")
        tmp.write_text(json.dumps(info, indent=2, sort_keys=True, default=str))
        os.replace(tmp, self.info_path)

    def read_info(self) -> dict:
        if not self.info_path.is_file():
            raise RunError(f"{self.path} is not a run folder (no run.json)")
        try:
            info = json.loads(self.info_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
            raise RunError(f"{self.info_path} cannot be read: {e}") from None
        return validate_run_info(info, str(self.info_path))

    def update_info(self, **changes: Any) -> dict:
        info = self.read_info()
        info.update(changes)
        self.write_info(info)
        return info

    # -- metrics -----------------------------------------------------------------------------
    def append_metrics(self, rows: list[dict]) -> None:
        if not rows:
            return
        text = "".join(json.dumps({k: _json_safe(v) for k, v in r.items()}) + "\n" for r in rows)
        with open(self.metrics_path, "a", encoding="utf-8") as f:
            f.write(text)

    def read_metrics(self, offset: int = 0) -> tuple[list[dict], int]:
        """Rows from byte ``offset``; returns (rows, new offset). A partly written last
        line (another process mid-write) is left for the next call."""
        try:
            with open(self.metrics_path, "rb") as f:
                f.seek(offset)
                data = f.read()
        except FileNotFoundError:
            return [], offset
        rows = []
        end = data.rfind(b"\n")
        if end < 0:
            return [], offset
        for line in data[:end].split(b"\n"):
            line = line.strip()
            if not line:
                continue
            try:
                row = json.loads(line)
            except (json.JSONDecodeError, UnicodeDecodeError):
                continue  # a torn line after a crash; skip it
            if isinstance(row, dict) and isinstance(row.get("step"), int):
                rows.append(row)
        return rows, offset + end + 1

    def truncate_metrics_after(self, step: int) -> None:
        """Drop lines logged after ``step`` (resume replays them from the checkpoint)."""
        if not self.metrics_path.exists():
            return
        rows, _ = self.read_metrics(0)
        kept = [r for r in rows if r["step"] <= step]
        tmp = self.metrics_path.with_name("metrics.jsonl.tmp")
        tmp.write_text("".join(json.dumps(r) + "\n" for r in kept), encoding="utf-8")
        os.replace(tmp, self.metrics_path)

    # -- samples -----------------------------------------------------------------------------
    def sample_path(self, step: int) -> Path:
        return self.samples_dir / f"step_{step:08d}.png"

    def list_samples(self) -> list[tuple[int, Path]]:
        if not self.samples_dir.is_dir():
            return []
        out = []
        for p in self.samples_dir.iterdir():
            m = SAMPLE_RE.match(p.name)
            if m and p.is_file():
                out.append((int(m.group(1)), p))
        return sorted(out)

    # -- events.log --------------------------------------------------------------------------
    def log(self, message: str, level: str = "INFO") -> None:
        stamp = _dt.datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        lines = str(message).rstrip("\n").split("\n")
        text = "".join(f"{stamp} {level:<7} {line}\n" for line in lines)
        try:
            self.path.mkdir(parents=True, exist_ok=True)
            with open(self.events_path, "a", encoding="utf-8") as f:
                f.write(text)
        except OSError:
            pass  # the log must never be the thing that stops a run

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
