"""Sample grids: arrays to QImage, which cell was clicked, the time-lapse slider."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PySide6.QtCore import QPoint, Qt

from ganstudio.core.images import make_grid, save_png
from ganstudio.gui.grid import (SamplePanel, array_to_qimage, grid_layout, qimage_to_array)


def test_array_to_qimage_keeps_every_pixel():
    rng = np.random.default_rng(1)
    rgb = rng.integers(0, 256, (13, 7, 3), dtype=np.uint8)
    assert np.array_equal(qimage_to_array(array_to_qimage(rgb)), rgb)
    gray = rng.integers(0, 256, (5, 9, 1), dtype=np.uint8)
    img = array_to_qimage(gray)
    assert (img.width(), img.height()) == (9, 5)
    assert img.pixelColor(3, 2).red() == gray[2, 3, 0]
    with pytest.raises(ValueError):
        array_to_qimage(rgb.astype(np.float32))


@pytest.mark.parametrize("n,size", [(64, 32), (64, 4), (16, 16), (9, 64)])
def test_grid_layout_recovers_make_grid(n, size):
    grid = make_grid(torch.zeros(n, 3, size, size))
    ncol, nrow, cw, ch = grid_layout(grid.shape[1], grid.shape[0])
    side = int(np.ceil(np.sqrt(n)))
    assert (ncol, cw, ch) == (side, size, size) and nrow == int(np.ceil(n / side))


def _grid_with_distinct_cells(n=16, size=8):
    imgs = torch.stack([torch.full((3, size, size), -1 + 2 * i / (n - 1)) for i in range(n)])
    return make_grid(imgs)


def test_click_enlarges_the_sample_under_the_mouse(qtbot):
    panel = SamplePanel()
    qtbot.addWidget(panel)
    panel.resize(400, 400)
    panel.show()
    grid = _grid_with_distinct_cells()
    panel.add_grid(10, grid, None)
    view = panel.view
    t = view.target_rect()
    scale = t.width() / grid.shape[1]
    # centre of cell (row 2, col 1) -> index 9
    cx = t.x() + (2 + 1 * 10 + 4) * scale
    cy = t.y() + (2 + 2 * 10 + 4) * scale
    with qtbot.waitSignal(view.cellClicked) as blocker:
        qtbot.mouseClick(view, Qt.LeftButton, pos=QPoint(int(cx), int(cy)))
    assert blocker.args == [9]
    dlg = panel.dialogs[-1]
    qtbot.addWidget(dlg)
    crop = qimage_to_array(dlg.image)
    assert crop.shape == (8, 8, 3)
    expected = grid[22:30, 12:20]
    assert np.array_equal(crop, expected)


def test_timelapse_slider_walks_saved_grids(qtbot, tmp_path):
    panel = SamplePanel()
    qtbot.addWidget(panel)
    frames = []
    for step in (0, 50, 100):
        arr = np.full((10, 10, 3), step, dtype=np.uint8)
        frames.append((step, save_png(arr, tmp_path / f"step_{step:08d}.png")))
    panel.set_frames(frames)
    assert panel.current_step == 100 and panel.slider.maximum() == 2
    with qtbot.waitSignal(panel.frameShown) as blocker:
        panel.slider.setValue(0)
    assert blocker.args == [0] and not panel.live.isChecked()
    assert qimage_to_array(panel.current_image())[0, 0, 0] == 0
    # a new live grid does not yank the view while the user scrubs...
    panel.add_grid(150, np.full((10, 10, 3), 150, np.uint8), None)
    assert panel.current_step == 0 and panel.slider.maximum() == 3
    # ...until Live is ticked again
    save_png(np.full((10, 10, 3), 150, np.uint8), tmp_path / "step_00000150.png")
    panel.frames[-1] = (150, str(tmp_path / "step_00000150.png"))
    panel.live.setChecked(True)
    assert panel.current_step == 150
