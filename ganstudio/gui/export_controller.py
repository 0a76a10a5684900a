"""Export from a run (the grid on screen, new samples, a time-lapse, the generator),
asked in a dialog and written in the background."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from PySide6.QtCore import QObject, QSettings, Signal

from .grid import SamplePanel, qimage_to_array
from .tasks import Tasks
from .widgets import ExportDialog


class ExportController(QObject):
    """``done(path)`` when an export is written; ``failed(message)`` when not."""

    done = Signal(str)
    failed = Signal(str)

    def __init__(self, parent_widget, tasks: Tasks, settings: QSettings, samples: SamplePanel,
                 *, current_run: Callable[[], Path | None], plugin_manager: Callable[[], Any],
                 say: Callable[[str, int], None]):
        super().__init__(parent_widget)
        self.parent_widget = parent_widget
        self.tasks = tasks
        self.settings = settings
        self.samples = samples
        self.current_run = current_run
        self.plugin_manager = plugin_manager
        self.say = say
        self.busy = 0

    def show_dialog(self, run_dir: str | Path | None = None) -> None:
        run_dir = Path(run_dir) if run_dir else self.current_run()
        if run_dir is None:
            self.failed.emit("Train or open a run first; exports come from a run.")
            return
        has_grid = self.samples.current_image() is not None and run_dir == self.current_run()
        dlg = ExportDialog(run_dir.name, has_grid, str(self.settings.value("export_dir", "")),
                           self.parent_widget)
        if dlg.exec() != ExportDialog.Accepted:
            return
        path = dlg.target()
        if not path:
            self.failed.emit("Choose where to save the export.")
            return
        self.settings.setValue("export_dir", str(Path(path).parent))
        self.export(dlg.kind(), run_dir, path, dlg.count.value(), dlg.output.values())

    def export(self, kind: str, run_dir: str | Path, path: str | Path, n: int = 64,
               options: dict[str, Any] | None = None) -> None:
        """Run one export in the background; ``done`` carries the written path.

        ``options``: ``size`` (an OutputSize), and for a time-lapse ``fps`` and
        ``seconds`` (None: one frame per grid)."""
        from ganstudio.core.media import OutputSize
        from . import export as ex
        run_dir, pm = Path(run_dir), self.plugin_manager()
        opts = dict(options or {})
        size = opts.get("size") or OutputSize()
        if kind == "grid":
            img = self.samples.current_image()
            if img is None:
                self.failed.emit("There is no grid on screen to export.")
                return
            array = (self.samples.current_array if self.samples.current_array is not None
                     else qimage_to_array(img))
            work = lambda ctx: ex.export_grid(array, path, size)  # noqa: E731
        elif kind == "samples":
            work = lambda ctx: ex.export_samples(  # noqa: E731
                run_dir, pm, n, path, size=size,
                progress=lambda d, t: ctx.progress(d / t, f"{d}/{t}"))[0].parent
        elif kind == "timelapse":
            work = lambda ctx: ex.export_timelapse(  # noqa: E731
                run_dir, path, float(opts.get("fps", 8.0)), seconds=opts.get("seconds"),
                size=size, progress=lambda d, t: ctx.progress(d / t, f"frame {d}/{t}"),
                cancelled=ctx.cancelled)
        elif kind == "generator":
            work = lambda ctx: ex.export_generator(run_dir, pm, path)  # noqa: E731
        else:
            raise ValueError(kind)
        self.say("Exporting…", 0)
        self.busy += 1

        def finished():
            self.busy -= 1

        def ok(result):
            if result is None:    # cancelled: nothing was written
                self.say("Export cancelled", 5000)
                return
            self.say(f"Exported to {result}", 8000)
            self.done.emit(str(result))

        def progress(fraction: float, text: str) -> None:
            self.say(f"Exporting… {fraction:.0%} ({text})", 0)

        def failed(msg, _tb):
            self.say("", 0)  # the "Exporting…" message must not outlive the export
            self.failed.emit(f"Export failed: {msg}")

        self.tasks.run(work, on_result=ok, on_error=failed, on_finished=finished,
                       on_progress=progress, name="export")
