"""The studio's style transfer tab, offscreen: pick pictures, run, watch, stop, save, apply."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pytestqt")

from ganstudio.core.engine import Engine, EngineSettings  # noqa: E402
from ganstudio.gui.style_panel import StylePanel  # noqa: E402
from ganstudio.gui.tasks import running_threads  # noqa: E402
from ganstudio.plugins import PluginManager  # noqa: E402
from ganstudio_style.vgg import random_vgg_state  # noqa: E402


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
def panel(qtbot):
    p = StylePanel(PluginManager(load_folder=False))
    qtbot.addWidget(p)
    p.resize(900, 600)
    yield p
    assert p.shutdown(30_000)
    assert not running_threads(), "a studio thread was left running"


def configure(panel, files, **values) -> None:
    panel.set_content(str(files["content"]))
    panel.add_style(str(files["s1"]))
    panel.add_style(str(files["s2"]))
    panel.set_style_weight(1, 0.25)
    panel.weights_edit.setText(str(files["vgg"]))
    settings = dict(size=16, iterations=6, style_layer_weights="")
    settings.update(values)
    panel.form.set_values(settings)
    panel.form.set_values({"style_layers": "relu1_1,relu2_1", "content_layer": "relu3_1"})
    panel.preview_every.setValue(2)


def test_run_shows_losses_preview_and_result(qtbot, panel, files, tmp_path):
    configure(panel, files)
    assert panel.refresh_weights_status() and "vgg.pth" in panel.weights_status.text()
    assert panel.repaint_overrides()["style_blend"] == "1,0.25"
    assert panel.style_list.item(1).text().endswith("×0.25")
    previews = []
    panel.compare.set_after = lambda img, f=panel.compare.set_after: (previews.append(img), f(img))
    with qtbot.waitSignal(panel.jobFinished, timeout=60_000) as done:
        assert panel.start()
        assert not panel.start_button.isEnabled() and panel.stop_button.isEnabled()
    assert done.args == ["completed"]
    assert panel.result is not None and panel.result.shape == (12, 16, 3)
    assert len([p for p in previews if p is not None]) >= 3  # step 0, 2, 4, 6 and the result
    xs, ys = panel.chart.series_for("style").xs, panel.chart.series_for("style").ys
    assert len(xs) >= 1 and xs[-1] == 6 and np.isfinite(ys).all()
    assert "scale_px" not in panel.chart.series  # status values stay off the loss chart
    assert panel.start_button.isEnabled() and panel.save_button.isEnabled()
    out = panel.save_result(tmp_path / "saved.png")
    assert np.array_equal(np.asarray(Image.open(out)), panel.result)
    panel.split_slider.setValue(40)
    assert panel.compare.split == pytest.approx(0.4)
    assert panel.compare.before is not None and panel.compare.after is not None
    temp = panel.run_dir
    assert (temp / "samples").is_dir()
    assert panel.shutdown() and not temp.exists()  # the temporary run folder is cleaned up


def test_stop_early_keeps_the_best_image(qtbot, panel, files):
    configure(panel, files, iterations=100_000)
    with qtbot.waitSignal(panel.chart.redrawn, timeout=60_000):
        assert panel.start()
    with qtbot.waitSignal(panel.jobFinished, timeout=60_000) as done:
        panel.stop()
    assert done.args == ["stopped"]
    assert panel.result is not None and panel.result.shape == (12, 16, 3)
    assert "best image so far" in panel.status.text()


def test_missing_inputs_and_weights_are_explained(qtbot, panel, files, monkeypatch):
    messages = []
    panel.message.connect(messages.append)
    assert not panel.start()
    assert messages[-1] == "choose a content picture first"
    panel.set_content(str(files["content"]))
    assert not panel.start() and messages[-1] == "add at least one style picture"
    panel.add_style(str(files["s1"]))
    assert not panel.refresh_weights_status()
    assert not panel.start() and "vgg19-dcbb9e9d.pth" in messages[-1]
    assert panel.download_button.isEnabled()

    # Offline: the real download code fails and the panel says which file and where.
    import ganstudio_style.vgg as vgg
    real = vgg.download_vgg_weights
    monkeypatch.setattr(vgg, "download_vgg_weights", lambda **kw: real(
        url="http://127.0.0.1:9/vgg19.pth", timeout=5, **kw))
    with qtbot.waitSignal(panel.message, timeout=30_000,
                          check_params_cb=lambda m: m.startswith("could not download")):
        panel.start_download()
        assert not panel.download_bar.isHidden()  # the progress bar is shown meanwhile
    assert "vgg19-dcbb9e9d.pth" in messages[-1] and str(vgg.hub_weights_path().parent) in messages[-1]
    assert panel.download_button.isEnabled() and panel.download_bar.isHidden()

    panel.weights_edit.setText(str(files["dir"] / "absent.pth"))
    assert not panel.refresh_weights_status()
    assert "not found" in panel.weights_status.text()


def test_apply_a_trained_network_from_the_panel(qtbot, panel, files, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(3):
        Image.fromarray(np.full((20, 28, 3), 40 * i, np.uint8)).save(photos / f"{i}.png")
    pm = PluginManager(load_folder=False)
    Engine(pm.get_model("fast-style"), tmp_path / "net", data_folder=photos,
           overrides=dict(style=str(files["s1"]), vgg_weights=str(files["vgg"]), resolution=32,
                          width=4, res_blocks=1, batch_size=2, content_layer="relu2_2",
                          style_layers="relu1_2,relu2_2"),
           settings=EngineSettings(total_steps=2, device="cpu", checkpoint_every_s=0)).run_loop()
    panel.apply_net.setText(str(tmp_path / "net"))
    panel.apply_inputs.setText(str(photos))
    panel.apply_out.setText(str(tmp_path / "out"))
    with qtbot.waitSignal(panel.applyFinished, timeout=60_000) as done:
        assert panel.apply_network()
    assert done.args == [3]
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["0.png", "1.png", "2.png"]
    assert panel.result is not None and panel.result.shape == (20, 28, 3)
    assert panel.compare.before is not None and panel.compare.before.width() == 28
    panel.apply_net.setText(str(tmp_path))
    with qtbot.waitSignal(panel.applyFinished, timeout=30_000) as done:
        panel.apply_network()
    assert done.args == [-1] and "run.json" in panel.status.text()


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
    assert panel.content_path == str(files["content"])
    assert [p for p, _ in panel.styles] == [str(files["s1"])]
    assert panel.content_drop.pixmap() is not None and not panel.content_drop.pixmap().isNull()
    with qtbot.waitSignal(panel.style_drop.filesChosen) as got:
        panel.style_drop.dropEvent(_drop_event([files["s2"], files["s1"]]))
    assert got.args == [[str(files["s2"]), str(files["s1"])]]
    assert [p for p, _ in panel.styles] == [str(files["s1"]), str(files["s2"]), str(files["s1"])]
    panel.style_list.setCurrentRow(0)
    panel._remove_style()
    assert [p for p, _ in panel.styles] == [str(files["s2"]), str(files["s1"])]


def test_train_a_fast_network_from_the_panel(qtbot, panel, files, tmp_path):
    photos = tmp_path / "photos"
    photos.mkdir()
    rng = np.random.default_rng(1)
    for i in range(4):
        Image.fromarray((rng.random((24, 24, 3)) * 255).astype(np.uint8)).save(photos / f"{i}.png")
    messages = []
    panel.message.connect(messages.append)
    assert not panel.start_fast_training()
    assert messages[-1] == "choose the style picture the network should learn"
    panel.set_fast_style(str(files["s1"]))
    panel.fast_data.setText(str(photos))
    panel.fast_run.setText(str(tmp_path / "net"))
    panel.fast_steps.setValue(3)
    panel.weights_edit.setText(str(files["vgg"]))
    panel.fast_form.set_values(dict(resolution=32, width=4, res_blocks=1, batch_size=2,
                                    content_layer="relu2_2", style_layers="relu1_2,relu2_2"))
    with qtbot.waitSignal(panel.jobFinished, timeout=60_000) as done:
        assert panel.start_fast_training()
        assert not panel.fast_train_button.isEnabled()
    assert done.args == ["completed"]
    assert list((tmp_path / "net" / "checkpoints").glob("ckpt_*.pt"))
    assert panel.compare.after is not None  # the live grid of stylized fixed pictures
    assert panel.chart.series_for("content").xs[-1] == 3
    assert panel.fast_train_button.isEnabled()


def test_the_studio_window_has_the_style_tab(make_window):
    w = make_window()
    titles = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert "Style transfer" in titles
    tab = w.tabs.widget(titles.index("Style transfer"))
    assert isinstance(w.style_panel, StylePanel)
    assert tab is w.style_panel or tab.isAncestorOf(w.style_panel)  # maybe in a scroll area
    tab = w.style_panel
    assert {tab.modes.tabText(i) for i in range(tab.modes.count())} == {"Repaint", "Fast network"}
