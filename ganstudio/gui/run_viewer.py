"""Showing runs in the Training view: open a past run, watch one another process writes,
and load a resumed run's history. Opening a run replaces everything on screen that
belonged to the previous one (title, dataset panel, settings, steps, elapsed time,
chart with its warning markers, grids)."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ganstudio.core.errors import UserError
from ganstudio.core.runs import RunFolder
from ganstudio.core.units import format_duration

from .status import step_text

#: warning kinds that come back as chart markers when a run is reopened
MARKER_KINDS = ("collapse", "imbalance", "nan")


def read_run(run_dir: Path) -> dict[str, Any]:
    """Everything the Training view shows of a run (runs in a background thread)."""
    rf = RunFolder(run_dir)
    info = rf.read_info()
    rows, _ = rf.read_metrics(0)
    frames = [(s, str(p)) for s, p in rf.list_samples()]
    markers = [m for m in rf.read_warnings() if m[1] in MARKER_KINDS]
    return {"info": info, "rows": rows, "frames": frames, "markers": markers}


def run_title(run_dir: Path, info: dict | None = None) -> str:
    name = (info or {}).get("display_name")
    return f"{name} ({run_dir.name})" if name else run_dir.name


class RunViewer(QObject):
    """Owns the watcher and what is shown of a run that is not training here.

    ``win`` is the main window; only its public parts are used (chart, samples,
    status, model_panel, dataset_panel, tabs, tasks, show_error, set_run).
    """

    runOpened = Signal(str)

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.watcher: Any = None
        self.total_steps = 0

    # -- opening -----------------------------------------------------------------------------
    def open_run(self, run_dir: str | Path) -> bool:
        """Show a past run's charts, grids, markers, settings and data (read in the
        background)."""
        win = self.win
        if win.trainer.training:
            win.show_error("Training is running; stop it before opening another run.")
            return False
        self.stop_watching()
        run_dir = Path(run_dir)

        def done(result: dict) -> None:
            info, rows = result["info"], result["rows"]
            self.show_run(run_dir, info)
            win.chart.add_rows(rows)
            for step, kind, message in result["markers"]:
                win.chart.add_marker(step, kind, message)
            win.samples.set_frames(result["frames"])
            last_row = rows[-1] if rows else {}
            last = max([r["step"] for r in rows] + [s for s, _ in result["frames"]],
                       default=None)
            if last is not None:
                win.status.set("step", step_text(last, self.total_steps))
            if isinstance(last_row.get("time"), (int, float)):
                win.status.set("elapsed", f"elapsed {format_duration(last_row['time'])}")
            win.clear_error()
            self.runOpened.emit(str(run_dir))

        win.tasks.run(lambda _ctx: read_run(run_dir), on_result=done,
                      on_error=lambda msg, _tb: win.show_error(msg), name="open-run")
        return True

    def show_run(self, run_dir: Path, info: dict) -> None:
        """Clear what belonged to the previous run and show this one's record."""
        win = self.win
        win.set_run(run_dir)
        win.info_bar.dismiss()  # what it said was about the previous run
        win.chart.clear()
        win.samples.clear()
        win.status.clear_run()
        win.tabs.setCurrentIndex(0)
        win.setWindowTitle(f"GAN Studio — {run_title(run_dir, info)}")
        win.status.set("device", str(info.get("device", "")))
        self.total_steps = int(info.get("total_steps") or 0)
        if info:
            self.show_record(run_dir, info)
        win.update_actions()

    def show_record(self, run_dir: Path, info: dict) -> None:
        """The run's model, settings, steps and dataset in the side panels."""
        win = self.win
        try:
            self.prefill(run_dir, info)
        except UserError as e:
            win.show_error(str(e))
        dataset = info.get("dataset") if isinstance(info.get("dataset"), dict) else {}
        folder = dataset.get("folder")
        if folder and Path(folder).is_dir():
            win.scan_dataset()  # counts and thumbnails of the run's own folder, read again
            return
        if "resolution" in dataset and "channels" in dataset:
            from ganstudio.core.data import DatasetReport
            try:
                win.dataset_panel.set_report(DatasetReport.from_dict(dataset))
            except (KeyError, TypeError, ValueError):
                pass
        if folder:  # (this also clears the thumbnails of the folder shown before)
            win.dataset_panel.set_error(f"This run trained on {folder}, which is gone.")

    def prefill(self, run_dir: str | Path, info: dict | None = None,
                keep_folder: bool = False, keep_steps: bool = False) -> dict:
        """Put a run's model, settings, steps and data folder into the side panels."""
        win = self.win
        info = info if info is not None else RunFolder(run_dir).read_info()
        mp = win.model_panel
        if not mp.select_model(info["model_id"]):
            raise UserError(f"run {Path(run_dir).name} was trained with model "
                            f"'{info['model_id']}', which is not installed here")
        if mp.form is not None:
            mp.form.set_values({k: v for k, v in info["config"].items()
                                if mp.current_spec().field(k)})
        if isinstance(info.get("total_steps"), int) and not keep_steps:
            mp.steps.setValue(info["total_steps"])
        folder = (info.get("dataset") or {}).get("folder")
        if folder and Path(folder).is_dir() and not keep_folder:
            win.dataset_panel.set_folder(folder, emit=False)
        return info

    # -- watching ----------------------------------------------------------------------------
    def watch_run(self, run_dir: str | Path, interval_ms: int = 1000, *,
                  own: bool = False) -> bool:
        """Follow a run that another process writes: new metrics and grids as they land.
        ``own``: the studio launched it (a run on several processes)."""
        from .watcher import RunWatcher
        win = self.win
        if win.trainer.training and not own:
            win.show_error("Training is running here; stop it before watching another run.")
            return False
        run_dir = Path(run_dir)
        if not RunFolder(run_dir).exists():
            win.show_error(f"{run_dir} is not a run folder (no run.json)")
            return False
        self.stop_watching()
        self.show_run(run_dir, {})
        w = RunWatcher(run_dir, interval_ms, self)
        w.tail.reset.connect(win.chart.clear)
        w.tail.rows.connect(self._on_rows)
        w.tail.frames.connect(win.samples.update_frames)
        # Methods of objects in the GUI thread (never lambdas): the deliveries are queued.
        w.tail.grid.connect(self._on_grid)
        w.tail.info.connect(self._on_info)
        w.tail.error.connect(self._on_error)
        self.watcher = w
        w.start()
        win.status.set("state", f"watching {run_dir.name}")
        return True

    def stop_watching(self) -> None:
        if self.watcher is not None:
            self.watcher.stop()
            self.watcher = None
            self.win.trainer.show_state()

    def _on_rows(self, rows: list) -> None:
        status = self.win.status
        self.win.chart.add_rows(rows)
        last = rows[-1]
        status.set("step", step_text(last["step"], self.total_steps))
        if isinstance(last.get("img_per_s"), (int, float)):
            status.set("speed", f"{last['img_per_s']:,.0f} img/s")
        if isinstance(last.get("time"), (int, float)):
            status.set("elapsed", f"elapsed {format_duration(last['time'])}")
        status.set_progress(last)

    def _on_grid(self, step: int, path: str, array: Any) -> None:
        self.win.samples.add_grid(step, array, path)

    def _on_error(self, message: str) -> None:
        self.win.say(f"watch: {message}", 5000)

    def _on_info(self, info: dict) -> None:
        self.total_steps = int(info.get("total_steps") or 0)
        self.win.status.set("device", str(info.get("device", "")))
        run_dir = self.watcher.run_dir if self.watcher is not None else None
        if run_dir is not None:
            self.win.setWindowTitle(f"GAN Studio — {run_title(run_dir, info)}")

    # -- a resumed run's past ----------------------------------------------------------------
    def load_history(self, run_dir: Path, live_rows: list[dict]) -> None:
        """Existing metrics, grids and markers of a resumed run, read in the background
        and put before what the new session has shown so far."""
        win = self.win

        def done(result: dict) -> None:
            if win.run_dir != run_dir:
                return
            first_live = live_rows[0]["step"] if live_rows else None
            old = [r for r in result["rows"] if first_live is None or r["step"] < first_live]
            live_markers = list(win.chart.markers)
            seen = {(step, kind) for step, kind, _m in live_markers}
            past = [m for m in result["markers"] if (m[0], m[1]) not in seen]
            win.chart.clear()
            win.chart.add_rows(old)
            win.chart.add_rows(live_rows)
            for step, kind, message in past + live_markers:
                win.chart.add_marker(step, kind, message)
            win.samples.merge_frames(result["frames"])

        win.tasks.run(lambda _ctx: read_run(run_dir), on_result=done, name="run-history")
