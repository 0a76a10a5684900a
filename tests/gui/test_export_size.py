"""Exports at the size asked: the dialog's size, frame rate and length reach the files,
GIFs carry their frame delay, and the full-size sample view saves the sample."""
from __future__ import annotations

import numpy as np
from PIL import Image

from ganstudio.core.media import OutputSize
from ganstudio.core.runs import RunFolder


def test_dialog_options_reach_the_written_files(qtbot, tiny_window, finished_run, tmp_path):
    from ganstudio.gui.widgets import ExportDialog
    run_dir, _engine = finished_run
    w = tiny_window()
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_dir)
    dlg = ExportDialog("tiny-done", True)
    qtbot.addWidget(dlg)
    dlg.radios["timelapse"].setChecked(True)
    opts = dlg.output
    assert opts.fps.isVisibleTo(dlg) and opts.seconds.isVisibleTo(dlg)
    opts.scale.setCurrentIndex(opts.scale.findData(2))
    opts.fps.setValue(10)
    opts.seconds.setValue(1.5)
    values = opts.values()
    assert values == {"size": OutputSize(scale=2), "fps": 10.0, "seconds": 1.5}
    grid_w, grid_h = Image.open(RunFolder(run_dir).sample_path(12)).size
    with qtbot.waitSignal(w.exportDone, timeout=20_000) as blocker:
        w.exporter.export("timelapse", run_dir, tmp_path / "out" / "t.gif", options=values)
    path = blocker.args[0]
    with Image.open(path) as im:
        assert im.size == (2 * grid_w, 2 * grid_h)
        # 1.5 s at 10 fps: 15 frames; a GIF keeps a grid held over several frames as one
        # frame with their delays added
        assert im.n_frames == 4
        delays = []
        for i in range(im.n_frames):
            im.seek(i)
            delays.append(im.info["duration"])
    assert sum(delays) == 1500 and all(d % 100 == 0 for d in delays)
    with qtbot.waitSignal(w.exportDone, timeout=20_000) as blocker:
        w.exporter.export("timelapse", run_dir, tmp_path / "out" / "t.mp4", options=values)
    import imageio.v2 as imageio
    reader = imageio.get_reader(blocker.args[0])
    try:
        assert reader.count_frames() == 15 and reader.get_meta_data()["fps"] == 10
    finally:
        reader.close()
    (tmp_path / "out" / "t.mp4").unlink()
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["t.gif"]
    # the grid on screen at a pixel size, smoothly
    dlg.radios["grid"].setChecked(True)
    assert not opts.fps.isVisibleTo(dlg)
    opts.scale.setCurrentIndex(opts.scale.findData(0))
    opts.pixels.setValue(300)
    opts.smooth.setChecked(True)
    with qtbot.waitSignal(w.exportDone, timeout=20_000) as blocker:
        w.exporter.export("grid", run_dir, tmp_path / "out" / "g.png", options=opts.values())
    with Image.open(blocker.args[0]) as im:
        assert max(im.size) == 300
    # fresh samples, each x4
    with qtbot.waitSignal(w.exportDone, timeout=20_000) as blocker:
        w.exporter.export("samples", run_dir, tmp_path / "out" / "s", n=3,
                          options={"size": OutputSize(scale=4)})
    files = sorted((tmp_path / "out" / "s").glob("*.png"))
    assert len(files) == 3 and all(Image.open(f).size == (64, 64) for f in files)


def test_full_size_view_saves_the_sample(qtbot, tiny_window, finished_run, tmp_path):
    run_dir, _engine = finished_run
    w = tiny_window()
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_dir)
    dlg = w.samples.enlarge(0)
    assert dlg is not None
    qtbot.addWidget(dlg)
    assert dlg.save_button.isVisible()
    dlg.output.scale.setCurrentIndex(dlg.output.scale.findData(8))
    with qtbot.waitSignal(dlg.saved, timeout=5_000) as blocker:
        dlg.save_to(tmp_path / "one")
    saved = np.asarray(Image.open(blocker.args[0]).convert("RGB"))
    cell = w.samples.sample_image(0)
    assert saved.shape == (cell.height() * 8, cell.width() * 8, 3)
    from ganstudio.gui.grid import qimage_to_array
    assert np.array_equal(saved[::8, ::8], qimage_to_array(cell))
    # a folder in the way is said in the dialog, not raised
    (tmp_path / "taken.png").mkdir()
    assert dlg.save_to(tmp_path / "taken.png") is None
    assert "Not saved" in dlg.message.text() and "taken.png" in dlg.message.text()
