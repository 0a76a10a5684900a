"""The status bar's permanent labels and the arithmetic behind them (speed, ETA,
memory, progressive-growing progress), kept out of the window."""
from __future__ import annotations

from typing import Any

from PySide6.QtWidgets import QLabel, QStatusBar

from ganstudio.core.units import format_duration

PROGRESS_KEYS = ("resolution", "alpha", "phase", "phase_progress")

LABELS = (("state", "Training state"), ("step", "Step / total steps"),
          ("speed", "Images per second"), ("elapsed", "Training time"),
          ("eta", "Estimated time left"), ("progress", "Progressive growing"),
          ("device", "Training device"), ("memory", "Memory in use"))


def fmt_bytes(n: int | None) -> str:
    if n is None:
        return "n/a"
    for unit in ("B", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GB"


def device_text(device: str, precision: str = "fp32") -> str:
    """The status bar's device, with ``· bf16`` when the run trains under bf16 autocast,
    so the precision is visible without a hover."""
    return device if precision in ("", "fp32") else f"{device} · {precision}"


def progress_text(values: dict) -> str:
    """Status-bar text for progressive models (resolution, alpha, phase, phase progress)."""
    parts = []
    if values.get("phase") is not None:
        parts.append(f"phase {values['phase']:g}")
    if values.get("resolution") is not None:
        r = int(values["resolution"])
        parts.append(f"{r}×{r} px")
    if values.get("alpha") is not None:
        parts.append(f"α {values['alpha']:.2f}")
    if values.get("phase_progress") is not None:
        parts.append(f"{100 * values['phase_progress']:.0f}% of phase")
    return " · ".join(parts)


def step_text(step: int, total: int | None = None) -> str:
    return f"step {step:,}" + (f" / {total:,}" if total else "")


class SpeedMeter:
    """Smoothed images per second and steps per second from metrics events; the ETA."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.images_per_s = 0.0
        self.steps_per_s = 0.0
        self._last: tuple[int, float] | None = None

    def update(self, step: int, time_s: float, images_per_s: float) -> None:
        ips = float(images_per_s)
        self.images_per_s = ips if self.images_per_s == 0 else 0.8 * self.images_per_s + 0.2 * ips
        if self._last is not None:
            ds, dt = step - self._last[0], time_s - self._last[1]
            if dt > 0 and ds >= 0:
                sps = ds / dt
                self.steps_per_s = sps if self.steps_per_s == 0 else (
                    0.9 * self.steps_per_s + 0.1 * sps)
        self._last = (step, time_s)

    def eta(self, step: int, total: int) -> float:
        """Seconds left at the current speed (NaN before the speed is known)."""
        return (total - step) / self.steps_per_s if self.steps_per_s > 0 else float("nan")


class StatusLabels:
    """The permanent labels on the window's status bar (``labels[key]``)."""

    def __init__(self, bar: QStatusBar):
        self.labels: dict[str, QLabel] = {}
        for key, tip in LABELS:
            lab = QLabel("")
            lab.setObjectName(f"status_{key}")
            lab.setToolTip(tip)
            lab.setContentsMargins(6, 0, 6, 0)
            bar.addPermanentWidget(lab)
            self.labels[key] = lab
        self.labels["progress"].setVisible(False)

    def __getitem__(self, key: str) -> QLabel:
        return self.labels[key]

    def set(self, key: str, text: str) -> None:
        self.labels[key].setText(text)

    def set_progress(self, values: dict) -> None:
        prog = progress_text({k: values[k] for k in PROGRESS_KEYS
                              if isinstance(values.get(k), (int, float))})
        self.labels["progress"].setText(prog)
        self.labels["progress"].setVisible(bool(prog))

    def clear_speed(self) -> None:
        self.labels["speed"].setText("")
        self.labels["eta"].setText("")

    def clear_run(self) -> None:
        """Nothing of a previous run stays on screen."""
        for key in ("step", "speed", "elapsed", "eta", "memory", "device"):
            self.labels[key].setText("")
        self.labels["device"].setToolTip("Training device")
        self.set_progress({})

    def show_metrics(self, step: int, total: int, meter: SpeedMeter, elapsed: float,
                     memory: int | None, values: dict[str, Any]) -> None:
        self.set("step", step_text(step, total))
        self.set("speed", f"{meter.images_per_s:,.0f} img/s")
        self.set("elapsed", f"elapsed {format_duration(elapsed)}")
        self.set("eta", f"ETA {format_duration(meter.eta(step, total))}")
        self.set("memory", f"memory {fmt_bytes(memory)}")
        self.set_progress(values)
