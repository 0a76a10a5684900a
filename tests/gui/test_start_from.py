"""Fine-tuning from the studio: "Start from this run…" in the Runs tab, the Model dock's
line, Start making a new run that starts from the source's network weights, and the
refusals (a model that does not offer it, a run with no checkpoint, settings that change
the networks' shapes)."""
from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
from PIL import Image
from PySide6.QtCore import Qt

from ganstudio.core.runs import RunFolder
from tests.gui.conftest import SpecPlugin, make_images, train_tiny_run


def files_of(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def grid(run: Path, step: int) -> np.ndarray:
    return np.asarray(Image.open(run / "samples" / f"step_{step:08d}.png"))


def show_runs(qtbot, w):
    with qtbot.waitSignal(w.browser.refreshed, timeout=10_000):
        w.tabs.setCurrentWidget(w.browser)


def new_runs(root: Path, *known: Path) -> list[Path]:
    return [p for p in root.iterdir() if p not in known]


def test_a_new_run_starts_from_the_chosen_runs_weights(qtbot, tiny_window, finished_run,
                                                       tmp_path):
    source, _engine = finished_run
    before = files_of(source)
    w = tiny_window(runs_root=str(source.parent))
    w.model_panel.form.set_values({"lr": 0.05})    # the form holds other settings now
    show_runs(qtbot, w)
    assert w.browser.select(str(source))
    button = w.browser.buttons["start_from"]
    assert button.isEnabled() and button.text() == "Start from this run…"
    qtbot.mouseClick(button, Qt.LeftButton)

    # the Model dock says what the next run starts from; the form holds the run's settings
    line = w.start_from.line
    assert line.isVisible()
    assert ("Next run starts from tiny-done (step 12) — its network weights, fresh "
            "optimizers") in line.text()
    assert w.model_panel.current_spec().id == "tiny"
    recorded = RunFolder(source).read_info()["config"]
    assert w.model_panel.config() == recorded and recorded["lr"] == 0.01
    assert w.tabs.currentIndex() == 0

    # a small second folder of images, a short run
    small = make_images(tmp_path / "small", n=8, seed=3)
    w.dataset_panel.set_folder(str(small), emit=False)
    w.model_panel.steps.setValue(6)
    said = []
    w.statusBar().messageChanged.connect(said.append)
    with qtbot.waitSignal(w.trainer.done, timeout=60_000):
        assert w.start_training()
    assert w.events_seen.get("started") == 1 and "failed" not in w.events_seen

    [new] = new_runs(source.parent, source)
    assert w.run_dir == new
    info = json.loads((new / "run.json").read_text())
    assert info["init_from"] == {"run": str(source), "checkpoint": "ckpt_00000012.pt",
                                 "step": 12, "model_id": "tiny"}
    assert info["dataset"]["folder"] == str(small) and info["dataset"]["images"] == 8
    # its first grid is the source's last one: the same generator and the same noise
    assert np.array_equal(grid(new, 0), grid(source, 12))
    assert not np.array_equal(grid(new, 6), grid(source, 12))   # and it trained on
    assert files_of(source) == before                           # the source only read
    assert w.start_from.pending is None and not line.isVisible()   # used up
    assert any(m.startswith("Started tiny in ") and m.endswith(" from tiny-done (step 12)")
               for m in said)


def _plain_pm(tiny_pm, freeze: bool = False):
    """The tiny model, and a copy that does not declare fine-tuning (``freeze``: the tiny
    model has a FreezeD setting too; the test model ignores it)."""
    from ganstudio.core.config import Field
    from ganstudio.plugins import PluginManager


    tiny = dataclasses.replace(tiny_pm.get_model("tiny"), plugin="")
    if freeze:
        tiny = dataclasses.replace(tiny, schema=list(tiny.schema) + [
            Field("freeze_d", "int", 0, "Frozen D layers.", min=0, max=3)])
    plain = dataclasses.replace(tiny, id="tiny-plain", name="Plain tiny GAN",
                                capabilities=frozenset())
    return PluginManager(load_entry_points=False, load_folder=False,
                         extra=[("tinyplugin", SpecPlugin(tiny)), ("plainplugin", SpecPlugin(plain))])


def test_only_runs_of_a_model_that_offers_it_with_a_checkpoint_can_be_started_from(
        qtbot, make_window, tiny_pm, image_dir, tmp_path):
    from ganstudio.core.engine import Engine, EngineSettings
    pm = _plain_pm(tiny_pm)
    runs = tmp_path / "runs"
    plain = runs / "plain-run"
    engine = Engine(pm.get_model("tiny-plain"), plain, data_folder=image_dir,
                    settings=EngineSettings(total_steps=4, device="cpu", checkpoint_every_s=0))
    engine.prepare()
    engine.run_loop()
    no_ckpt = runs / "no-checkpoint"
    train_tiny_run(pm, no_ckpt, image_dir, steps=4)
    shutil.rmtree(no_ckpt / "checkpoints")
    (no_ckpt / "checkpoints").mkdir()
    good = runs / "good"
    train_tiny_run(pm, good, image_dir, steps=4)

    w = make_window(pm=pm, model="tiny", set=[], runs_root=str(runs), data=str(image_dir))
    show_runs(qtbot, w)
    button = w.browser.buttons["start_from"]
    for run, why in ((plain, "Plain tiny GAN cannot start a new run from another run's "
                             "weights (it does not offer fine-tuning)."),
                     (no_ckpt, "This run has no checkpoint yet to start from.")):
        assert w.browser.select(str(run))
        assert not button.isEnabled() and button.toolTip() == why
        assert w.browser.buttons["open"].isEnabled()      # the run itself is fine
        # the context menu says the same
        rect = w.browser.tree.visualItemRect(w.browser.tree.currentItem())
        w.browser._context_menu(rect.center())
        action = w.browser.context_menu.findChild(type(w.browser.context_menu.actions()[0]),
                                                  "runMenu_start_from")
        assert action is not None and not action.isEnabled() and action.toolTip() == why
        w.browser.context_menu.close()
        # the Training menu with that run selected refuses in words, changing nothing
        assert not w.start_from.choose_selected()
        assert w.info_bar.kind == "start-from" and \
            w.info_bar.label.text() == f"Cannot start from {run.name}. {why}"
        assert w.start_from.pending is None and not w.start_from.line.isVisible()
    assert w.browser.select(str(good))
    assert button.isEnabled()
    assert w.actions_by_key["start_from"].isEnabled()
    w.actions_by_key["start_from"].trigger()             # Training > Start from run…
    assert w.start_from.pending is not None and w.start_from.pending.run_dir == good
    assert not w.info_bar.isVisible()
    # choosing another model cancels it, as does the line's ×
    w.model_panel.select_model("tiny-plain")
    assert w.start_from.pending is None and not w.start_from.line.isVisible()
    w.model_panel.select_model("tiny")
    assert w.start_from.choose(good)
    qtbot.mouseClick(w.start_from.line.clear_button, Qt.LeftButton)
    assert w.start_from.pending is None and w.start_from.reference() is None


def test_settings_that_change_the_networks_are_refused_in_words(qtbot, tiny_window,
                                                                 finished_run):
    source, _engine = finished_run
    before = files_of(source)
    w = tiny_window(runs_root=str(source.parent))
    assert w.start_from.choose(source)
    w.model_panel.form.set_values({"resolution": 32})
    w.model_panel.steps.setValue(3)
    with qtbot.waitSignal(w.trainer.done, timeout=60_000):
        assert w.start_training()
    text = w.info_bar.label.text()
    assert w.info_bar.isVisible() and w.info_bar.kind == "start-from"
    assert text == ("Cannot start from tiny-done: its networks do not fit these settings "
                    "(changed from that run: Resolution 16 → 32). Set them back in the "
                    "Model panel, or clear “starts from” (×) to train from scratch.")
    assert "Traceback" not in text and "\n" not in text
    assert w.events_seen.get("refused") == 1 and "started" not in w.events_seen
    # nothing lost: no empty run folder left, the source untouched, the choice kept
    assert new_runs(source.parent, source) == [] and files_of(source) == before
    assert w.start_from.pending is not None and w.start_from.line.isVisible()
    assert w.run_dir is None and w.windowTitle() == "GAN Studio"
    # the offered fix puts the run's settings back; then it starts
    qtbot.mouseClick(w.info_bar.buttons["Use its settings"], Qt.LeftButton)
    assert w.model_panel.config()["resolution"] == 16
    assert w.status_labels["step"].text() == ""        # no "preparing…" left behind
    with qtbot.waitSignal(w.trainer.done, timeout=60_000):
        assert w.start_training()
    [new] = new_runs(source.parent, source)
    assert json.loads((new / "run.json").read_text())["init_from"]["step"] == 12
    assert not w.info_bar.isVisible() or w.info_bar.kind != "start-from"


def test_the_line_offers_freezing_d_where_the_model_has_that_setting(
        qtbot, make_window, tiny_pm, image_dir, tmp_path):
    pm = _plain_pm(tiny_pm, freeze=True)
    source = tmp_path / "runs" / "src"
    train_tiny_run(pm, source, image_dir, steps=4)
    w = make_window(pm=pm, model="tiny-plain", set=[], runs_root=str(source.parent),
                    data=str(image_dir))
    assert w.start_from.choose(source)
    assert w.model_panel.current_spec().id == "tiny"
    line = w.start_from.line
    assert "Freeze D's first layers (FreezeD) to keep more of it on a small folder." \
        in line.text()
    w.activateWindow()
    line.label.linkActivated.emit("freeze_d")
    qtbot.waitUntil(w.model_panel.form.editors["freeze_d"].hasFocus, timeout=2000)


def test_a_started_over_run_starts_again_from_the_run_it_records(qtbot, tiny_window,
                                                                 finished_run):
    """Out of memory at its first step (no checkpoint yet): the offered smaller batch
    starts the new folder over from step 0, again from the source's weights."""
    source, _engine = finished_run
    w = tiny_window(runs_root=str(source.parent))
    assert w.start_from.choose(source)
    w.model_panel.form.set_values({"max_batch": 4})     # the tiny model's simulated OOM
    assert w.start_training()
    qtbot.waitUntil(lambda: w.state == "idle" and w.events_seen.get("failed"), timeout=30_000)
    new = w.run_dir
    assert w.start_from.pending is None                 # it had started
    qtbot.mouseClick(w.info_bar.buttons["Apply batch_size = 4 and resume"], Qt.LeftButton)
    qtbot.waitUntil(lambda: w.events_seen.get("metrics", 0) >= 2, timeout=30_000)
    w.stop_training()
    qtbot.waitUntil(lambda: w.state == "idle", timeout=20_000)
    info = json.loads((new / "run.json").read_text())
    assert info["config"]["batch_size"] == 4
    assert info["init_from"]["run"] == str(source) and info["init_from"]["step"] == 12
    assert np.array_equal(grid(new, 0), grid(source, 12))
