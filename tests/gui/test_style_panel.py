"""The Style transfer tab, offscreen, through the plugin door: built by the style plugin's
``ganstudio_studio_panels`` factory against the studio's panel API, driven through its
real widgets (pick pictures, run, watch, stop, save, train, apply, export)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from ganstudio.core.engine import Engine, EngineSettings  # noqa: E402
from ganstudio.gui.tasks import running_threads  # noqa: E402
from ganstudio.plugins import PluginManager  # noqa: E402
from ganstudio_style.vgg import random_vgg_state  # noqa: E402

TINY_FAST = dict(resolution=32, width=4, res_blocks=1, batch_size=2, content_layer="relu2_2",
                 style_layers="relu1_2,relu2_2")


@pytest.fixture(autouse=True)
def _no_torch_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture(scope="module")
def files(tmp_path_factory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("panel")
    torch.save(random_vgg_state("relu3_1", dtype=torch.float16), d / "vgg.pth")
    yy, xx = np.mgrid[0:24, 0:32]
    Image.fromarray(np.stack([xx * 8, yy * 10, xx + yy], -1).astype(np.uint8)).save(d / "c.png")
    s = np.zeros((20, 20, 3), np.uint8)
    s[::3] = (255, 120, 0)
    Image.fromarray(s).save(d / "s1.png")
    Image.fromarray(s.transpose(1, 0, 2)).save(d / "s2.png")
    return {"dir": d, "vgg": d / "vgg.pth", "content": d / "c.png", "s1": d / "s1.png",
            "s2": d / "s2.png"}


@pytest.fixture
def studio(qtbot, tmp_path):
    """The studio's panel API on a bare window: what a plugin's tab gets."""
    from PySide6.QtWidgets import QWidget
    from ganstudio.gui.panel_api import StudioAPI
    from ganstudio.gui.tasks import Tasks
    window = QWidget()
    qtbot.addWidget(window)
    pm = PluginManager(load_folder=False)
    api = StudioAPI(window, Tasks(window), current_run=lambda: None,
                    runs_root=lambda: tmp_path / "runs", plugin_manager=lambda: pm,
                    device=lambda: "cpu", show_status=lambda text, level: None,
                    open_run=lambda path: None)
    yield api
    api._tasks.wait_all(30_000)


@pytest.fixture
def panel(qtbot, studio):
    specs, problems = studio.plugin_manager().panels()
    spec = next(s for s in specs if s.title == "Style transfer")
    p = spec.factory(studio)   # the plugin's own factory, as the studio calls it
    qtbot.addWidget(p)
    p.resize(900, 600)
    yield p
    assert p.shutdown(30_000)
    assert not running_threads(), "a studio thread was left running"


def configure(panel, files, **values) -> None:
    panel.set_content(str(files["content"]))
    panel.add_style(str(files["s1"]))
    panel.add_style(str(files["s2"]))
    panel.repaint.set_style_weight(1, 0.25)
    panel.weights.set_file(str(files["vgg"]))
    settings = dict(size=16, iterations=6, style_layer_weights="")
    settings.update(values)
    panel.repaint.form.set_values(settings)
    panel.repaint.form.set_values({"style_layers": "relu1_1,relu2_1", "content_layer": "relu3_1"})
    panel.repaint.preview_every.setValue(2)


def test_run_shows_losses_preview_progress_and_result(qtbot, panel, files, tmp_path):
    configure(panel, files)
    assert panel.weights.refresh() and "vgg.pth" in panel.weights.status_label.text()
    assert panel.repaint.overrides()["style_blend"] == "1,0.25"
    assert panel.repaint.style_list.item(1).text().endswith("×0.25")
    previews, progress = [], []
    panel.compare.set_after = lambda img, f=panel.compare.set_after: (previews.append(img), f(img))
    panel.progress.setFormat = lambda text, f=panel.progress.setFormat: (progress.append(text),
                                                                         f(text))
    with qtbot.waitSignal(panel.jobFinished, timeout=60_000) as done:
        qtbot.mouseClick(panel.repaint.start_button, _left())
        assert not panel.repaint.start_button.isEnabled()
        assert panel.repaint.stop_button.isEnabled()
    assert done.args == ["completed"]
    assert panel.result is not None and panel.result.shape == (12, 16, 3)
    assert len([p for p in previews if p is not None]) >= 3  # previews and the result
    assert any(t.startswith("iteration 6/6") for t in progress), progress
    assert any("ETA" in t for t in progress), progress  # long jobs say how long is left
    xs, ys = panel.chart.series_for("style").xs, panel.chart.series_for("style").ys
    assert len(xs) >= 1 and xs[-1] == 6 and np.isfinite(ys).all()
    assert "scale_px" not in panel.chart.series  # status values stay off the loss chart
    assert panel.repaint.start_button.isEnabled() and panel.save_button.isEnabled()
    out = panel.save_result(tmp_path / "saved.png")
    assert np.array_equal(np.asarray(Image.open(out)), panel.result)
    panel.split_slider.setValue(40)
    assert panel.compare.split == pytest.approx(0.4)
    assert panel.compare.before is not None and panel.compare.after is not None
    temp = panel.run_dir
    assert (temp / "samples").is_dir()
    assert panel.shutdown() and not temp.exists()  # the temporary run folder is cleaned up


def _left():
    from PySide6.QtCore import Qt
    return Qt.LeftButton


def test_stop_early_keeps_the_best_image(qtbot, panel, files):
    configure(panel, files, iterations=100_000)
    with qtbot.waitSignal(panel.chart.redrawn, timeout=60_000):
        assert panel.start()
    with qtbot.waitSignal(panel.jobFinished, timeout=60_000) as done:
        qtbot.mouseClick(panel.repaint.stop_button, _left())
    assert done.args == ["stopped"]
    assert panel.result is not None and panel.result.shape == (12, 16, 3)
    assert "best image so far" in panel.status.text()


def test_missing_weights_are_explained_next_to_start(qtbot, panel, files, monkeypatch):
    messages = []
    panel.message.connect(messages.append)
    notice = panel.repaint.notice
    qtbot.mouseClick(panel.repaint.start_button, _left())
    assert notice.text == "Choose a content picture first."
    panel.set_content(str(files["content"]))
    assert not notice.text  # a new choice clears the old message
    assert not panel.start() and notice.text == "Add at least one style picture."
    panel.add_style(str(files["s1"]))
    assert not panel.weights.refresh()
    assert not panel.start()
    # next to Start, in the studio's words: its own buttons, no command-line flag
    assert "VGG-19 weights are needed" in notice.text and "“Download…”" in notice.text
    assert "--" not in notice.text and "vgg19-dcbb9e9d.pth" in notice.text
    assert [b.text() for b in notice.buttons] == ["Download…", "Browse…"]
    assert panel.weights.download_button.isEnabled()

    # Offline: the real download code fails and the tab says which file and where.
    import ganstudio_style.vgg as vgg
    real = vgg.download_vgg_weights
    monkeypatch.setattr(vgg, "download_vgg_weights", lambda **kw: real(
        url="http://127.0.0.1:9/vgg19.pth", timeout=5, **kw))
    with qtbot.waitSignal(panel.message, timeout=30_000,
                          check_params_cb=lambda m: m.startswith("Could not download")):
        qtbot.mouseClick(notice.buttons[0], _left())   # "Download…" right there
        assert not panel.weights.bar.isHidden()  # the progress bar is shown meanwhile
    assert "vgg19-dcbb9e9d.pth" in messages[-1]
    assert str(vgg.hub_weights_path().parent) in messages[-1] and "--" not in messages[-1]
    qtbot.waitUntil(lambda: panel.weights.bar.isHidden(), timeout=10_000)
    assert panel.weights.download_button.isEnabled()

    panel.weights.set_file(str(files["dir"] / "absent.pth"))
    assert "not found" in panel.weights.status_label.text()
    assert not panel.weights.download_button.isEnabled()
    panel.weights.set_file(str(files["vgg"]))
    assert not notice.text  # found now: the message next to Start goes away


def test_cpu_defaults_and_an_estimate_before_start(qtbot, panel, files):
    form = panel.repaint.form
    assert form.values()["size"] == 256 and form.values()["iterations"] == 100  # on a CPU
    assert panel.fast.form.values()["resolution"] == 128 and panel.fast.steps.value() == 2000
    with qtbot.waitSignal(panel.repaint_estimate.updated, timeout=30_000) as got:
        panel.repaint_estimate.update_now()
    first = got.args[0]
    assert first > 0 and "Estimated time on this CPU: about" in panel.repaint.estimate.text()
    assert "256 px, 100 iterations" in panel.repaint.estimate.text()
    with qtbot.waitSignal(panel.repaint_estimate.updated, timeout=30_000) as got:
        form.set_values({"iterations": 200})
    assert got.args[0] == pytest.approx(2 * first, rel=1e-6)  # measured once, then scaled
    with qtbot.waitSignal(panel.repaint_estimate.updated, timeout=30_000) as got:
        form.set_values({"size": 4096, "iterations": 300})
    assert "finish sooner" in panel.repaint.estimate.text()


def test_fast_page_controls_say_what_they_are(panel):
    from PySide6.QtWidgets import QPushButton, QSpinBox
    texts = [b.text() for b in panel.fast.findChildren(QPushButton)]
    assert texts.count("Browse…") == 4 and "Files…" in texts and "Folder…" in texts
    assert not [t for t in texts if t.strip(".… ") == ""], texts  # no "." or "…" buttons
    style_size = panel.fast.form.editors["style_size"]
    assert isinstance(style_size, QSpinBox) and style_size.value() == 0
    assert style_size.text() == "same as the training size"
    assert panel.repaint.form.editors["scales"].text() == "automatic"


def _train_net(files, folder: Path, photos: Path) -> Path:
    pm = PluginManager(load_folder=False)
    Engine(pm.get_model("fast-style"), folder, data_folder=photos,
           overrides=dict(style=str(files["s1"]), vgg_weights=str(files["vgg"]), **TINY_FAST),
           settings=EngineSettings(total_steps=2, device="cpu", checkpoint_every_s=0)).run_loop()
    return folder


def test_apply_and_export_a_trained_network_from_the_tab(qtbot, panel, files, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 28, 3), 40 * i, np.uint8)).save(photos / f"{i}.png")
    net = _train_net(files, tmp_path / "net", photos)
    panel.fast.net_edit.setText(str(net))
    panel.fast.inputs_edit.setText(str(photos))
    panel.fast.out_edit.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(panel.applyFinished, timeout=60_000) as done:
        qtbot.mouseClick(panel.fast.apply_button, _left())
    assert done.args == [3]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]
    assert panel.result is not None and panel.result.shape == (20, 28, 3)
    assert panel.compare.before is not None and panel.compare.before.width() == 28

    with qtbot.waitSignal(panel.exportFinished, timeout=120_000) as exported:
        assert panel.export_onnx(tmp_path / "style.onnx")
    assert exported.args == [str(tmp_path / "style.onnx")]
    assert "checked in onnxruntime" in panel.status.text()

    panel.fast.net_edit.setText(str(tmp_path))
    with qtbot.waitSignal(panel.applyFinished, timeout=30_000) as done:
        panel.apply_network()
    assert done.args == [-1] and "run.json" in panel.fast.apply_notice.text


_KEEP: list = []  # a QDropEvent does not own its QMimeData: keep it alive


def _drop_event(paths):
    from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
    from PySide6.QtGui import QDropEvent
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(p)) for p in paths])
    _KEEP.append(mime)
    return QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)


def test_dropped_pictures_become_content_then_styles(qtbot, panel, files, tmp_path):
    (tmp_path / "notes.txt").write_text("not a picture")
    panel.dropEvent(_drop_event([files["content"], tmp_path / "notes.txt", files["s1"]]))
    page = panel.repaint
    assert page.content_path == str(files["content"])
    assert [p for p, _ in page.styles] == [str(files["s1"])]
    assert page.content_drop.pixmap() is not None and not page.content_drop.pixmap().isNull()
    with qtbot.waitSignal(page.style_drop.filesChosen) as got:
        page.style_drop.dropEvent(_drop_event([files["s2"], files["s1"]]))
    assert got.args == [[str(files["s2"]), str(files["s1"])]]
    assert [p for p, _ in page.styles] == [str(files["s1"]), str(files["s2"]), str(files["s1"])]
    page.style_list.setCurrentRow(0)
    qtbot.mouseClick(page.remove_button, _left())
    assert [p for p, _ in page.styles] == [str(files["s2"]), str(files["s1"])]


def test_train_a_fast_network_from_the_tab(qtbot, panel, files, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(photos / f"{i}.png")
    page = panel.fast
    qtbot.mouseClick(page.train_button, _left())
    assert page.notice.text == "Choose the style picture the network should learn."
    page.set_style(str(files["s1"]))
    page.data_edit.setText(str(photos))
    page.run_edit.setText(str(tmp_path / "net"))
    page.steps.setValue(3)
    panel.weights.set_file(str(files["vgg"]))
    page.form.set_values(TINY_FAST)
    runs_changed = []
    panel.studio.runs_changed.connect(lambda: runs_changed.append(1))
    with qtbot.waitSignal(panel.jobFinished, timeout=60_000) as done:
        assert panel.start_fast_training()
        assert not page.train_button.isEnabled()
    assert done.args == ["completed"]
    assert list((tmp_path / "net" / "checkpoints").glob("ckpt_*.pt"))
    assert panel.compare.after is not None  # the live grid of stylized fixed pictures
    assert panel.chart.series_for("content").xs[-1] == 3
    assert page.train_button.isEnabled() and runs_changed == [1]


# -- the tab in the studio window, through the plugin door ------------------------------------
def _tab_titles(w) -> list[str]:
    return [w.tabs.tabText(i) for i in range(w.tabs.count())]


def test_the_studio_window_gets_the_tab_from_the_style_plugin(make_window):
    from ganstudio_style.panel import StylePanel
    w = make_window()
    assert "Style transfer" in _tab_titles(w)
    tab = w.panel_host.panels["style-transfer"]
    assert isinstance(tab, StylePanel)
    holder = w.tabs.widget(_tab_titles(w).index("Style transfer"))
    assert holder is tab or holder.isAncestorOf(tab)  # the studio may scroll a tall tab
    assert {tab.modes.tabText(i) for i in range(tab.modes.count())} == {"Repaint", "Fast network"}


def test_blocked_style_plugin_leaves_the_tab_out_and_says_why(make_window, monkeypatch):
    monkeypatch.setenv("GANSTUDIO_BLOCK_PLUGINS", "style")
    w = make_window(PluginManager(load_folder=False))
    assert "Style transfer" not in _tab_titles(w) and "Training" in _tab_titles(w)
    reasons = [m for _name, m in w.panel_host.problems]
    assert any("plugin 'style' is not loaded" in m and "GANSTUDIO_BLOCK_PLUGINS" in m
               for m in reasons), reasons
    assert "Plugin 'style' is not loaded" in w.statusBar().currentMessage()


def test_broken_style_panel_leaves_the_tab_out_and_says_why(make_window, monkeypatch):
    import ganstudio_style.panel as panel_module

    def broken(studio):  # raises before any widget exists (no half-built QWidget is left)
        raise RuntimeError("the panel could not be built")
    monkeypatch.setattr(panel_module, "StylePanel", broken)
    w = make_window(PluginManager(load_folder=False))
    assert "Style transfer" not in _tab_titles(w) and "Runs" in _tab_titles(w)
    assert any("Style transfer" in m and "the panel could not be built" in m
               for _name, m in w.panel_host.problems)
