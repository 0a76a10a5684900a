"""The Explore tab driven through its real widgets, on a short real run."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PySide6.QtCore import Qt

import explore_support as es

WAIT = 60_000


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("explore_gui")
    es.write_training_images(base / "images", 10)
    pm = es.plugin_manager()
    run = es.train_run(base / "run", base / "images", pm, steps=30, checkpoint_every=15)
    return run, pm


@pytest.fixture
def studio(qtbot, trained, tmp_path):
    """A StudioAPI on a bare window, showing a fresh copy of the trained run."""
    import shutil
    from PySide6.QtWidgets import QWidget
    from ganstudio.gui.panel_api import StudioAPI
    from ganstudio.gui.tasks import Tasks
    src, pm = trained
    run = tmp_path / "run"
    shutil.copytree(src, run)
    window = QWidget()
    qtbot.addWidget(window)
    tasks = Tasks(window)
    state = {"run": run, "status": []}
    api = StudioAPI(window, tasks, current_run=lambda: state["run"],
                    runs_root=lambda: tmp_path, plugin_manager=lambda: pm,
                    device=lambda: "cpu",
                    show_status=lambda text, level: state["status"].append((level, text)),
                    open_run=lambda p: None)
    api.state = state
    yield api
    tasks.cancel_all()
    tasks.wait_all()


@pytest.fixture
def panel(qtbot, studio):
    from ganstudio_explore.panel import ExplorePanel
    p = ExplorePanel(studio)
    qtbot.addWidget(p)
    p.resize(1200, 800)
    p.show()
    qtbot.waitUntil(lambda: p.seeds.rendered is not None, timeout=WAIT)
    yield p
    p.shutdown()


def idle(qtbot, panel):
    qtbot.waitUntil(lambda: not panel.busy(), timeout=WAIT)


def test_seed_browser_pages_pins_and_truncation(qtbot, panel):
    browser = panel.seeds
    assert "Explore test GAN, step 30" in panel.message.text()
    assert [t.pin.text() for t in browser.tiles[:3]] == ["seed 0", "seed 1", "seed 2"]
    first_page = [t.image.array.copy() for t in browser.tiles]
    assert not np.array_equal(first_page[0], first_page[1])
    # the same seed gives the same picture again after paging away and back
    qtbot.mouseClick(browser.next_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: browser.rendered and browser.rendered[0][0] == 18, timeout=WAIT)
    assert browser.tiles[0].pin.text() == "seed 18"
    qtbot.mouseClick(browser.prev_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: browser.rendered and browser.rendered[0][0] == 0, timeout=WAIT)
    idle(qtbot, panel)
    assert np.array_equal(browser.tiles[0].image.array, first_page[0])
    # pin two seeds: kept in RUN/explore.json
    browser.tiles[3].pin.click()
    browser.tiles[5].pin.click()
    state = json.loads((panel.run / "explore.json").read_text())
    assert state["pins"] == [{"seed": 3}, {"seed": 5}]
    # psi 0: every tile shows the mean image
    browser.psi.setValue(0)
    qtbot.waitUntil(lambda: browser.rendered and browser.rendered[1] == 0.0, timeout=WAIT)
    idle(qtbot, panel)
    assert browser.psi_label.text() == "ψ 0.00"
    assert np.array_equal(browser.tiles[0].image.array, browser.tiles[7].image.array)


def test_interpolation_strip_and_loop_export_with_cancel(qtbot, panel, tmp_path):
    import imageio.v2 as imageio
    panel.seeds.tiles[2].pin.click()
    panel.seeds.tiles[9].pin.click()
    view = panel.interpolation
    assert view.points.count() == 2
    qtbot.waitUntil(lambda: view.strip[0].array is not None, timeout=WAIT)
    idle(qtbot, panel)
    assert "seed 2 → seed 9 → seed 2" in view.strip_label.text()
    # the strip starts on seed 2's own picture
    assert np.array_equal(view.strip[0].array, panel.seeds.tiles[2].image.array)
    # it follows the Seeds page's truncation, as the exported loop does, and says it
    from ganstudio_explore.seeds import PSI_STEPS
    panel.seeds.psi.setValue(PSI_STEPS // 2)
    qtbot.waitUntil(lambda: "ψ 0.50 (Seeds page)" in view.strip_label.text(), timeout=WAIT)
    qtbot.waitUntil(lambda: panel.seeds.rendered is not None
                    and panel.seeds.rendered[1] == 0.5, timeout=WAIT)
    idle(qtbot, panel)
    assert np.array_equal(view.strip[0].array, panel.seeds.tiles[2].image.array)
    panel.seeds.psi.setValue(PSI_STEPS)
    qtbot.waitUntil(lambda: "ψ 1.00 (Seeds page)" in view.strip_label.text(), timeout=WAIT)
    idle(qtbot, panel)
    # export a GIF loop
    view.format.setCurrentText("GIF")
    view.seconds.setValue(1)
    view.fps.setValue(10)
    view.size.setValue(32)
    view.path.setText(str(tmp_path / "loop.gif"))
    qtbot.mouseClick(view.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: view.export_button.isEnabled(), timeout=WAIT)
    assert "Wrote" in view.result_label.text() and view.progress.value() == 1000
    assert len(imageio.mimread(tmp_path / "loop.gif")) == 10
    # a long loop cancelled: nothing written under its name
    view.seconds.setValue(600)
    view.fps.setValue(60)
    view.path.setText(str(tmp_path / "long.gif"))
    qtbot.mouseClick(view.export_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: view.progress.value() > 0, timeout=WAIT)
    qtbot.mouseClick(view.cancel_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: view.export_button.isEnabled(), timeout=WAIT)
    assert view.result_label.text() == "Cancelled; nothing was written"
    assert sorted(p.name for p in tmp_path.iterdir() if p.suffix == ".gif") == ["loop.gif"]


def test_projection_previews_live_and_pins_the_result(qtbot, panel, tmp_path, make_image):
    view = panel.projection
    photo = make_image(tmp_path / "photo.png", size=(24, 24), seed=4)
    view.picture.setText(str(photo))
    view.steps.setValue(40)
    view.starts.setValue(2)
    seen = []
    view.progress.valueChanged.connect(seen.append)
    qtbot.mouseClick(view.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: view.pin_button.isEnabled(), timeout=WAIT)
    assert len(seen) >= 3 and max(seen) == 1000          # live progress, step by step
    assert view.target_view.array is not None and view.result_view.array is not None
    assert view.error_label.text().startswith("Error 0.")
    qtbot.mouseClick(view.pin_button, Qt.LeftButton)
    pins = json.loads((panel.run / "explore.json").read_text())["pins"]
    assert pins == [{"latent": "explore/photo.npy", "label": "photo"}]
    assert (panel.run / "explore" / "photo.npy").is_file()
    # the projection is now a point of the interpolation
    assert [panel.interpolation.points.item(i).text()
            for i in range(panel.interpolation.points.count())] == ["photo (picture)"]


def test_projection_of_an_unreadable_picture_says_so(qtbot, panel, tmp_path):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really")
    view = panel.projection
    view.picture.setText(str(bad))
    qtbot.mouseClick(view.start_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: view.start_button.isEnabled(), timeout=WAIT)
    assert "cannot read picture" in view.error_label.text() and "broken.jpg" in \
        view.error_label.text()
    assert not view.pin_button.isEnabled()


def test_memorisation_and_best_checkpoint(qtbot, panel):
    checks = panel.checks
    checks.mem_samples.setValue(20)
    qtbot.mouseClick(checks.mem_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: checks.mem_view.array is not None, timeout=WAIT)
    assert "of 20</b> samples closer to a training image" in checks.mem_summary.text()
    assert "memorisation check" in (panel.run / "events.log").read_text()
    checks.kid_samples.setValue(16)
    qtbot.mouseClick(checks.kid_button, Qt.LeftButton)
    qtbot.waitUntil(lambda: checks.table.rowCount() == 2, timeout=WAIT)
    idle(qtbot, panel)
    marks = [checks.table.item(r, 2).text() for r in range(2)]
    assert marks.count("★ best") == 1
    best = json.loads((panel.run / "explore.json").read_text())["best_step"]
    assert checks.table.item(marks.index("★ best"), 0).text() == str(best)
    # explore the best: the header's checkpoint becomes it and the generator reloads
    qtbot.mouseClick(checks.use_best, Qt.LeftButton)
    assert panel.checkpoint.currentData() == "best"
    qtbot.waitUntil(lambda: f"step {best}:" in panel.message.text(), timeout=WAIT)
    # keep a checkpoint through rotation
    checks.table.selectRow(0)
    qtbot.mouseClick(checks.keep_button, Qt.LeftButton)
    assert json.loads((panel.run / "explore.json").read_text())["pinned_checkpoints"] == [
        int(checks.table.item(0, 0).text())]
    idle(qtbot, panel)


def test_run_without_latent_space_and_no_run(qtbot, studio, tmp_path, image_folder):
    from ganstudio_explore.panel import ExplorePanel
    nolat = es.train_run(tmp_path / "nolat", image_folder, es.plugin_manager(),
                         model="explgan-nolatent", steps=2)
    studio.state["run"] = None
    p = ExplorePanel(studio)
    qtbot.addWidget(p)
    assert "No run open" in p.run_label.text()
    # fits beside the settings dock in a 1366 px wide window (every view, not only the shown one)
    assert p.minimumSizeHint().width() <= 900
    assert not p.seeds.next_button.isEnabled() and not p.checks.mem_button.isEnabled()
    studio.run_changed.emit(nolat)
    qtbot.waitUntil(lambda: "declares no latent space" in p.message.text(), timeout=WAIT)
    assert p.explorer is None and not p.projection.start_button.isEnabled()
    p.shutdown()


def test_the_studio_window_offers_the_explore_tab(make_window):
    w = make_window()
    titles = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert "Explore" in titles
    tab = w.tabs.widget(titles.index("Explore"))
    from ganstudio_explore.panel import ExplorePanel
    panel = tab if isinstance(tab, ExplorePanel) else tab.findChild(ExplorePanel)
    assert panel is not None and "No run open" in panel.run_label.text()


def test_a_run_without_checkpoint_loads_once_one_is_written(qtbot, studio, trained):
    import shutil
    from ganstudio_explore.panel import ExplorePanel
    run = studio.state["run"]
    ckpts = run.parent / "held_back"
    shutil.move(run / "checkpoints", ckpts)
    p = ExplorePanel(studio)
    qtbot.addWidget(p)
    p.show()
    qtbot.waitUntil(lambda: "has no checkpoint yet" in p.message.text(), timeout=WAIT)
    assert p.explorer is None and p.checkpoint.count() == 1      # only "newest"
    shutil.move(ckpts, run / "checkpoints")          # the training wrote its first ones
    studio.runs_changed.emit()
    assert p.checkpoint.count() == 3                 # newest, step 30, step 15
    p.hide()
    p.show()                                         # coming back to the tab loads it
    qtbot.waitUntil(lambda: p.explorer is not None, timeout=WAIT)
    assert "step 30" in p.message.text()
    idle(qtbot, p)
    p.shutdown()
