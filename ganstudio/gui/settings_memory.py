"""The Model panel's settings remembered per model across launches (resolution, batch,
steps, ... as the user left them), in the studio's QSettings.

Saved as JSON under ``models/<model id>`` whenever the user changes a setting or the
number of steps; restored when that model is selected. A remembered value the
model no longer accepts (a newer plugin) is left at the model's default.
"""
from __future__ import annotations

import json
from typing import Any

from PySide6.QtCore import QObject, QSettings

from ganstudio.core.errors import ConfigError


class SettingsMemory(QObject):
    def __init__(self, settings: QSettings, model_panel):
        super().__init__(model_panel)
        self.settings = settings
        self.panel = model_panel
        self._restoring = False
        self._form = None
        model_panel.modelChanged.connect(self._on_model)
        model_panel.steps.valueChanged.connect(lambda _v: self.save())

    @staticmethod
    def key(model_id: str) -> str:
        return f"models/{model_id}"

    def remembered(self, model_id: str) -> dict[str, Any] | None:
        raw = self.settings.value(self.key(model_id))
        if not raw:
            return None
        try:
            data = json.loads(str(raw))
        except ValueError:
            return None
        return data if isinstance(data, dict) else None

    def save(self) -> None:
        spec, form = self.panel.current_spec(), self.panel.form
        if self._restoring or spec is None or form is None:
            return
        try:
            values = form.values()
        except ConfigError:
            return      # a half-typed value: keep what was remembered before
        data = {"settings": values, "steps": int(self.panel.steps.value())}
        self.settings.setValue(self.key(spec.id), json.dumps(data, default=str))

    def _on_model(self, model_id: str) -> None:
        form = self.panel.form
        if form is not None and form is not self._form:
            self._form = form
            form.changed.connect(self.save)
        self.restore(model_id)

    def restore(self, model_id: str) -> list[str]:
        """Put back what was remembered for ``model_id``; returns the keys put back."""
        data = self.remembered(model_id)
        form = self.panel.form
        if not data or form is None:
            return []
        back = []
        self._restoring = True
        try:
            for key, value in (data.get("settings") or {}).items():
                try:
                    if not form.set_values({key: value}):
                        back.append(key)
                except ConfigError:
                    pass
            steps = data.get("steps")
            if isinstance(steps, int) and steps >= 1:
                self.panel.steps.setValue(steps)
        finally:
            self._restoring = False
        return back
