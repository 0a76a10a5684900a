"""The model panel: installed models, their settings form, and how the run is driven."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt, Signal
from PySide6.QtWidgets import (QComboBox, QDoubleSpinBox, QFormLayout, QGroupBox, QLabel,
                               QPushButton, QScrollArea, QSpinBox, QSplitter, QVBoxLayout,
                               QWidget)

from ganstudio.core.errors import ConfigError

from .estimate_view import EstimateBox
from .forms import SettingsForm, guard_wheel

DEVICES = ("auto", "cpu", "cuda", "mps")
PRECISIONS = ("auto", "fp32", "bf16")


class ModelPanel(QWidget):
    modelChanged = Signal(str)

    def __init__(self, parent: QWidget | None = None):
        super().__init__(parent)
        self.specs: list[Any] = []
        self.form: SettingsForm | None = None
        self.combo = QComboBox()
        self.combo.setObjectName("modelCombo")
        # The combo's width must not follow the longest model name. By default a QComboBox
        # caches its minimum size hint from the items it has when first asked ("Loading
        # models…") and recomputes it from every item only when the style changes: a switch
        # to the light theme then asked for the width of "MSG-GAN (multi-scale gradients)
        # (msggan)" and widened the whole dock by 36 px, and a dock keeps a width it grew
        # to. A fixed minimum in characters keeps the hint the same in both themes; a long
        # name is elided here and shown whole in the drop-down list.
        self.combo.setSizeAdjustPolicy(QComboBox.AdjustToMinimumContentsLengthWithIcon)
        self.combo.setMinimumContentsLength(14)
        self.combo.addItem("Loading models…")
        self.combo.setEnabled(False)
        self.combo.currentIndexChanged.connect(self._on_model)
        self.help = QLabel("")
        self.help.setWordWrap(True)
        self.help.setObjectName("modelHelp")
        self.plugin_note = QLabel("")
        self.plugin_note.setWordWrap(True)
        self.plugin_note.setObjectName("pluginNote")
        self.plugin_note.setVisible(False)
        self.reset = QPushButton("Reset to defaults")
        self.reset.clicked.connect(self.reset_defaults)
        self.reset.setEnabled(False)

        self.form_holder = QScrollArea()
        self.form_holder.setWidgetResizable(True)
        self.form_holder.setFrameShape(QScrollArea.NoFrame)
        self.form_holder.setObjectName("settingsScroll")
        self.form_holder.setMinimumHeight(100)  # a few settings rows

        run_box = QGroupBox("Run")
        run_form = QFormLayout(run_box)
        run_form.setRowWrapPolicy(QFormLayout.WrapLongRows)   # a narrow dock: label above
        self.steps = QSpinBox()
        self.steps.setObjectName("totalSteps")
        self.steps.setRange(1, 100_000_000)
        self.steps.setValue(10_000)
        self.steps.setSingleStep(1000)
        self.steps.setToolTip("Total training steps of the run (a resumed run continues up to it)")
        self.device = QComboBox()
        self.device.setObjectName("deviceCombo")
        self.device.addItems(DEVICES)
        self.device.setToolTip("auto picks a CUDA or Apple GPU when there is one, else the CPU")
        self.precision = QComboBox()
        self.precision.setObjectName("precisionCombo")
        self.precision.addItems(PRECISIONS)
        self.precision.setToolTip(
            "auto: bf16 mixed precision where it is faster (CUDA GPUs from Ampere on, CPUs "
            "with AMX), full fp32 elsewhere. fp32: always full precision. bf16: always mixed.")
        self.sample_every = QDoubleSpinBox()
        self.sample_every.setRange(0.5, 3600)
        self.sample_every.setValue(3.0)
        self.sample_every.setSuffix(" s")
        self.sample_every.setToolTip("Seconds between sample grids (the time-lapse frames)")
        self.checkpoint_every = QDoubleSpinBox()
        self.checkpoint_every.setRange(5, 86400)
        self.checkpoint_every.setValue(120)
        self.checkpoint_every.setSuffix(" s")
        self.checkpoint_every.setToolTip("Seconds between automatic checkpoints")
        run_form.addRow("Steps", self.steps)
        run_form.addRow("Device", self.device)
        run_form.addRow("Precision", self.precision)
        run_form.addRow("Samples every", self.sample_every)
        run_form.addRow("Checkpoint every", self.checkpoint_every)
        # Scrolling the dock must not change the model or a run setting by accident.
        guard_wheel(self.combo, self.steps, self.device, self.precision, self.sample_every,
                    self.checkpoint_every)

        # The settings and the Run group share the dock's height through a splitter; each
        # side scrolls, so on a 700 px screen every control stays reachable and the
        # settings get the height the Run group does not need.
        self.estimate_box = EstimateBox()
        self.estimate_box.shown.connect(self.fit_run)
        bottom = QWidget()
        bottom_lay = QVBoxLayout(bottom)
        bottom_lay.setContentsMargins(0, 0, 0, 0)
        bottom_lay.addWidget(self.reset)
        bottom_lay.addWidget(run_box)
        bottom_lay.addWidget(self.estimate_box)
        bottom_lay.addStretch(1)
        # never squeezed below its rows (the scroll area scrolls instead)
        run_box.setMinimumHeight(run_box.sizeHint().height())
        self.run_holder = QScrollArea()
        self.run_holder.setObjectName("runScroll")
        self.run_holder.setWidgetResizable(True)
        self.run_holder.setFrameShape(QScrollArea.NoFrame)
        self.run_holder.setWidget(bottom)
        self.run_holder.setMinimumHeight(60)
        self.split = QSplitter(Qt.Vertical)
        self.split.setObjectName("modelSplit")
        self.split.addWidget(self.form_holder)
        self.split.addWidget(self.run_holder)
        self.split.setChildrenCollapsible(False)
        self.split.setStretchFactor(0, 1)
        self.split.setStretchFactor(1, 0)
        self.split_dragged = False
        self.split.splitterMoved.connect(lambda *_a: setattr(self, "split_dragged", True))

        lay = QVBoxLayout(self)
        lay.addWidget(self.combo)
        lay.addWidget(self.plugin_note)
        lay.addWidget(self.split, 1)

    def add_notice(self, widget: QWidget) -> None:
        """A line about the next run, shown under the model list (e.g. what it starts
        from)."""
        self.layout().insertWidget(1, widget)

    def resizeEvent(self, event) -> None:  # noqa: N802 - Qt naming
        super().resizeEvent(event)
        self._share_height()

    def fit_run(self) -> None:
        """The Run side's content is never squeezed below what its rows and the wrapped
        estimate need at this width (the scroll area scrolls instead)."""
        bottom = self.run_holder.widget()
        lay = bottom.layout()
        width = self.run_holder.viewport().width()
        need = (lay.totalHeightForWidth(width) if lay.hasHeightForWidth()
                else lay.totalSizeHint().height())
        bottom.setMinimumHeight(max(need, lay.totalSizeHint().height()))

    def _share_height(self) -> None:
        """The Run group gets the height it needs, at most half; the settings the rest
        (until the user drags the splitter)."""
        self.fit_run()
        total = self.split.height()
        if total <= 0 or self.split_dragged:
            return
        run = min(self.run_holder.widget().sizeHint().height(), total // 2)
        self.split.setSizes([total - run, run])

    def scroll_to(self, widget: QWidget) -> None:
        """Bring ``widget`` (a setting's editor or a Run control) into view."""
        for holder in (self.form_holder, self.run_holder):
            if holder.widget() is not None and holder.widget().isAncestorOf(widget):
                holder.ensureWidgetVisible(widget, 4, 8)

    # -- models ------------------------------------------------------------------------------
    def set_models(self, specs: list[Any], failed: list[tuple[str, str]] = ()) -> None:
        """Fill the model list (GAN models only) and note plugins that failed to load."""
        self.specs = list(specs)
        self.combo.blockSignals(True)
        self.combo.clear()
        for s in self.specs:
            self.combo.addItem(f"{s.name}  ({s.id})", s.id)
            self.combo.setItemData(self.combo.count() - 1, s.help, Qt.ToolTipRole)
        self.combo.blockSignals(False)
        self.combo.setEnabled(bool(self.specs))
        if not self.specs:
            self.combo.addItem("No models installed")
        if failed:
            self.plugin_note.setText(f"{len(failed)} plugin(s) could not be loaded: "
                                     + "; ".join(f"{n}: {e}" for n, e in failed))
            self.plugin_note.setVisible(True)
        if self.specs:
            self.combo.setCurrentIndex(0)
            self._on_model(0)

    def select_model(self, model_id: str) -> bool:
        for i, s in enumerate(self.specs):
            if s.id == model_id:
                if self.combo.currentIndex() != i:
                    self.combo.setCurrentIndex(i)
                return True
        return False

    def _on_model(self, index: int) -> None:
        if not (0 <= index < len(self.specs)):
            return
        spec = self.specs[index]
        self.form = SettingsForm(spec.schema)
        self.form.setObjectName("settingsForm")
        # The model's help scrolls with its settings: on a short screen it must not take
        # the settings' rows away.
        self.help = QLabel(spec.help)
        self.help.setWordWrap(True)
        self.help.setObjectName("modelHelp")
        holder = QWidget()
        holder_lay = QVBoxLayout(holder)
        holder_lay.setContentsMargins(0, 0, 0, 0)
        holder_lay.addWidget(self.help)
        holder_lay.addWidget(self.form)
        holder_lay.addStretch(1)
        self.form_holder.setWidget(holder)
        self.reset.setEnabled(True)
        self.modelChanged.emit(spec.id)

    def current_spec(self) -> Any:
        i = self.combo.currentIndex()
        return self.specs[i] if 0 <= i < len(self.specs) else None

    def reset_defaults(self) -> None:
        if self.form is not None:
            self.form.reset_defaults()

    def focus_setting(self, message: str) -> str | None:
        """Put the cursor on the setting an error names (``setting 'lr_g'``), opening the
        advanced settings if it is one; its label, or None when no editor matches."""
        import re
        from .forms import field_label
        m = re.search(r"setting '(\w+)'", message)
        spec, form = self.current_spec(), self.form
        f = spec.field(m.group(1)) if (m and spec is not None) else None
        if f is None or form is None or f.name not in form.editors:
            return None
        editor = form.editors[f.name]
        if form.advanced_box is not None and f.advanced:
            form.advanced_box.setChecked(True)
        self.form_holder.ensureWidgetVisible(editor)
        editor.setFocus()
        return field_label(f)

    # -- what a run needs --------------------------------------------------------------------
    def config(self) -> dict[str, Any]:
        return self.form.values() if self.form is not None else {}

    def engine_settings(self) -> dict[str, Any]:
        return {"total_steps": int(self.steps.value()), "device": self.device_choice()[0],
                "precision": self.precision.currentText(),
                "sample_every_s": float(self.sample_every.value()),
                "checkpoint_every_s": float(self.checkpoint_every.value()),
                "on_nan": "pause"}

    def fit_channels(self, report) -> str | None:
        """A greyscale folder trains in 1 channel when the model has a channels setting
        still at its default (the user did not choose one); returns what to say."""
        spec, form = self.current_spec(), self.form
        f = spec.field("channels") if spec is not None else None
        if not getattr(report, "grayscale", None) or f is None or form is None \
                or "channels" not in form.editors:
            return None
        try:
            now = form.values().get("channels")
        except ConfigError:
            return None
        if now == 1:
            return "The model trains them in 1 channel."
        if now == f.default and 1 in (f.choices or [1]):
            form.set_values({"channels": 1})
            return ("Channels set to 1 for them (set it back to 3 in the Model panel to "
                    "train in colour).")
        return None

    def device_choice(self) -> tuple[str, int]:
        """(device, processes): ("cuda", N) for "all GPUs (N)", else (the device, 1)."""
        data = self.device.currentData()
        if isinstance(data, dict):
            return str(data["device"]), int(data["nproc"])
        return self.device.currentText(), 1

    def add_process_choice(self, label: str, device: str, nproc: int) -> None:
        """A Device entry that trains on ``nproc`` processes (one per GPU)."""
        if self.device.findText(label) < 0:
            self.device.addItem(label, {"device": device, "nproc": int(nproc)})

    def set_gpu_count(self, count: int) -> None:
        """More than one CUDA GPU: offer "all GPUs (N)" (a run on N processes)."""
        if count > 1:
            self.add_process_choice(f"all GPUs ({count})", "cuda", count)

    def set_device(self, name: str) -> None:
        i = self.device.findText(name)
        if i < 0 and name.startswith("all GPUs"):
            return    # remembered from a machine with several GPUs: not offered here
        if i < 0:
            self.device.addItem(name)
            i = self.device.count() - 1
        self.device.setCurrentIndex(i)

    def set_precision(self, name: str) -> None:
        """Select ``name`` (auto, fp32 or bf16); anything else leaves the choice as it is."""
        i = self.precision.findText(name)
        if i >= 0:
            self.precision.setCurrentIndex(i)
