"""Starting a new run from an earlier run's network weights (fine-tuning) in the studio.

"Start from this run…" (Runs tab, its context menu, and the Training menu) puts the
source run's model and settings into the Model panel and shows a line there: the
next run starts from that run's networks, with fresh optimizers and from step 0.
Start then trains a new run folder with ``init_from`` (the engine loads the weights
and records where the run started from in its run.json); the source run is only
read. Only a model whose spec declares the ``finetune`` capability is offered.
"""
from __future__ import annotations

import html
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from PySide6.QtCore import QObject, Qt, Signal
from PySide6.QtWidgets import QFrame, QHBoxLayout, QLabel, QPushButton, QWidget

from ganstudio.core.errors import UserError
from ganstudio.core.runs import RunFolder

from .run_viewer import run_title
from .theme import current_theme
from .wording import start_from_refusal

CAPABILITY = "finetune"
#: the model setting that freezes D's first layers while fine-tuning (FreezeD), where a
#: model offers it (plugins/PLUGINS.md)
FREEZE_SETTING = "freeze_d"


def latest_checkpoint_step(run_dir: str | Path) -> int | None:
    """The step of the run's newest checkpoint, or None when it has none."""
    from ganstudio.core.checkpoints import NAME_RE, list_checkpoints
    steps = [int(NAME_RE.match(p.name).group(1))
             for p in list_checkpoints(RunFolder(run_dir).checkpoints_dir)]
    return max(steps, default=None)


@dataclass
class PendingStart:
    """The run the next new run starts from."""

    run_dir: Path
    title: str
    step: int
    model_id: str
    config: dict[str, Any] = field(default_factory=dict)   # the source's settings

    @property
    def reference(self) -> str:
        """``RUN:STEP`` for the engine: the checkpoint the line names, not a later one."""
        return f"{self.run_dir}:{self.step}"


class StartFromLine(QFrame):
    """The Model dock's line "Next run starts from …" with a clear (×) button."""

    cleared = Signal()
    linkActivated = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("startFromLine")
        self.label = QLabel("")
        self.label.setObjectName("startFromText")
        self.label.setWordWrap(True)
        self.label.setTextFormat(Qt.RichText)
        self.label.linkActivated.connect(self.linkActivated)
        self.clear_button = QPushButton("×")
        self.clear_button.setObjectName("startFromClear")
        self.clear_button.setFlat(True)
        self.clear_button.setFixedSize(24, 22)
        self.clear_button.setStyleSheet("padding: 0px; font-size: 15px;")
        self.clear_button.setToolTip("Train the next run from scratch instead")
        self.clear_button.clicked.connect(self.cleared)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 5, 3, 5)
        row.addWidget(self.label, 1)
        row.addWidget(self.clear_button, 0, Qt.AlignTop)
        self.hide()

    def text(self) -> str:
        """The line as plain text (what a reader of the screen gets)."""
        from PySide6.QtGui import QTextDocument
        doc = QTextDocument()
        doc.setHtml(self.label.text())
        return doc.toPlainText()


class StartFrom(QObject):
    """The pending "starts from" choice of the window ``win`` (its public parts only:
    pm, browser, model_panel, dataset_panel, viewer, trainer, tabs, model_dock,
    show_error, clear_error, say, scan_dataset, update_actions)."""

    changed = Signal()

    def __init__(self, win):
        super().__init__(win)
        self.win = win
        self.pending: PendingStart | None = None
        self.line = StartFromLine()
        self.line.cleared.connect(lambda: self.clear("The next run trains from scratch."))
        self.line.linkActivated.connect(self._on_link)
        win.model_panel.add_notice(self.line)
        win.model_panel.modelChanged.connect(self._on_model)
        win.browser.start_from_check = self.why_not
        win.browser.startFromRequested.connect(self.choose)
        win.pluginsLoaded.connect(win.browser.update_buttons)
        self.ask_run = self._ask_run    # tests replace it

    # -- what may be offered -----------------------------------------------------------------
    def why_not(self, run_dir: str | Path, info: dict | None = None) -> str | None:
        """Why the run cannot be started from (one sentence for a tooltip), or None."""
        pm = self.win.pm
        if pm is None:
            return "The models are still loading."
        try:
            info = info if info is not None else RunFolder(run_dir).read_info()
        except UserError as e:
            text = str(e).rstrip(".")
            return text[:1].upper() + text[1:] + "."
        model_id = info.get("model_id")
        spec = next((s for s in self.win.model_panel.specs if s.id == model_id), None)
        if spec is None:
            try:
                spec = pm.get_model(str(model_id))
            except UserError:
                return f"Its model ‘{model_id}’ is not installed here."
            if not spec.has(CAPABILITY):
                return (f"{spec.name} cannot start a new run from another run's weights "
                        "(it does not offer fine-tuning).")
            return f"{spec.name} is not trained on a folder of images here; use its own tab."
        if not spec.has(CAPABILITY):
            return (f"{spec.name} cannot start a new run from another run's weights "
                    "(it does not offer fine-tuning).")
        if latest_checkpoint_step(run_dir) is None:
            return "This run has no checkpoint yet to start from."
        return None

    # -- choosing ----------------------------------------------------------------------------
    def choose(self, run_dir: str | Path) -> bool:
        """The next run starts from ``run_dir``: its model and settings in the Model panel,
        the line in the Model dock. The Dataset panel keeps its folder (the source's own
        folder when none is chosen yet)."""
        win = self.win
        if win.trainer.state != "idle":
            win.show_error("Training is running; stop it before starting from another run.",
                           kind="start-from")
            return False
        run_dir = RunFolder(run_dir).path
        try:
            info = RunFolder(run_dir).read_info()
        except UserError as e:
            win.show_error(f"Cannot start from {run_dir.name}: {e}", kind="start-from")
            return False
        title = run_title(run_dir, info)
        why = self.why_not(run_dir, info)
        if why is not None:
            win.show_error(f"Cannot start from {title}. {why}", kind="start-from")
            return False
        try:
            win.viewer.prefill(run_dir, info, keep_folder=bool(win.dataset_panel.folder),
                               keep_steps=True)
        except UserError as e:
            win.show_error(str(e), kind="start-from")
            return False
        step = latest_checkpoint_step(run_dir)
        self.pending = PendingStart(run_dir, title, int(step), str(info["model_id"]),
                                    dict(info.get("config") or {}))
        self._show()
        win.clear_error()
        win.model_dock.show()
        win.model_dock.raise_()
        win.tabs.setCurrentIndex(0)
        win.scan_dataset()   # the source's resolution may differ from what was there
        win.say(f"The next run starts from {title} at step {step:,}; press Start.", 10_000)
        win.update_actions()
        self.changed.emit()
        return True

    def choose_selected(self) -> bool:
        """The Training menu: the run selected in the Runs tab, else one chosen in a dialog."""
        run_dir = self.win.browser.selected() or self.ask_run()
        return self.choose(run_dir) if run_dir else False

    def _ask_run(self) -> str:
        from PySide6.QtWidgets import QFileDialog
        return QFileDialog.getExistingDirectory(self.win, "Run to start from",
                                                self.win.browser.root)

    def clear(self, note: str = "") -> None:
        if self.pending is None:
            return
        self.pending = None
        self.line.hide()
        if self.win.info_bar.kind == "start-from":
            self.win.info_bar.dismiss()
        if note:
            self.win.say(note, 5000)
        self.changed.emit()

    def reference(self) -> str | None:
        return self.pending.reference if self.pending is not None else None

    def _show(self) -> None:
        p = self.pending
        spec = self.win.model_panel.current_spec()
        text = (f"Next run starts from <b>{html.escape(p.title)}</b> (step {p.step:,}) — "
                "its network weights, fresh optimizers; images from the Dataset panel.")
        if spec is not None and spec.field(FREEZE_SETTING) is not None:
            link = "#17457f" if current_theme() == "light" else "#9cc3ff"
            text += (f" <a href='{FREEZE_SETTING}' style='color:{link}'>Freeze D's first "
                     "layers</a> "
                     "(FreezeD) to keep more of it on a small folder.")
        self.line.label.setText(text)
        self.line.setToolTip(str(p.run_dir))
        self.line.show()

    def _on_link(self, name: str) -> None:
        self.win.model_panel.focus_setting(f"setting '{name}'")

    def _on_model(self, model_id: str) -> None:
        if self.pending is not None and model_id != self.pending.model_id:
            self.clear(f"Another model was chosen: the next run no longer starts from "
                       f"{self.pending.title}.")

    # -- the run's start ---------------------------------------------------------------------
    def started(self, source: PendingStart) -> None:
        """The new run started from ``source``: the choice is used up."""
        if self.pending is source:
            self.clear()

    def use_source_settings(self) -> None:
        """Put the source run's settings back into the form (after a refusal)."""
        p, form = self.pending, self.win.model_panel.form
        spec = self.win.model_panel.current_spec()
        if p is None or form is None or spec is None:
            return
        form.set_values({k: v for k, v in p.config.items() if spec.field(k)})
        self.win.scan_dataset()
        self.win.say(f"The settings of {p.title} are back; press Start.", 8000)

    def refusal_text(self, source: PendingStart, refusal: dict) -> str:
        """The window's sentence for the engine's refusal (``refusal``: the worker's
        ``message`` and the ``config`` the new run had)."""
        from .forms import field_label
        spec = self.win.model_panel.current_spec()
        config = refusal.get("config") or {}
        changed = []
        for key in sorted(config):
            if key in source.config and source.config[key] != config[key]:
                f = spec.field(key) if spec is not None else None
                changed.append((field_label(f) if f is not None else key,
                                source.config[key], config[key]))
        return start_from_refusal(source.title, changed, str(refusal.get("message", "")))
