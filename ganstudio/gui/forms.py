"""A settings form generated from a model's config schema (``list[Field]``).

int -> spin box with the field's bounds, float -> text box validated by the
field (learning rates like 2e-4 read naturally), bool -> check box, choice ->
combo box, str -> text box, path -> text box with a Browse button, list ->
text box of comma-separated items, multichoice -> a check box per choice; an
optional field gets an *Automatic* check box (None: the plugin decides). Help
text and bounds are tooltips; advanced fields sit in a folded group.
"""
from __future__ import annotations

from typing import Any, Sequence

from PySide6.QtCore import QEvent, QObject, Qt, Signal
from PySide6.QtWidgets import (QAbstractSpinBox, QCheckBox, QComboBox, QFileDialog, QFormLayout,
                               QGroupBox, QHBoxLayout, QLineEdit, QPushButton, QSpinBox,
                               QVBoxLayout, QWidget)

from ganstudio.core.config import Field
from ganstudio.core.errors import ConfigError

_INT_LIMIT = 2**31 - 1


def _tooltip(f: Field) -> str:
    parts = [f.help] if f.help else []
    if f.min is not None or f.max is not None:
        lo = "" if f.min is None else f"{f.min:g}"
        hi = "" if f.max is None else f"{f.max:g}"
        parts.append(f"Range: {lo} … {hi}")
    if f.choices:
        parts.append("Choices: " + ", ".join(str(c) for c in f.choices))
    parts.append(f"Default: {f.default}   (setting '{f.name}')")
    return "\n".join(parts)


# Short names in setting keys read better spelled as they are said.
_WORDS = {"lr": "LR", "g": "G", "d": "D", "ema": "EMA", "gp": "GP", "fid": "FID", "kid": "KID",
          "z": "z", "id": "ID", "rgb": "RGB", "ada": "ADA", "lod": "LOD", "msg": "MSG",
          "vgg": "VGG", "tv": "TV"}


def field_label(f: Field) -> str:
    """The row label: the field's own label, else its name with abbreviations in capitals
    (``lr_g`` -> "LR G", ``d_features`` -> "D features", ``ema_decay`` -> "EMA decay")."""
    if f.label:
        return f.label
    words = [w for w in f.name.split("_") if w]
    out = [_WORDS.get(w.lower(), w) for w in words]
    if out and out[0] == words[0]:
        out[0] = out[0][:1].upper() + out[0][1:]
    return " ".join(out)


def _fmt_float(v: float) -> str:
    return f"{v:g}"


class _WheelGuard(QObject):
    """Lets the mouse wheel scroll a form instead of changing the value under the pointer.

    Qt hands a wheel event to the spin box or combo box under the pointer even when the
    user only meant to scroll the settings list, so scrolling past "G features" quietly
    turned 32 into 25. A guarded editor takes the wheel only once it has the keyboard
    focus (a click or Tab); otherwise the event is ignored and goes on to the scroll area.
    """

    def eventFilter(self, obj: QObject, event: QEvent) -> bool:  # noqa: N802
        if event.type() == QEvent.Wheel and isinstance(obj, QWidget) and not obj.hasFocus():
            event.ignore()
            return True  # not for this editor; Qt passes an ignored wheel to the parent
        return False


_WHEEL_GUARD: _WheelGuard | None = None


def guard_wheel(*editors: QWidget) -> None:
    """Spin boxes and combo boxes in ``editors`` change on the wheel only when focused."""
    global _WHEEL_GUARD
    if _WHEEL_GUARD is None:
        _WHEEL_GUARD = _WheelGuard()
    for w in editors:
        if isinstance(w, (QAbstractSpinBox, QComboBox)):
            w.setFocusPolicy(Qt.StrongFocus)  # the wheel alone must not give it the focus
            w.installEventFilter(_WHEEL_GUARD)


def _form_layout(parent: QWidget) -> QFormLayout:
    """A form whose long rows put the editor under its label when the dock is narrow
    (instead of a sideways scroll bar once the Advanced fold opens)."""
    form = QFormLayout(parent)
    form.setRowWrapPolicy(QFormLayout.WrapLongRows)
    return form


class MultiChoice(QWidget):
    """One check box per choice; the value is the checked choices in schema order."""

    changed = Signal()

    def __init__(self, choices: Sequence[Any], parent: QWidget | None = None):
        super().__init__(parent)
        row = QHBoxLayout(self)
        row.setContentsMargins(0, 0, 0, 0)
        self.boxes: list[tuple[Any, QCheckBox]] = []
        for c in choices:
            box = QCheckBox(str(c))
            box.setObjectName(f"choice_{c}")
            box.toggled.connect(self.changed)
            row.addWidget(box)
            self.boxes.append((c, box))
        row.addStretch(1)

    def value(self) -> list[Any]:
        return [c for c, box in self.boxes if box.isChecked()]

    def set_value(self, values: Sequence[Any]) -> None:
        wanted = {str(v) for v in values}
        for c, box in self.boxes:
            box.setChecked(str(c) in wanted)


class SettingsForm(QWidget):
    """Editors for every field; :meth:`values` returns validated values."""

    changed = Signal()

    def __init__(self, schema: Sequence[Field], parent: QWidget | None = None):
        super().__init__(parent)
        self.schema = list(schema)
        self.editors: dict[str, QWidget] = {}
        self.automatic: dict[str, QCheckBox] = {}   # optional fields: checked = None
        lay = QVBoxLayout(self)
        lay.setContentsMargins(0, 0, 0, 0)
        groups: dict[str, QFormLayout] = {}
        advanced_fields = [f for f in self.schema if f.advanced]
        for f in self.schema:
            if f.advanced:
                continue
            if f.group not in groups:
                box = QGroupBox(f.group)
                groups[f.group] = _form_layout(box)
                lay.addWidget(box)
            self._add_row(groups[f.group], f)
        self.advanced_box = None
        if advanced_fields:
            box = QGroupBox("Advanced")
            box.setCheckable(True)
            box.setChecked(False)
            inner = QWidget()
            form = _form_layout(inner)
            form.setContentsMargins(0, 0, 0, 0)  # the box around it has margins already
            for f in advanced_fields:
                self._add_row(form, f)
            blay = QVBoxLayout(box)
            blay.addWidget(inner)
            inner.setVisible(False)
            box.toggled.connect(inner.setVisible)
            self.advanced_box = box
            lay.addWidget(box)
        lay.addStretch(1)

    # -- building ----------------------------------------------------------------------------
    def _add_row(self, form: QFormLayout, f: Field) -> None:
        editor = self._make_editor(f)
        editor.setObjectName(f"field_{f.name}")
        editor.setToolTip(_tooltip(f))
        guard_wheel(editor)
        self.editors[f.name] = editor
        shown = (editor if not isinstance(editor, QLineEdit) or f.type != "path"
                 else self._with_browse(editor))
        if f.optional:
            shown = self._with_automatic(f, shown)
        form.addRow(field_label(f), shown)
        self._set(f, f.default)

    def _with_automatic(self, f: Field, editor: QWidget) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        auto = QCheckBox("Automatic")
        auto.setObjectName(f"auto_{f.name}")
        auto.setToolTip("Let the model choose this setting")
        auto.toggled.connect(lambda on: editor.setEnabled(not on))
        auto.toggled.connect(self.changed)
        row.addWidget(auto)
        row.addWidget(editor, 1)
        self.automatic[f.name] = auto
        return box

    def _make_editor(self, f: Field) -> QWidget:
        if f.type == "int":
            w = QSpinBox()
            w.setRange(int(f.min) if f.min is not None else -_INT_LIMIT,
                       int(f.max) if f.max is not None else _INT_LIMIT)
            w.setAccelerated(True)
            w.valueChanged.connect(self.changed)
            return w
        if f.type == "bool":
            w = QCheckBox()
            w.toggled.connect(self.changed)
            return w
        if f.type == "choice":
            w = QComboBox()
            for c in f.choices or []:
                w.addItem(str(c), c)
            w.currentIndexChanged.connect(self.changed)
            return w
        if f.type == "multichoice":
            w = MultiChoice(f.choices or [])
            w.changed.connect(self.changed)
            return w
        w = QLineEdit()
        if f.type == "path":
            w.setPlaceholderText("(none)")
        elif f.type == "list":
            w.setPlaceholderText("comma-separated, e.g. 32, 64")
        w.textChanged.connect(lambda _t, f=f, w=w: self._check_text(f, w))
        return w

    def _with_browse(self, edit: QLineEdit) -> QWidget:
        box = QWidget()
        row = QHBoxLayout(box)
        row.setContentsMargins(0, 0, 0, 0)
        row.addWidget(edit, 1)
        btn = QPushButton("Browse…")
        btn.clicked.connect(lambda: self._browse(edit))
        row.addWidget(btn)
        return box

    def _browse(self, edit: QLineEdit) -> None:
        path, _ = QFileDialog.getOpenFileName(self, "Choose a file", edit.text())
        if path:
            edit.setText(path)

    def _check_text(self, f: Field, w: QLineEdit) -> None:
        try:
            if f.type in ("float", "list"):
                f.validate(w.text())
            w.setProperty("invalid", False)
            w.setStyleSheet("")
        except ConfigError as e:
            w.setProperty("invalid", True)
            w.setStyleSheet("border: 1px solid #e5484d;")
            w.setToolTip(f"{e}\n\n{_tooltip(f)}")
        self.changed.emit()

    # -- values ------------------------------------------------------------------------------
    def _set(self, f: Field, value: Any) -> None:
        w = self.editors[f.name]
        if f.name in self.automatic:
            self.automatic[f.name].setChecked(value is None)
            if value is None:
                return
        if isinstance(w, MultiChoice):
            w.set_value(value)
        elif isinstance(w, QSpinBox):
            w.setValue(int(value))
        elif isinstance(w, QCheckBox):
            w.setChecked(bool(value))
        elif isinstance(w, QComboBox):
            idx = next((i for i in range(w.count()) if str(w.itemData(i)) == str(value)), -1)
            if idx >= 0:
                w.setCurrentIndex(idx)
        elif isinstance(w, QLineEdit):
            if f.type == "list":
                w.setText(", ".join(_fmt_float(v) if isinstance(v, float) else str(v)
                                    for v in value))
            else:
                w.setText(_fmt_float(value) if f.type == "float" else str(value))

    def _raw(self, f: Field) -> Any:
        w = self.editors[f.name]
        if f.name in self.automatic and self.automatic[f.name].isChecked():
            return None
        if isinstance(w, MultiChoice):
            return w.value()
        if isinstance(w, QSpinBox):
            return w.value()
        if isinstance(w, QCheckBox):
            return w.isChecked()
        if isinstance(w, QComboBox):
            return w.currentData()
        return w.text().strip() if f.type in ("float", "list") else w.text()

    def values(self) -> dict[str, Any]:
        """Every field's value, validated; ConfigError names the first bad one."""
        return {f.name: f.validate(self._raw(f)) for f in self.schema}

    def set_values(self, values: dict[str, Any]) -> list[str]:
        """Fill in known keys (validated); returns the keys this schema does not know."""
        by_name = {f.name: f for f in self.schema}
        unknown = []
        for key, value in values.items():
            f = by_name.get(key)
            if f is None:
                unknown.append(key)
                continue
            self._set(f, f.validate(value))
        return unknown

    def reset_defaults(self) -> None:
        for f in self.schema:
            self._set(f, f.default)
