"""What the studio shows of runs: only GANs in the Model list, resuming on the run's own
data, opening a run replaces the previous one (markers included), renaming, the Runs
table following training, and error messages that go once superseded."""
from __future__ import annotations

import json
import shutil

import pytest

import ganstudio
from ganstudio.core.runs import RunFolder, warning_tag
from tests.gui.conftest import make_images, train_tiny_run


# -- kinds -------------------------------------------------------------------------------------
class OtherKindsPlugin:
    """A feed-forward network trained on a folder (like fast style) and an image-to-image
    job: kinds the Model list must not offer."""
    GANSTUDIO_PLUGIN_API = 1

    @ganstudio.hookimpl
    def ganstudio_register_models(self):
        from ganstudio.core.config import Field, common_gan_fields
        from ganstudio.core.model import FEEDFORWARD, IMAGE_TO_IMAGE, ModelSpec
        schema = [Field("size", "int", 16, "Size.", min=8)]
        folder = common_gan_fields(resolution=16, resolutions=(16,), batch_size=4)
        return [ModelSpec(id="quick-net", name="Quick network", kind=FEEDFORWARD,
                          schema=folder, factory=object, help="A feed-forward network."),
                ModelSpec(id="one-image", name="One image job", kind=IMAGE_TO_IMAGE,
                          schema=schema, factory=object, help="An image-to-image job.")]


def test_model_list_holds_only_gans_trained_on_a_folder(qtbot, make_window):
    from ganstudio.plugins import PluginManager
    from tests.gui.conftest import _fake_plugin
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[("tinyplugin", _fake_plugin()), ("others", OtherKindsPlugin())])
    assert {m.id for m in pm.models()} == {"tiny", "quick-net", "one-image"}
    w = make_window(pm=pm, model="quick-net", set=[])
    assert [s.id for s in w.model_panel.specs] == ["tiny"]
    assert w.model_panel.current_spec().id == "tiny"
    assert w.info_bar.level == "error" and "'quick-net' is not a GAN" in \
        w.info_bar.label.text()


# -- resuming on the run's own data (#13 item 2) -----------------------------------------------
def _resume_and_finish(qtbot, w, run_dir, steps=16):
    w.model_panel.steps.setValue(steps)
    with qtbot.waitSignal(w.trainer.done, timeout=60_000):
        assert w.resume_run(run_dir)
    assert w.events_seen.get("finished") == 1, w.last_error


def test_resume_from_the_runs_tab_uses_the_runs_own_folder(qtbot, tiny_window, finished_run,
                                                            tmp_path):
    run_dir, _engine = finished_run
    own = RunFolder(run_dir).read_info()["dataset"]["folder"]
    photos = make_images(tmp_path / "photos", n=7, size=16, seed=5)
    w = tiny_window(data=str(photos), runs_root=str(run_dir.parent))
    assert w.dataset_panel.folder == str(photos)
    _resume_and_finish(qtbot, w, run_dir)
    info = RunFolder(run_dir).read_info()
    assert info["dataset"]["folder"] == own and info["dataset"]["images"] == 20
    assert info["total_steps"] == 16
    assert w.dataset_panel.folder == own  # the panel shows what the run trains on
    assert str(photos) not in (run_dir / "events.log").read_text()


def test_resume_on_a_folder_that_is_gone_says_so_and_offers_another(
        qtbot, tiny_window, finished_run, tmp_path, image_dir):
    run_dir, _engine = finished_run
    before = (run_dir / "run.json").read_text()
    moved = tmp_path / "moved-images"
    shutil.move(str(image_dir), moved)
    w = tiny_window(data=str(moved), runs_root=str(run_dir.parent))
    assert not w.resume_run(run_dir)
    assert w.state == "idle" and w.session is None
    assert w.info_bar.kind == "resume-data" and w.info_bar.level == "error"
    text = w.info_bar.label.text()
    assert f"the folder it trained on, {image_dir}, is gone" in text
    assert (run_dir / "run.json").read_text() == before  # the record is untouched

    w.trainer.ask_folder = lambda: ""  # the user cancels the folder dialog
    w.info_bar.buttons["Choose a folder…"].click()
    assert w.state == "idle" and (run_dir / "run.json").read_text() == before

    assert not w.resume_run(run_dir)
    w.model_panel.steps.setValue(16)
    w.trainer.ask_folder = lambda: str(moved)  # ... then picks the moved folder
    with qtbot.waitSignal(w.trainer.done, timeout=60_000):
        w.info_bar.buttons["Choose a folder…"].click()
    info = RunFolder(run_dir).read_info()
    assert info["dataset"]["folder"] == str(moved)  # recorded because the user chose it
    assert w.events_seen.get("finished") == 1


def test_resume_on_a_folder_that_changed_says_so(qtbot, tiny_window, finished_run, image_dir):
    run_dir, _engine = finished_run
    make_images(image_dir / "more", n=3, size=16, seed=9)
    w = tiny_window(runs_root=str(run_dir.parent))
    assert not w.resume_run(run_dir)
    assert "has changed: it held 20 image files then and holds 23 now" in \
        w.info_bar.label.text()


# -- opening runs (#13 item 9) -----------------------------------------------------------------
def test_engine_warnings_come_back_from_events_log(finished_run):
    run_dir, engine = finished_run
    engine.warn("step 9: samples look alike (mode collapse)", "collapse")
    RunFolder(run_dir).log("a line that merely mentions [collapse at step] text", "WARNING")
    assert RunFolder(run_dir).read_warnings()[-1] == \
        (12, "collapse", "step 9: samples look alike (mode collapse)")
    assert warning_tag("imbalance", 7) == "[imbalance at step 7]"


def test_opening_a_run_shows_that_run_and_nothing_of_the_previous(
        qtbot, tiny_window, tiny_pm, finished_run, tmp_path):
    run_a, _engine = finished_run
    RunFolder(run_a).log("step 6: samples look alike " + warning_tag("collapse", 6), "WARNING")
    RunFolder(run_a).log("step 10: the discriminator wins " + warning_tag("imbalance", 10),
                         "WARNING")
    other = make_images(tmp_path / "other-images", n=9, size=16, seed=3)
    run_b = tmp_path / "runs" / "tiny-b"
    train_tiny_run(tiny_pm, run_b, other, steps=8)
    info_b = RunFolder(run_b).read_info()
    info_b["config"]["lr"] = 0.05
    RunFolder(run_b).write_info(info_b)

    w = tiny_window(runs_root=str(run_a.parent))
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_a)
    assert [m[:2] for m in w.chart.markers] == [(6, "collapse"), (10, "imbalance")]
    assert w.windowTitle() == "GAN Studio — tiny-done"
    assert w.status_labels["step"].text() == "step 12 / 12"
    elapsed_a = w.status_labels["elapsed"].text()
    assert elapsed_a.startswith("elapsed ")

    w.info_bar.show_message("Training completed at step 12.", "info", kind="finished")
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_b)
    assert not w.info_bar.isVisible()  # the previous run's banner is gone
    assert w.run_dir == run_b and w.windowTitle() == "GAN Studio — tiny-b"
    assert w.chart.markers == []
    assert w.status_labels["step"].text() == "step 8 / 8"
    rows, _ = RunFolder(run_b).read_metrics(0)
    assert list(w.chart.series["loss_g"].xs) == [r["step"] for r in rows]
    assert w.dataset_panel.folder == str(other)
    qtbot.waitUntil(lambda: "<b>9</b> images" in w.dataset_panel.info.text(), timeout=10_000)
    assert w.dataset_panel.thumbs.count() == 9
    assert w.model_panel.config()["lr"] == 0.05
    assert w.model_panel.steps.value() == 8
    assert w.samples.frame_steps() == [0, 4, 8]


def test_opening_a_run_whose_data_is_gone_says_so_in_the_dataset_panel(
        qtbot, tiny_window, finished_run, image_dir):
    run_dir, _engine = finished_run
    shutil.rmtree(image_dir)
    w = tiny_window(data=None, runs_root=str(run_dir.parent))
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_dir)
    assert f"This run trained on {image_dir}, which is gone." in w.dataset_panel.info.text()


def test_runs_can_be_renamed(qtbot, tiny_window, finished_run):
    run_dir, _engine = finished_run
    w = tiny_window(runs_root=str(run_dir.parent))
    with qtbot.waitSignal(w.browser.refreshed, timeout=10_000):
        w.tabs.setCurrentWidget(w.browser)
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_dir)
    assert not w.browser.rename(str(run_dir), "x" * 500)  # refused, said, nothing written
    assert w.info_bar.kind == "rename" and "at most 120 characters" in w.info_bar.label.text()
    assert "display_name" not in RunFolder(run_dir).read_info()
    assert w.browser.rename(str(run_dir), "  Cats,   first try ")
    assert RunFolder(run_dir).read_info()["display_name"] == "Cats, first try"
    assert not w.info_bar.isVisible()  # the error it superseded is gone
    assert w.windowTitle() == "GAN Studio — Cats, first try (tiny-done)"
    w.tabs.setCurrentWidget(w.browser)
    with qtbot.waitSignal(w.browser.refreshed, timeout=10_000):
        w.browser.refresh()
    assert w.browser.tree.topLevelItem(0).text(0) == "Cats, first try"
    assert not list(run_dir.glob("*.tmp"))  # written atomically
    assert w.browser.rename(str(run_dir), "")  # back to the folder's name
    assert "display_name" not in json.loads((run_dir / "run.json").read_text())


def test_export_error_clears_when_a_later_export_succeeds(qtbot, tiny_window, finished_run,
                                                          tmp_path):
    run_dir, _engine = finished_run
    w = tiny_window()
    with qtbot.waitSignal(w.runOpened, timeout=10_000):
        w.open_run(run_dir)
    blocker = tmp_path / "a-file"
    blocker.write_text("not a folder")
    with qtbot.waitSignal(w.exporter.failed, timeout=10_000):
        w.export("timelapse", run_dir, blocker / "t.gif")
    assert w.info_bar.isVisible() and w.info_bar.label.text().startswith("Export failed")
    with qtbot.waitSignal(w.exportDone, timeout=20_000):
        w.export("timelapse", run_dir, tmp_path / "t.gif")
    assert not w.info_bar.isVisible()
    assert w.statusBar().currentMessage().startswith("Exported to")


def test_the_runs_table_follows_the_step_count_while_training(qtbot, tiny_window, tmp_path):
    w = tiny_window(runs_root=str(tmp_path / "runs"))
    assert w.start_training()
    qtbot.waitUntil(lambda: w.events_seen.get("samples", 0) >= 1, timeout=30_000)
    with qtbot.waitSignal(w.browser.refreshed, timeout=10_000):
        w.tabs.setCurrentWidget(w.browser)

    def steps_shown() -> int:
        return int(w.browser.tree.topLevelItem(0).text(4).split("/")[0].replace(",", ""))

    first = steps_shown()
    with qtbot.waitSignal(w.browser.refreshed, timeout=20_000):
        pass  # refreshed again without a click, as grids are saved
    qtbot.waitUntil(lambda: steps_shown() > first, timeout=20_000)
    with qtbot.waitSignal(w.trainer.done, timeout=30_000):
        w.stop_training()
