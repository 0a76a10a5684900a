"""The one progress printer of the command line.

On a terminal a single line is redrawn in place (about 5 times a second); in a
log (stderr redirected) a full line is written every ``every_s`` seconds. The
ETA comes from the steps done so far and the time they took.

- ``ConsoleProgress``: an engine listener for training runs (bar, images/s, ETA, losses);
- ``StyleProgress``: an engine listener for image jobs such as style transfer;
- ``CountProgress``: "label: done/total, ETA" for plain loops (preparing images,
  writing samples, stylizing files).
"""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ganstudio.cli.messages import shown, warning_line, event_warning_line
from ganstudio.core.units import format_duration

_WIDTH = 150


def eta_text(done: float, total: float, seconds: float) -> str:
    """``ETA 3 min 05 s`` from the work done so far; ``ETA ?`` before any progress."""
    if done <= 0 or seconds <= 0:
        return "ETA ?"
    return f"ETA {format_duration(max(total - done, 0) * seconds / done)}"


class _Printer:
    """A line redrawn in place on a terminal, or written at most every ``every_s`` in a log."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 10.0,
                 quiet: bool = False):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self.every_s = min(every_s, 0.2) if self.tty else every_s
        self.quiet = quiet
        self._last = 0.0
        self._open = False   # a redrawn line is on screen and needs a newline

    def due(self, final: bool = False) -> bool:
        now = time.monotonic()
        if self.quiet or (now - self._last < self.every_s and not final):
            return False
        self._last = now
        return True

    def status(self, line: str) -> None:
        if self.tty:
            print("\r" + line[:_WIDTH].ljust(_WIDTH), end="", file=self.stream, flush=True)
            self._open = True
        else:
            print(line, file=self.stream, flush=True)

    def say(self, line: str) -> None:
        """A line of its own (a warning, a result), after any redrawn one."""
        self.newline()
        print(line, file=self.stream, flush=True)

    def newline(self) -> None:
        if self._open:
            print(file=self.stream, flush=True)
            self._open = False


class ConsoleProgress(_Printer):
    """Engine listener printing a progress bar (terminal) or periodic lines (logs)."""

    def __init__(self, stream: TextIO | None = None, *, every_s: float = 10.0,
                 quiet: bool = False):
        super().__init__(stream, every_s=every_s, quiet=quiet)
        self._ips = 0.0

    def __call__(self, event: Any) -> None:
        from ganstudio.core import events as ev
        if isinstance(event, ev.Started):
            verb = "resuming" if event.resumed else "training"
            self.say(f"{verb} {event.model_id} on {event.device} ({event.device_reason}) "
                     f"from step {event.step} to {event.total_steps}; "
                     f"run folder {shown(event.run_dir)}")
        elif isinstance(event, ev.Metrics):
            self._ips = event.images_per_sec if self._ips == 0 else (
                0.8 * self._ips + 0.2 * event.images_per_sec)
            if not self.due(final=event.step >= event.total_steps):
                return
            frac = event.step / max(event.total_steps, 1)
            losses = " ".join(f"{k}={v:.3g}" for k, v in list(event.values.items())[:4])
            bar = "#" * int(frac * 24)
            eta = eta_text(event.step, event.total_steps, event.time)
            self.status(f"[{bar:<24}] {event.step}/{event.total_steps} "
                        f"{self._ips:,.0f} img/s {eta} {losses}")
        elif isinstance(event, ev.Warning):
            self.say(event_warning_line(event))
        elif isinstance(event, ev.CheckpointWritten) and not self.tty:
            print(f"checkpoint written: {shown(event.path)}", file=self.stream, flush=True)
        elif isinstance(event, ev.Finished):
            self.say(f"{event.reason} at step {event.step}; checkpoint {shown(event.checkpoint)}")
        elif isinstance(event, ev.Failed):
            self.newline()


class StyleProgress(_Printer):
    """Engine listener for an image job (style transfer): iterations, losses, it/s."""

    def __init__(self, quiet: bool, stream: TextIO | None = None):
        super().__init__(stream, every_s=1.0, quiet=quiet)

    def __call__(self, event: Any) -> None:
        from ganstudio.core import events as ev
        if self.quiet:
            return
        if isinstance(event, ev.Started):
            self.say(f"stylizing on {event.device} ({event.device_reason}), "
                     f"{event.total_steps} iterations")
        elif isinstance(event, ev.Metrics):
            if not self.due(final=event.step >= event.total_steps):
                return
            v = event.values
            nan = float("nan")
            self.status(f"iteration {event.step}/{event.total_steps} "
                        f"({int(v.get('scale_px', 0))} px) loss {v.get('loss', nan):.4g} "
                        f"content {v.get('content', nan):.3g} style {v.get('style', nan):.3g} "
                        f"tv {v.get('tv', nan):.3g} {event.images_per_sec:.1f} it/s "
                        f"{eta_text(event.step, event.total_steps, event.time)}")
        elif isinstance(event, ev.Warning):
            self.say(warning_line(event.message))
        elif isinstance(event, (ev.Finished, ev.Failed)):
            self.newline()


class CountProgress(_Printer):
    """``label: 120/1000 (12%), ETA 41 s`` for a loop over known work."""

    def __init__(self, label: str, stream: TextIO | None = None, *, every_s: float = 5.0,
                 quiet: bool = False):
        super().__init__(stream, every_s=every_s, quiet=quiet)
        self.label = label
        self._t0 = self._last = time.monotonic()   # quick loops print nothing in a log
        self._shown = False

    def __call__(self, done: int, total: int, item: Any = None) -> None:
        if not self.due(final=done >= total and (self._shown or self.tty)):
            return
        self._shown = True
        pct = 100 * done // max(total, 1)
        what = f" {shown(item)}" if item is not None else ""
        self.status(f"{self.label}: {done}/{total} ({pct}%), "
                    f"{eta_text(done, total, time.monotonic() - self._t0)}{what}")

    def finish(self) -> None:
        self.newline()
