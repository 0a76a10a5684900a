"""Time estimates shown before Start / Train on the Style transfer tab, and the
device-aware defaults. The device speed is measured once per device and layer set
in a studio background task (about a second on a CPU). Loaded only by the studio."""
from __future__ import annotations

from typing import Any, Callable

from PySide6.QtCore import QObject, QTimer, Signal

from ganstudio.core.errors import ConfigError, UserError
from ganstudio.core.units import format_duration

from . import estimate

#: Above this many seconds the estimate suggests smaller settings.
LONG_S = 15 * 60


def device_words(device: Any) -> str:
    return "this CPU" if device.type == "cpu" else f"this {device.type.upper()} device"


class Estimator(QObject):
    """Keeps one estimate label up to date for a page: ``seconds(config, speed)``
    turns the page's settings into seconds; ``layers(config)`` names the VGG layers."""

    updated = Signal(float)   # seconds, after each new estimate

    def __init__(self, studio: Any, label: Any, settings: Callable[[], dict],
                 seconds: Callable[[dict, float], float], what: Callable[[dict], str],
                 advice: str, parent: QObject | None = None):
        super().__init__(parent)
        self.studio = studio
        self.label = label
        self.settings = settings
        self.seconds_for = seconds
        self.what = what
        self.advice = advice
        self.last_seconds: float | None = None
        self._pending: Any = None
        self._closed = False
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(250)   # settle typing before measuring
        self._timer.timeout.connect(self.update_now)

    def schedule(self) -> None:
        self._timer.start()

    def device(self) -> Any:
        from ganstudio.core.devices import pick_device
        return pick_device(self.studio.device(), precision="fp32").device

    def update_now(self) -> None:
        if self._closed:
            return
        try:
            config = self.settings()
            device = self.device()
        except (UserError, ConfigError) as e:
            self.label.setText(f"No estimate: {e}")
            return
        layers = [s.strip() for s in str(config.get("style_layers", "")).split(",")
                  if s.strip()] + [str(config.get("content_layer", "relu4_2"))]
        key = (str(device), tuple(sorted(set(layers))))
        speed = estimate._cache.get(key)
        if speed is not None:
            self._show(config, device, speed)
            return
        self.label.setText(f"Measuring the speed of {device_words(device)}…")
        if self._pending is not None and self._pending.running:
            return  # the running measurement calls update_now again when it ends

        def measure(_ctx) -> float:
            return estimate.measure_vgg_speed(device, layers)

        self._pending = self.studio.run_task(
            measure, on_result=lambda _s: self._timer.start(0),
            on_error=lambda msg, _tb: self.label.setText(f"No estimate: {msg}"))

    def _show(self, config: dict, device: Any, speed: float) -> None:
        seconds = self.seconds_for(config, speed)
        self.last_seconds = seconds
        text = (f"Estimated time on {device_words(device)}: about {format_duration(seconds)} "
                f"({self.what(config)}).")
        if seconds > LONG_S:
            text += f" {self.advice}"
        self.label.setText(text)
        self.updated.emit(seconds)

    def close(self, timeout_ms: int) -> bool:
        """Start no more measurements; wait for one that runs. True when none is left."""
        self._closed = True
        self._timer.stop()
        handle = self._pending
        return handle is None or handle.wait(timeout_ms)
