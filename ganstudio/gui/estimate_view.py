"""Before Start: how long the run will take on this device, measured in the background.

:class:`RunEstimator` watches the Model panel (model, settings, steps, device,
precision) and, once the settings have rested for a moment, times a few real
training steps through the studio's task runner (``ganstudio.core.estimate``);
the GUI thread never waits. A newer change supersedes a measurement in flight.
When the run is long, :class:`EstimateBox` offers the lighter runs the model
declares (and fewer steps) as one-click choices, each with its own estimate.
"""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, Qt, QTimer, Signal
from PySide6.QtWidgets import QFrame, QLabel, QSizePolicy, QVBoxLayout, QWidget

from ganstudio.core.errors import ConfigError
from ganstudio.core.units import format_duration

#: A run longer than this gets faster choices.
LONG_RUN_S = 3600.0
#: Settings must rest this long before a measurement starts.
DEBOUNCE_MS = 900


def describe_changes(changes: dict[str, Any], labels: Callable[[str], str] = str) -> str:
    """``{"resolution": 32, "batch_size": 16, "steps": 2500}`` -> ``resolution 32, batch
    size 16, 2,500 steps``."""
    parts = [f"{labels(k)} {v}" for k, v in changes.items() if k != "steps"]
    if "steps" in changes:
        parts.append(f"{int(changes['steps']):,} steps")
    return ", ".join(parts)


class ChoiceButton(QFrame):
    """A button whose text wraps to the dock's width (a QPushButton's never does, and a
    long choice would widen the whole settings dock). Click, Enter or Space chooses."""

    clicked = Signal()

    def __init__(self, text: str, parent: QWidget | None = None):
        super().__init__(parent)
        self.setObjectName("estimateChoice")
        self.setFocusPolicy(Qt.StrongFocus)
        self.setCursor(Qt.PointingHandCursor)
        self.setSizePolicy(QSizePolicy.Ignored, QSizePolicy.Preferred)
        self.label = QLabel(text)
        self.label.setWordWrap(True)
        self.label.setAttribute(Qt.WA_TransparentForMouseEvents)
        lay = QVBoxLayout(self)
        lay.setContentsMargins(10, 4, 10, 4)
        lay.addWidget(self.label)

    def text(self) -> str:
        return self.label.text()

    def click(self) -> None:
        self.clicked.emit()

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802
        if event.button() == Qt.LeftButton and self.rect().contains(event.position().toPoint()):
            self.click()

    def keyPressEvent(self, event) -> None:  # noqa: N802
        if event.key() in (Qt.Key_Return, Qt.Key_Enter, Qt.Key_Space):
            self.click()
        else:
            super().keyPressEvent(event)


class EstimateBox(QWidget):
    """The estimate's line and, for a long run, buttons for the faster choices."""

    chosen = Signal(dict)     # the settings (and "steps") of the choice clicked
    shown = Signal()          # the text or the choices changed (the height may have)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.label = QLabel("")
        self.label.setObjectName("runEstimate")
        self.label.setWordWrap(True)
        self.label.setToolTip("Measured on this device with a few real training steps of "
                              "these settings; a busy machine makes the run slower.")
        self.choices: list[ChoiceButton] = []
        self._lay = QVBoxLayout(self)
        self._lay.setContentsMargins(0, 0, 0, 0)
        self._lay.addWidget(self.label)
        self.setVisible(False)

    def show_measuring(self) -> None:
        self.setVisible(True)
        if not self.label.text():
            self.label.setText("Measuring how long this run takes on this device…")
        self.shown.emit()

    def clear(self) -> None:
        self.label.setText("")
        self._set_choices([], None)
        self.setVisible(False)

    def show_estimate(self, estimate: Any, alternatives: list[Any],
                      labels: Callable[[str], str] = str, long_s: float = LONG_RUN_S) -> None:
        long = estimate.total_seconds > long_s
        text = (f"Estimated time on this device: <b>about "
                f"{format_duration(estimate.total_seconds)}</b> for {estimate.steps:,} steps "
                f"({estimate.device}, {estimate.images_per_second:,.1f} images/s).")
        if long and alternatives:
            text += " Faster choices:"
        elif long:
            text += " Fewer steps or a smaller resolution or batch finish sooner."
        self.label.setText(text)
        self._set_choices(alternatives if long else [], labels)
        self.setVisible(True)
        self.shown.emit()

    def _set_choices(self, alternatives: list[Any], labels) -> None:
        for b in self.choices:
            self._lay.removeWidget(b)
            b.deleteLater()
        self.choices = []
        for alt in alternatives:
            what = describe_changes(alt.changes, labels)
            b = ChoiceButton(f"{what} · about {format_duration(alt.total_seconds)}")
            b.setToolTip("Use these settings: " + ", ".join(
                f"{k}={v}" for k, v in alt.changes.items()))
            b.clicked.connect(lambda ch=dict(alt.changes): self.chosen.emit(ch))
            self._lay.addWidget(b)
            b.show()
            self.choices.append(b)


class RunEstimator(QObject):
    """Measures the Model panel's run in the background, debounced; shows it in ``box``.

    ``tasks``: the studio's task runner; ``idle()``: whether nothing is training
    (a measurement would slow a run and be slowed by it).
    """

    estimated = Signal(object, list)      # RunEstimate, alternatives

    def __init__(self, model_panel, box: EstimateBox, tasks, idle: Callable[[], bool],
                 *, debounce_ms: int = DEBOUNCE_MS, long_s: float = LONG_RUN_S):
        super().__init__(model_panel)
        self.panel = model_panel
        self.box = box
        self.tasks = tasks
        self.idle = idle
        self.long_s = long_s
        self.generation = 0
        self.handle = None
        self.timer = QTimer(self)
        self.timer.setSingleShot(True)
        self.timer.setInterval(debounce_ms)
        self.timer.timeout.connect(self.measure_now)
        box.chosen.connect(self.apply_choice)
        p = model_panel
        p.modelChanged.connect(self._on_model)
        p.steps.valueChanged.connect(self.schedule)
        p.device.currentTextChanged.connect(self.schedule)
        p.precision.currentTextChanged.connect(self.schedule)
        self._form = None
        self.stopped = False
        self._on_model()

    def stop(self) -> None:
        """The window closes: no new measurement, the one in flight is cancelled."""
        self.stopped = True
        self.timer.stop()
        self.cancel()

    def _on_model(self, *_args) -> None:
        form = self.panel.form
        if form is not None and form is not self._form:
            form.changed.connect(self.schedule)
            self._form = form
        self.schedule()

    def schedule(self, *_args) -> None:
        """Settings changed: measure once they rest (a measurement in flight is dropped)."""
        self.generation += 1
        self.cancel()
        if self.stopped or self.panel.current_spec() is None:
            return
        self.box.show_measuring()
        self.timer.start()

    def cancel(self) -> None:
        if self.handle is not None:
            self.handle.cancel()
            self.handle = None

    def measure_now(self) -> None:
        spec = self.panel.current_spec()
        if self.stopped or spec is None or not self.idle():
            return
        try:
            config = self.panel.config()
        except ConfigError:
            self.box.clear()    # the form says what is wrong; nothing to measure
            return
        steps = int(self.panel.steps.value())
        device = self.panel.device_choice()[0]   # all GPUs: the time of one GPU's share
        precision = self.panel.precision.currentText()
        long_s = self.long_s
        gen = self.generation

        def work(ctx):
            from ganstudio.core.estimate import choice_target, faster_alternatives, measure
            est = measure(spec, config, steps, device=device, precision=precision,
                          max_seconds=6.0, cancelled=ctx.cancelled)
            alts: list[Any] = []
            if est.total_seconds > long_s and not ctx.cancelled():
                alts = faster_alternatives(spec, config, steps, choice_target(long_s),
                                           device=device,
                                           precision=precision, measured=est,
                                           max_seconds=6.0, cancelled=ctx.cancelled)
            return est, alts

        def done(result):
            if gen != self.generation:
                return
            self.handle = None
            est, alts = result
            from .forms import field_label

            def label(key: str) -> str:
                f = spec.field(key)
                return field_label(f) if f is not None else key
            self.box.show_estimate(est, alts, label, long_s)
            self.estimated.emit(est, alts)

        def failed(_msg, _tb):
            if gen == self.generation:
                self.handle = None
                self.box.clear()   # no estimate rather than a wrong one

        self.handle = self.tasks.run(work, on_result=done, on_error=failed, name="estimate")

    def apply_choice(self, changes: dict) -> None:
        """A faster choice clicked: its settings and steps go into the Model panel (and a
        new measurement follows from the change)."""
        settings = {k: v for k, v in changes.items() if k != "steps"}
        if settings and self.panel.form is not None:
            self.panel.form.set_values(settings)
        if "steps" in changes:
            self.panel.steps.setValue(int(changes["steps"]))
        self.schedule()
