"""The training controller: the start / pause / resume / stop state machine of one run,
the worker's events on screen, and resuming a past run on its own data."""
from __future__ import annotations

import datetime as _dt
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Signal

from ganstudio.core.errors import ConfigError, UserError
from ganstudio.core.runs import RunFolder

from .run_viewer import run_title
from .status import SpeedMeter, device_text, step_text
from .wording import advice, settings_text, with_advice

STATES = ("idle", "preparing", "running", "paused", "stopping")


def dataset_problem(info: dict) -> str | None:
    """Why a run cannot resume on the folder it recorded (gone, or holding a different
    number of images than it trained on), or None."""
    from ganstudio.core.data import scan_folder
    dataset = info.get("dataset") if isinstance(info.get("dataset"), dict) else {}
    folder = dataset.get("folder")
    if not folder:
        return "its run.json records no image folder"
    if not Path(folder).is_dir():
        return f"the folder it trained on, {folder}, is gone"
    try:
        files, skipped = scan_folder(folder)
    except UserError as e:
        return str(e)
    recorded = dataset.get("images")
    recorded_skipped = len(dataset.get("skipped") or [])
    if isinstance(recorded, int) and len(files) + len(skipped) != recorded + recorded_skipped:
        return (f"the folder it trained on, {folder}, has changed: it held "
                f"{recorded + recorded_skipped:,} image files then and holds "
                f"{len(files) + len(skipped):,} now")
    return None


def recorded_init_from(run_dir: Path) -> str | None:
    """``RUN:STEP`` a run recorded starting from (its run.json ``init_from``), or None."""
    try:
        record = RunFolder(run_dir).read_info().get("init_from") if \
            RunFolder(run_dir).exists() else None
    except UserError:
        return None
    if isinstance(record, dict) and record.get("run") and isinstance(record.get("step"), int):
        return f"{record['run']}:{record['step']}"
    return None


def remove_empty_run_folder(run_dir: Path) -> None:
    """Remove a run folder that holds nothing but its lock file (a run that never began)."""
    try:
        entries = list(run_dir.iterdir())
        if all(e.name == ".lock" and e.is_file() for e in entries):
            for e in entries:
                e.unlink()
            run_dir.rmdir()
    except OSError:
        pass


class TrainingController(QObject):
    """Owns the training session and its state: idle, preparing, running, paused, stopping.

    ``win`` is the main window; only its public parts are used.
    """

    stateChanged = Signal(str)
    done = Signal()
    progressed = Signal()   # a grid or checkpoint was saved: the run's step count moved on

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.state = "idle"
        self.session: Any = None
        self.events_seen: dict[str, int] = {}
        self.last_values: dict = {}
        self.last_finished: Any = None
        self.live_rows: list[dict] = []
        self.meter = SpeedMeter()
        self.first_run_dir: str | None = win.options.run
        self.ask_folder = self._ask_folder  # tests replace it
        self.starting_from: Any = None      # the PendingStart the session's run starts from
        self.new_folder = False             # the session's run folder did not exist before

    @property
    def training(self) -> bool:
        return self.session is not None and self.session.running

    def set_state(self, state: str) -> None:
        assert state in STATES, state
        self.state = state
        self.show_state()
        self.win.update_actions()
        self.stateChanged.emit(state)

    def show_state(self) -> None:
        loading = self.win.pm is None and self.state == "idle"
        self.win.status.set("state", "loading models…" if loading else
                            ("ready" if self.state == "idle" else self.state))

    # -- commands ----------------------------------------------------------------------------
    def new_run_dir(self, spec_id: str) -> Path:
        stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
        root = self.win.studio.runs_root()
        path = root / f"{spec_id}-{stamp}"
        n = 1
        while path.exists():
            n += 1
            path = root / f"{spec_id}-{stamp}-{n}"
        return path

    def start(self, resume_dir: str | Path | None = None,
              data_folder: str | Path | None = None, restart: bool = False) -> bool:
        """Start (or, with ``resume_dir``, resume) a run in a worker thread. A resumed run
        trains on the folder its run.json records unless ``data_folder`` is given (the
        user chose another one after being told why). ``restart``: train ``resume_dir``
        from step 0 (the engine keeps its history in a ``previous-*`` folder)."""
        from .worker import TrainingSession, TrainingWorker
        win = self.win
        if self.state != "idle" or self.training:
            return False
        spec = win.model_panel.current_spec()
        if win.pm is None or spec is None:
            win.show_error("The models are still loading; try again in a moment.")
            return False
        try:
            config = win.model_panel.config()
        except ConfigError as e:
            win.show_setting_error(e)
            return False
        resume = False
        if resume_dir is not None:
            run_dir, resume = Path(resume_dir), True
        elif self.first_run_dir:
            run_dir = Path(self.first_run_dir).expanduser().absolute()
            rf = RunFolder(run_dir)
            resume = rf.exists() and rf.has_checkpoint()
            self.first_run_dir = None
        else:
            run_dir = self.new_run_dir(spec.id)
        if resume and data_folder is None:
            if not self._check_own_data(run_dir):
                return False
            data = None  # the engine reads the run's own folder from its run.json
        else:
            data = data_folder if data_folder is not None else win.dataset_panel.folder
        if data is None and not resume:
            win.show_error("Choose a folder of images first (or use the demo images).",
                           [("Use demo images", win.use_demo_dataset)])
            return False
        # a new run may start from another run's networks (the Model dock says so); a
        # folder started over from step 0 starts again from what its run.json records
        self.starting_from = win.start_from.pending if not resume else None
        init_from = (self.starting_from.reference if self.starting_from is not None
                     else recorded_init_from(run_dir) if restart else None)
        self.new_folder = not run_dir.exists()
        win.viewer.stop_watching()
        win.clear_error()
        win.set_run(run_dir)
        self.events_seen = {}
        self.live_rows = []
        self.meter.reset()
        win.chart.clear()
        win.samples.clear()
        win.status.clear_run()
        device, nproc = win.model_panel.device_choice()
        if nproc > 1:        # all GPUs: the launcher in a child process, watched live
            return self._start_launched(spec, run_dir, data, config, device, nproc,
                                        resume=resume and not restart)
        worker = TrainingWorker(spec, run_dir, data_folder=data, overrides=config,
                                settings=win.model_panel.engine_settings(),
                                resume=resume and not restart, restart=restart,
                                init_from=init_from, plugin_manager=win.pm)
        for name in ("preparing", "prepared", "started", "metrics", "samples", "checkpoint",
                     "warning", "paused", "resumed", "finished", "failed", "refused", "done"):
            getattr(worker, name).connect(getattr(self, f"_on_{name}"))
        self.session = TrainingSession(worker, win.tasks)
        win.setWindowTitle(f"GAN Studio — {run_dir.name}")
        self.set_state("preparing")
        win.status.set("step", "preparing…")
        self.session.start()
        if resume and not restart:
            win.viewer.load_history(run_dir, self.live_rows)  # the run's earlier past
        return True

    def _start_launched(self, spec: Any, run_dir: Path, data: Any, config: dict,
                        device: str, nproc: int, resume: bool) -> bool:
        from .launched_run import LaunchedSession, train_command
        win = self.win
        argv = train_command(spec.id, data or "", run_dir, config,
                             win.model_panel.engine_settings(), nproc, device=device,
                             plugins_dir=win.options.plugins_dir)
        if resume:
            argv.append("--resume")
        if not data:      # a resumed run reads its own folder from its run.json
            i = argv.index("--data")
            del argv[i:i + 2]
        session = LaunchedSession.begin(self, argv, run_dir, nproc)
        if session is None:
            return False
        self.session = session
        win.setWindowTitle(f"GAN Studio — {run_dir.name}")
        self.set_state("preparing")
        win.status.set("step", f"starting {nproc} processes…")
        return True

    def _check_own_data(self, run_dir: Path) -> bool:
        """A resumed run keeps its own data: when the folder is gone or changed, say so and
        offer to choose another (run.json is rewritten only when the user does)."""
        try:
            info = RunFolder(run_dir).read_info()
        except UserError as e:
            self.win.show_error(str(e))
            return False
        problem = dataset_problem(info)
        if problem is None:
            folder = info["dataset"]["folder"]
            self.win.dataset_panel.set_folder(folder, emit=False)
            return True
        self.win.show_error(
            f"Cannot resume {run_title(run_dir, info)}: {problem}. Choose the folder to train "
            "it on from here (the run will record it), or leave the run as it is.",
            [("Choose a folder…", lambda: self.resume_on_chosen_folder(run_dir))],
            kind="resume-data")
        return False

    def _ask_folder(self) -> str:
        from PySide6.QtWidgets import QFileDialog
        return QFileDialog.getExistingDirectory(self.win, "Folder to resume the run on",
                                                self.win.dataset_panel.last_dir)

    def resume_on_chosen_folder(self, run_dir: str | Path) -> bool:
        folder = self.ask_folder()
        if not folder:
            return False
        self.win.dataset_panel.set_folder(folder, emit=False)
        return self.start(resume_dir=run_dir, data_folder=folder)

    def resume_run(self, run_dir: str | Path) -> bool:
        """Resume a past run from the run browser: its model, settings and its own data."""
        win = self.win
        if self.training:
            win.show_error("Training is running; stop it before resuming another run.")
            return False
        try:
            if win.run_dir is None or Path(run_dir).absolute() != win.run_dir.absolute():
                # another run than the one on screen: its settings; the one on screen keeps
                # what the user changed after opening it (more steps, a learning rate)
                win.viewer.prefill(run_dir, keep_folder=True, keep_steps=bool(win.options.steps))
        except UserError as e:
            win.show_error(str(e))
            return False
        win.tabs.setCurrentIndex(0)
        return self.start(resume_dir=run_dir)

    def pause(self) -> None:
        if self.session is not None and self.state == "running":
            self.session.worker.pause()

    def resume(self) -> None:
        if self.session is not None and self.state == "paused":
            self.session.worker.resume_training()

    def stop(self) -> None:
        if self.session is not None and self.state in ("preparing", "running", "paused"):
            self.session.worker.stop()
            self.set_state("stopping")
            self.win.say("Stopping: writing a checkpoint…", 0)

    def checkpoint_now(self) -> None:
        if self.session is not None and self.state in ("running", "paused"):
            self.session.worker.checkpoint_now()
            self.win.say("Writing a checkpoint…", 3000)

    def rollback(self, factor: float = 0.5) -> None:
        if self.session is not None:
            self.session.worker.rollback(factor)
            self.win.say(f"Rolling back; learning rates ×{factor}", 5000)

    def apply_settings(self, values: dict) -> bool:
        """Apply the engine's suggested settings (e.g. ``{"batch_size": 32}``) to the form
        and resume the run."""
        win = self.win
        run_dir = win.run_dir
        try:
            if win.model_panel.form is None:
                return False
            unknown = win.model_panel.form.set_values(values)
            if unknown:
                raise ConfigError(f"the suggestion names an unknown setting: {unknown[0]}")
        except UserError as e:
            win.show_error(str(e))
            return False
        run = RunFolder(run_dir) if run_dir is not None else None
        if run is not None and run.exists():
            # no checkpoint yet (it failed at once): the same folder from step 0
            return self.start(resume_dir=run_dir, restart=not run.has_checkpoint())
        return self.start()

    # -- worker signals (GUI thread, queued) ---------------------------------------------------
    def _count(self, name: str) -> None:
        self.events_seen[name] = self.events_seen.get(name, 0) + 1

    def _on_preparing(self, done: int, total: int) -> None:
        self.win.status.set("step", f"preparing images {done}/{total}")

    def _on_prepared(self, report: Any) -> None:
        self._count("prepared")
        if report is not None and report.folder != "<in memory>":
            self.win.dataset_panel.set_report(report)

    def _on_started(self, event: Any) -> None:
        self._count("started")
        status = self.win.status
        status.set("device", device_text(event.device, getattr(event, "precision", "fp32")))
        status["device"].setToolTip(event.device_reason)
        status.set("step", step_text(event.step, event.total_steps))
        self.set_state("running")
        verb = "Resumed" if event.resumed else "Started"
        source, self.starting_from = self.starting_from, None
        start = f" from {source.title} (step {source.step:,})" if source is not None else ""
        self.win.say(f"{verb} {event.model_id} in {event.run_dir}{start}", 8000)
        if source is not None:
            self.win.start_from.started(source)
        self.win.studio.runs_changed.emit()

    def _on_metrics(self, event: Any, memory: Any) -> None:
        self._count("metrics")
        row = {"step": event.step, **event.values}
        self.live_rows.append(row)
        self.win.chart.add_rows([row])
        self.last_values = dict(event.values)
        self.meter.update(event.step, event.time, event.images_per_sec)
        self.win.status.show_metrics(event.step, event.total_steps, self.meter, event.time,
                                     memory, event.values)

    def _on_samples(self, event: Any) -> None:
        self._count("samples")
        self.win.samples.add_grid(event.step, event.grid, event.path)
        self.progressed.emit()

    def _on_checkpoint(self, event: Any) -> None:
        self._count("checkpoint")
        self.win.say(f"Checkpoint saved at step {event.step:,}: {Path(event.path).name}", 5000)
        self.progressed.emit()

    def _on_warning(self, event: Any) -> None:
        self._count("warning")
        win = self.win
        win.chart.add_marker(event.step, event.kind, event.message)
        if event.kind == "nan":
            win.info_bar.show_message(
                f"Training paused: {event.message}", "error",
                [("Roll back to last checkpoint with lower learning rate",
                  lambda: self.rollback(0.5)),
                 ("Resume anyway", self.resume),
                 ("Stop", self.stop)], kind="nan")
        elif event.kind in ("collapse", "imbalance"):
            text = with_advice(event)
            if f"step {event.step}" not in text.lower():
                text = f"Step {event.step:,}: {text}"
            actions = []
            if getattr(event, "settings", None) and win.run_dir is not None:
                actions.append((f"Apply {settings_text(event.settings)}",
                                lambda s=dict(event.settings): self.apply_settings(s)))
            win.info_bar.show_message(text[:1].upper() + text[1:], "warning", actions,
                                      kind=event.kind)
        else:
            win.say(with_advice(event), 8000)

    def _on_paused(self, event: Any) -> None:
        self._count("paused")
        self.set_state("paused")
        self.win.status.clear_speed()

    def _on_resumed(self, event: Any) -> None:
        self._count("resumed")
        if self.win.info_bar.kind == "nan":
            self.win.info_bar.dismiss()
        if self.state != "stopping":
            self.set_state("running")

    def _on_finished(self, event: Any) -> None:
        self._count("finished")
        self.last_finished = event
        saved = f"; checkpoint {Path(event.checkpoint).name}" if event.checkpoint else ""
        self.win.say(f"Training {event.reason} at step {event.step:,}{saved}", 10000)
        if event.reason == "completed":
            self.win.info_bar.show_message(
                f"Training completed at step {event.step:,}. Export the generator, a "
                "time-lapse or samples with Export…", "info",
                [("Export…", lambda: self.win.exporter.show_dialog())], kind="finished")

    def _on_failed(self, event: Any) -> None:
        self._count("failed")
        win = self.win
        actions = []
        if getattr(event, "settings", None) and win.run_dir is not None:
            actions.append((f"Apply {settings_text(event.settings)} and resume",
                            lambda s=dict(event.settings): self.apply_settings(s)))
        kept = win.run_dir is not None and RunFolder(win.run_dir).exists()
        where = f" The run folder keeps what was done: {win.run_dir}" if kept else ""
        extra = advice(event)
        win.show_error(f"Training stopped with an error: {event.message}."
                       f"{' ' + extra if extra else ''}{where}", actions, kind="failed")

    def _on_refused(self, refusal: dict) -> None:
        """The new run's settings do not fit the source run's networks: nothing was
        trained; the empty folder made for it goes, and the choice stays for another try."""
        self._count("refused")
        win = self.win
        source = self.starting_from
        run_dir = win.run_dir
        if self.new_folder and run_dir is not None:
            remove_empty_run_folder(run_dir)
        win.set_run(None)
        win.setWindowTitle("GAN Studio")
        win.status.clear_run()
        if source is None:
            win.show_error(f"Cannot start this run: {refusal.get('message', '')}")
            return
        actions = [("Use its settings", win.start_from.use_source_settings)] \
            if win.start_from.pending is source else []
        win.show_error(win.start_from.refusal_text(source, refusal), actions,
                       kind="start-from")

    def _on_done(self) -> None:
        session = self.session
        if session is not None:
            session.join(10_000)
        self.session = None
        self.set_state("idle")
        self.win.status.clear_speed()
        if self.win.run_dir is not None:
            self.win.studio.runs_changed.emit()
        self.done.emit()
