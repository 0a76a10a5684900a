"""Seed browser: a page of samples labelled with their seeds, pins, and the ψ slider."""
from __future__ import annotations

from typing import Any

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (QCheckBox, QGridLayout, QHBoxLayout, QLabel, QPushButton,
                               QSlider, QSpinBox, QVBoxLayout, QWidget)

from .views import ImageView, OneJob

COLUMNS, ROWS = 6, 3
PAGE = COLUMNS * ROWS
TILE = 112
PSI_STEPS = 100   # the slider's units per 1.0 of ψ


class SeedTile(QWidget):
    """One sample: its picture and a check box "seed N" that pins it."""

    def __init__(self, browser: "SeedBrowser"):
        super().__init__()
        self.seed = 0
        self.image = ImageView(TILE)
        self.pin = QCheckBox("seed 0")
        self.pin.setToolTip("Pin this seed (kept in the run's explore.json; pinned seeds are "
                            "the points of interpolations and loops)")
        layout = QVBoxLayout(self)
        layout.setContentsMargins(2, 2, 2, 2)
        layout.addWidget(self.image)
        layout.addWidget(self.pin)
        self.pin.toggled.connect(lambda on: browser.set_pinned(self.seed, on))

    def set_seed(self, seed: int, pinned: bool) -> None:
        self.seed = seed
        self.pin.blockSignals(True)
        self.pin.setText(f"seed {seed}")
        self.pin.setChecked(pinned)
        self.pin.blockSignals(False)


class SeedBrowser(QWidget):
    def __init__(self, panel: Any):
        super().__init__()
        self.panel = panel
        self.first = QSpinBox()
        self.first.setRange(0, 2**31 - 1 - PAGE)
        self.first.setSingleStep(PAGE)
        self.first.setToolTip("Seed of the first sample on the page")
        self.prev_button = QPushButton("◀ Previous")
        self.next_button = QPushButton("Next ▶")
        self.psi = QSlider(Qt.Horizontal)
        self.psi.setRange(0, int(1.5 * PSI_STEPS))
        self.psi.setValue(PSI_STEPS)
        self.psi.setToolTip("Truncation ψ: below 1 pulls every sample toward the average "
                            "(more typical, less varied); 1 is off. Gaussian latents only.")
        self.psi_label = QLabel("ψ 1.00")
        self.status = QLabel("")

        bar = QHBoxLayout()
        bar.addWidget(self.prev_button)
        bar.addWidget(QLabel("First seed:"))
        bar.addWidget(self.first)
        bar.addWidget(self.next_button)
        bar.addSpacing(16)
        bar.addWidget(QLabel("Truncation:"))
        bar.addWidget(self.psi, 1)
        bar.addWidget(self.psi_label)

        grid = QGridLayout()
        self.tiles = [SeedTile(self) for _ in range(PAGE)]
        for i, tile in enumerate(self.tiles):
            grid.addWidget(tile, i // COLUMNS, i % COLUMNS)

        layout = QVBoxLayout(self)
        layout.addLayout(bar)
        layout.addLayout(grid)
        layout.addWidget(self.status)
        layout.addStretch(1)

        self.job = OneJob(self._start_render)
        self.rendered: tuple | None = None   # (seeds, psi) on screen
        self.prev_button.clicked.connect(lambda: self.first.setValue(self.first.value() - PAGE))
        self.next_button.clicked.connect(lambda: self.first.setValue(self.first.value() + PAGE))
        self.first.valueChanged.connect(lambda _v: self.render())
        self.psi.valueChanged.connect(self._psi_moved)
        panel.explorer_changed.connect(self._explorer_changed)
        panel.pins_changed.connect(self._update_pins)
        self._explorer_changed(None)

    # -- state -----------------------------------------------------------------------------------
    def seeds(self) -> list[int]:
        start = self.first.value()
        return list(range(start, start + PAGE))

    def psi_value(self) -> float:
        return self.psi.value() / PSI_STEPS

    def _explorer_changed(self, explorer: Any) -> None:
        gaussian = explorer is not None and explorer.distribution == "gaussian"
        self.psi.setEnabled(gaussian)
        if explorer is not None and not gaussian:
            self.psi.setValue(PSI_STEPS)
            self.psi_label.setText("ψ – (uniform latents)")
        for w in (self.first, self.prev_button, self.next_button):
            w.setEnabled(explorer is not None)
        for tile in self.tiles:
            tile.setEnabled(explorer is not None)
            if explorer is None:
                tile.image.clear_image()
        self.rendered = None
        if explorer is not None:
            self.render()

    def _psi_moved(self, _value: int) -> None:
        self.psi_label.setText(f"ψ {self.psi_value():.2f}")
        self.render()

    def _update_pins(self) -> None:
        from ganstudio.core.explore_state import pinned_seeds
        pinned = set(pinned_seeds(self.panel.run)) if self.panel.run else set()
        for tile in self.tiles:
            tile.set_seed(tile.seed, tile.seed in pinned)

    def set_pinned(self, seed: int, on: bool) -> None:
        from ganstudio.core.errors import UserError
        from ganstudio.core.explore_state import set_seed_pinned
        if self.panel.run is None:
            return
        try:
            set_seed_pinned(self.panel.run, seed, on)
        except UserError as e:
            self.panel.studio.show_status(str(e), "error")
            return
        self.panel.pins_changed.emit()

    # -- drawing ---------------------------------------------------------------------------------
    def render(self) -> None:
        """Draw the page for the current seeds and ψ (coalesced while a drawing runs)."""
        if self.panel.explorer is not None:
            self.job.request()

    def _start_render(self) -> Any:
        explorer = self.panel.explorer
        seeds, psi = self.seeds(), self.psi_value()
        if explorer is None:
            return None
        self._update_pins_for(seeds)
        self.status.setText("Drawing…")

        def work(_ctx):
            return seeds, psi, explorer.seed_images(seeds, psi)

        def done(result):
            seeds_, psi_, images = result
            if explorer is not self.panel.explorer:
                return
            for tile, img in zip(self.tiles, images):
                tile.image.show_image(img)
            self.rendered = (tuple(seeds_), psi_)
            self.status.setText(f"Seeds {seeds_[0]}–{seeds_[-1]}, ψ {psi_:.2f}, "
                                f"step {explorer.step}")

        def failed(message, _tb):
            self.status.setText(message)

        return self.panel.task(work, on_result=done, on_error=failed,
                               on_finished=self.job.finished)

    def _update_pins_for(self, seeds: list[int]) -> None:
        from ganstudio.core.explore_state import pinned_seeds
        pinned = set(pinned_seeds(self.panel.run)) if self.panel.run else set()
        for tile, seed in zip(self.tiles, seeds):
            tile.set_seed(seed, seed in pinned)
