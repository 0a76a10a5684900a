"""Built-in plugin ``csvlog``: every logged metrics point also goes to ``RUN/metrics.csv``.

The first user of the non-model hooks: it implements ``ganstudio_metrics`` (called
in the training thread each time the engine logs) and ``ganstudio_run_finished``
(to close the file), exactly as a third-party logging integration would.

The CSV has the columns ``step``, ``time`` and then every metric in the order
it first appeared. When a later point brings a new metric (a model that reports
a value only after a while), the file is rewritten once with the wider header;
when a run resumes from a checkpoint, rows from the replayed steps are dropped,
as the engine does for ``metrics.jsonl``. Floats are written with ``repr`` so
they read back exactly. Switch it off with ``GANSTUDIO_BLOCK_PLUGINS=csvlog``.

Every write goes through :mod:`ganstudio.core.safe_files`, as a plugin writing
into a run folder should: the rewrite is a fresh temporary file renamed over
``metrics.csv``, appends never follow a link, and a ``metrics.csv`` that is a
link is refused (the hook's error is logged once and training goes on).
"""
from __future__ import annotations

import csv
import errno
import io
import os
import threading
from pathlib import Path
from typing import IO, Any

import ganstudio
from ganstudio.core.safe_files import UnsafeFileError, open_append, write_atomic

__version__ = "1.0.0"
GANSTUDIO_PLUGIN_API = 1

FILENAME = "metrics.csv"


def _cell(value: Any) -> str:
    if isinstance(value, bool):
        return str(int(value))
    if isinstance(value, float):
        return repr(value)
    return str(value)


class CsvMetricsWriter:
    """Appends metrics rows to one run folder's ``metrics.csv``."""

    def __init__(self, run_dir: str | os.PathLike):
        self.run_dir = Path(run_dir).absolute()
        self.path = self.run_dir / FILENAME
        self.columns: list[str] = []
        self.file: IO[str] | None = None
        self._resumed_checked = False

    # -- file handling -------------------------------------------------------------------------
    def _read_existing(self) -> tuple[list[str], list[dict[str, str]]]:
        try:
            fd = os.open(self.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except FileNotFoundError:
            return [], []
        except OSError as e:
            if e.errno in (errno.ELOOP, errno.EMLINK):
                raise UnsafeFileError(self.path, "is a symbolic link") from None
            raise
        with open(fd, newline="", encoding="utf-8", errors="replace") as f:
            reader = csv.DictReader(f)
            header = list(reader.fieldnames or [])
            rows = [r for r in reader if (r.get("step") or "").strip().isdigit()]
        return header, rows

    def _rewrite(self, columns: list[str], rows: list[dict[str, str]]) -> None:
        """Write header and rows to a temp file and swap it in (never a half file)."""
        self.close()
        buf = io.StringIO()
        writer = csv.DictWriter(buf, fieldnames=columns, restval="", extrasaction="ignore",
                                lineterminator="\n")
        writer.writeheader()
        writer.writerows(rows)
        write_atomic(self.path, buf.getvalue(), within=self.run_dir, fsync=False)
        self.columns = list(columns)

    def _open(self) -> IO[str]:
        if self.file is None:
            self.file = open_append(self.path, within=self.run_dir, newline="")
        return self.file

    # -- rows ----------------------------------------------------------------------------------
    def write(self, step: int, time: float, values: dict[str, Any]) -> None:
        row = {"step": str(int(step)), "time": _cell(float(time))}
        for key, value in values.items():
            if key not in ("step", "time"):
                row[key] = _cell(value)
        if not self._resumed_checked:
            # First point of this process for this run: keep earlier rows (a resumed
            # run) but drop the steps that are about to be replayed.
            self._resumed_checked = True
            header, rows = self._read_existing()
            kept = [r for r in rows if int(r["step"]) < int(step)]
            columns = header or ["step", "time"]
            columns += [k for k in row if k not in columns]
            if header != columns or len(kept) != len(rows) or not header:
                self._rewrite(columns, kept)
            else:
                self.columns = columns
        new = [k for k in row if k not in self.columns]
        if new:
            _header, rows = self._read_existing()
            self._rewrite(self.columns + new, rows)
        f = self._open()
        f.write(",".join(_quote(row.get(c, "")) for c in self.columns) + "\n")
        f.flush()  # readable live by other programs; one small write per logged point

    def close(self) -> None:
        if self.file is not None:
            try:
                self.file.close()
            finally:
                self.file = None


def _quote(cell: str) -> str:
    if any(ch in cell for ch in ',"\n\r'):
        return '"' + cell.replace('"', '""') + '"'
    return cell


_writers: dict[str, CsvMetricsWriter] = {}
_lock = threading.Lock()  # runs may train in several threads (studio + comparisons)


def _key(run_dir: str) -> str:
    return os.path.normcase(os.path.abspath(run_dir))


@ganstudio.hookimpl
def ganstudio_metrics(run_dir: str, step: int, time: float, values: dict) -> None:
    with _lock:
        key = _key(run_dir)
        writer = _writers.get(key)
        if writer is None:
            writer = _writers[key] = CsvMetricsWriter(run_dir)
        writer.write(step, time, values)


@ganstudio.hookimpl
def ganstudio_run_finished(run_dir: str, step: int, reason: str) -> None:
    with _lock:
        writer = _writers.pop(_key(run_dir), None)
    if writer is not None:
        writer.close()
