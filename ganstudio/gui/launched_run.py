"""A run on every GPU of the machine, started from the studio.

The studio trains on one device in its own process. On a machine with more
than one CUDA GPU the Device list also offers "all GPUs (N)": Start then runs
the same launcher as ``ganstudio train --nproc-per-node N`` in a child process
(one training process per GPU, PyTorch's DistributedDataParallel), and the
window follows the run folder live, as *Watch live* does for any run written
by another process. Stop asks every training process to stop after its step
(as Ctrl-C in a terminal does), so rank 0 writes a checkpoint and the run stays
resumable; pause and the other live commands are for one-process runs.

:func:`train_command` builds the command line; :class:`LaunchedRun` starts the
process in a session of its own, polls it from a GUI-thread timer and says how
it ended.
"""
from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any, Sequence

from PySide6.QtCore import QObject, QTimer, Signal

#: How many of the launcher's last output lines a failure shows.
TAIL_LINES = 6


def setting_text(value: Any) -> str:
    """A setting's value as ``--set KEY=VALUE`` reads it back (lists comma-separated,
    an automatic (None) value as ``auto``)."""
    if value is None:
        return "auto"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(setting_text(v) for v in value)
    return repr(value) if isinstance(value, float) else str(value)


def train_command(model_id: str, data: str | Path, run_dir: str | Path, config: dict,
                  settings: dict, nproc: int, *, device: str = "cuda",
                  plugins_dir: str | None = None) -> list[str]:
    """The ``ganstudio train`` command line for a run on ``nproc`` processes."""
    argv = [sys.executable, "-m", "ganstudio", "train", "--model", model_id,
            "--data", str(data), "--out", str(run_dir),
            "--steps", str(int(settings["total_steps"])), "--device", device,
            "--precision", str(settings.get("precision", "auto")),
            "--nproc-per-node", str(int(nproc)), "--no-estimate", "--quiet"]
    if settings.get("sample_every_s") is not None:
        argv += ["--sample-every", repr(float(settings["sample_every_s"]))]
    if settings.get("checkpoint_every_s") is not None:
        argv += ["--checkpoint-every", repr(float(settings["checkpoint_every_s"]))]
    if plugins_dir:
        argv += ["--plugins-dir", str(plugins_dir)]
    for key, value in config.items():
        argv += ["--set", f"{key}={setting_text(value)}"]
    return argv


def _children(pid: int) -> list[int]:
    """Process ids whose parent is ``pid`` (Linux /proc; empty elsewhere)."""
    out = []
    for entry in Path("/proc").glob("[0-9]*"):
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rfind(")") + 2:].split()
        if len(fields) > 1 and fields[1] == str(pid):
            out.append(int(entry.name))
    return out


class LaunchedRun(QObject):
    """The launcher's child process: start, stop gracefully, report how it ended."""

    ended = Signal(int, str)     # exit code, the last lines it printed

    def __init__(self, argv: Sequence[str], run_dir: str | Path, *, poll_ms: int = 500,
                 parent: QObject | None = None):
        super().__init__(parent)
        self.argv = list(argv)
        self.run_dir = Path(run_dir)
        self.proc: subprocess.Popen | None = None
        self.stop_requested = False
        self._log = tempfile.TemporaryFile(mode="w+b")
        self.timer = QTimer(self)
        self.timer.setInterval(poll_ms)
        self.timer.timeout.connect(self.poll)

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def start(self) -> None:
        """Start the launcher; OSError when it cannot be started at all."""
        env = dict(os.environ)
        env.setdefault("PYTHONUNBUFFERED", "1")
        self.proc = subprocess.Popen(self.argv, stdin=subprocess.DEVNULL, stdout=self._log,
                                     stderr=subprocess.STDOUT, env=env,
                                     start_new_session=True)
        self.timer.start()

    def stop(self) -> None:
        """Ask every training process to stop after its step (rank 0 checkpoints)."""
        if not self.running:
            return
        self.stop_requested = True
        workers = _children(self.proc.pid)
        for pid in workers or [self.proc.pid]:
            try:
                os.kill(pid, signal.SIGINT)
            except OSError:
                pass

    def kill(self) -> None:
        """The window closes for good: end the whole process group now."""
        if self.running:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except OSError:
                pass
            self.proc.wait(10)

    def wait(self, timeout_s: float) -> bool:
        if self.proc is None:
            return True
        try:
            self.proc.wait(timeout_s)
        except subprocess.TimeoutExpired:
            return False
        self.poll()
        return True

    def tail(self) -> str:
        """The last lines the launcher and its processes printed."""
        self._log.flush()
        self._log.seek(0, os.SEEK_END)
        size = self._log.tell()
        self._log.seek(max(0, size - 16_384))
        text = self._log.read().decode("utf-8", "replace")
        lines = collections.deque((ln for ln in text.splitlines() if ln.strip()),
                                  maxlen=TAIL_LINES)
        return "\n".join(lines)

    def poll(self) -> None:
        if self.proc is None or self.proc.poll() is None:
            return
        self.timer.stop()
        code, self.proc = self.proc.returncode, None
        self.ended.emit(int(code), self.tail())


class LaunchedSession(QObject):
    """Where a one-process ``TrainingSession`` stands for the training controller:
    ``running``, ``join`` and ``worker`` (the live commands), for a launched run."""

    def __init__(self, controller: Any, run: LaunchedRun, nproc: int):
        super().__init__(controller)
        self.controller = controller
        self.win = controller.win
        self.run = run
        self.nproc = int(nproc)
        self.worker = self            # the controller sends its commands here
        self.ended_with: tuple[int, str] | None = None
        run.ended.connect(self._on_ended)
        self.waiting = QTimer(self)   # until the ranks have written run.json
        self.waiting.setInterval(300)
        self.waiting.timeout.connect(self._watch_when_ready)

    @classmethod
    def begin(cls, controller: Any, argv: Sequence[str], run_dir: Path,
              nproc: int) -> "LaunchedSession | None":
        run = LaunchedRun(argv, run_dir)
        session = cls(controller, run, nproc)
        try:
            run.start()
        except OSError as e:
            controller.win.show_error(f"Could not start the training processes: "
                                      f"{e.strerror or e}")
            return None
        session.waiting.start()
        return session

    @property
    def running(self) -> bool:
        return self.ended_with is None

    def join(self, timeout_ms: int = 60_000) -> bool:
        done = self.run.wait(timeout_ms / 1000)
        if done and self.ended_with is None:
            self.run.poll()
        return done

    def _watch_when_ready(self) -> None:
        from ganstudio.core.runs import RunFolder
        if RunFolder(self.run.run_dir).exists():
            self.waiting.stop()
            self.win.viewer.watch_run(self.run.run_dir, own=True)
            if self.controller.state == "preparing":
                self.controller.set_state("running")

    # -- the live commands ----------------------------------------------------------------------
    def _not_here(self, what: str) -> None:
        self.win.say(f"{what} is for runs on one device; on {self.nproc} GPUs, Stop writes a "
                     "checkpoint and Resume continues the run.", 6000)

    def pause(self) -> None:
        self._not_here("Pause")

    def resume_training(self) -> None:
        self._not_here("Resume")

    def checkpoint_now(self) -> None:
        self._not_here("A checkpoint on request")

    def rollback(self, _factor: float = 0.5) -> None:
        self._not_here("Roll back")

    def stop(self) -> None:
        self.run.stop()

    # -- the end ----------------------------------------------------------------------------------
    def _on_ended(self, code: int, tail: str) -> None:
        self.waiting.stop()
        self.ended_with = (code, tail)
        win = self.win
        win.viewer.stop_watching()
        if code == 0:
            if (self.run.run_dir / "run.json").is_file():
                win.viewer.open_run(self.run.run_dir)     # all of it, the last grid too
            how = "stopped" if self.run.stop_requested else "ended"
            win.say(f"Training on {self.nproc} processes {how}; the run is in "
                    f"{self.run.run_dir}", 10000)
        else:
            last = tail.strip().splitlines()[-1] if tail.strip() else f"exit code {code}"
            win.show_error(f"Training on {self.nproc} processes stopped with an error: "
                           f"{last}. The run folder keeps what was done (its events.log "
                           f"says more): {self.run.run_dir}", kind="failed")
        self.controller._on_done()
