"""The dataset panel (scan report, skipped files, drag and drop) and remembered settings."""
from __future__ import annotations

from PySide6.QtCore import QMimeData, QPointF, Qt, QUrl
from PySide6.QtGui import QDropEvent


def test_dataset_panel_reports_images_and_skipped_files(qtbot, tiny_window, image_dir):
    (image_dir / "broken.png").write_bytes(b"not an image at all")
    w = tiny_window()  # plugins loaded with a folder set: the scan starts by itself
    panel = w.dataset_panel
    qtbot.waitUntil(lambda: panel.skipped.count() == 1, timeout=20_000)
    assert "<b>20</b> images" in panel.info.text() and "16×16" in panel.info.text()
    assert "in colour; <b>1</b> file skipped (listed below)" in panel.info.text()
    tip = panel.skipped.item(0).toolTip()  # the full path and the whole reason
    assert str(image_dir / "broken.png") in tip and "not an image" in tip
    assert panel.skipped.wordWrap()
    assert panel.thumbs.count() == 20
    item = panel.skipped.item(0).text()
    assert item.startswith("broken.png: ") and "not an image" in item
    assert panel.skipped.isVisibleTo(panel)


def test_dropping_a_folder_chooses_it(qtbot, tmp_path):
    from ganstudio.gui.dataset_panel import DatasetPanel
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    folder = tmp_path / "drop"
    folder.mkdir()
    mime = QMimeData()
    mime.setUrls([QUrl.fromLocalFile(str(folder))])
    event = QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton, Qt.NoModifier)
    with qtbot.waitSignal(panel.folderChosen) as blocker:
        panel.dropEvent(event)
    assert blocker.args == [str(folder)] and panel.path_edit.text() == str(folder)
    mime.setUrls([QUrl("https://example.com/cats")])
    assert panel._dropped_folder(QDropEvent(QPointF(5, 5), Qt.CopyAction, mime, Qt.LeftButton,
                                            Qt.NoModifier)) is None


def test_settings_are_remembered(qtbot, make_window, tiny_pm, image_dir, settings):
    from PySide6.QtWidgets import QApplication
    from ganstudio.gui.theme import current_theme
    w = make_window(pm=tiny_pm, model="tiny", set=[], data=str(image_dir))
    w.resize(760, 560)  # inside the offscreen screen (800 x 600)
    w.set_theme("light")
    w.close()
    assert settings.value("theme") == "light"
    w2 = make_window(pm=tiny_pm, model=None, set=[], runs_root=None)
    assert w2.size().width() == 760  # (the height is held to the window's minimum)
    assert w2.dataset_panel.folder == str(image_dir)
    assert w2.theme_actions["light"].isChecked()
    assert w2.model_panel.current_spec().id == "tiny"
    assert w2.browser.root == w.browser.root
    w2.set_theme("dark")
    assert current_theme() == "dark"
    assert QApplication.instance().property("ganstudio_theme") == "dark"


def test_style_tab_is_optional(qtbot, make_window, tiny_pm):
    """The style tab comes only from the style plugin: without it, the studio has its own
    two tabs and trains as before."""
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    tabs = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert tabs == ["Training", "Runs"] and "style-transfer" not in w.panel_host.panels
    assert w.buttons["start"].isEnabled()


def test_demo_images_use_light_settings(qtbot, make_window, plugin_manager):
    """The demo is a first look on a CPU: 32 px, small batch and narrow networks, applied to
    the form (the model's own defaults stay); also when clicked before the models load."""
    from ganstudio.gui.main_window import DEMO_SETTINGS, DEMO_STEPS, MainWindow, StudioOptions
    from ganstudio.gui.resources import demo_dataset_dir
    w = make_window(set=[])
    spec = w.model_panel.current_spec()
    assert spec.id == "dcgan" and spec.field("resolution").default == 64
    w.use_demo_dataset()
    values = w.model_panel.config()
    assert {k: values[k] for k in DEMO_SETTINGS} == DEMO_SETTINGS
    assert w.model_panel.steps.value() == DEMO_STEPS
    assert w.dataset_panel.folder == str(demo_dataset_dir().absolute())
    assert spec.field("resolution").default == 64 and spec.field("batch_size").default == 64
    w.model_panel.reset_defaults()
    assert w.model_panel.config()["resolution"] == 64

    early = MainWindow(StudioOptions(model="dcgan", device="cpu", precision="fp32"),
                       w.settings)
    qtbot.addWidget(early)
    early.use_demo_dataset()  # models not loaded yet: remembered
    assert early.model_panel.form is None
    early.set_plugin_manager(plugin_manager)
    assert early.model_panel.config()["batch_size"] == DEMO_SETTINGS["batch_size"]
    assert early.model_panel.precision.currentText() == "fp32"   # as the options asked
    early.tasks.wait_all()


def test_export_dialog_suggests_a_path_with_the_right_extension(qtbot, tmp_path):
    from ganstudio.gui.widgets import ExportDialog
    dlg = ExportDialog("run1", has_grid=False, last_dir=str(tmp_path))
    qtbot.addWidget(dlg)
    assert dlg.kind() == "timelapse"
    assert dlg.target() == str(tmp_path / "run1-timelapse.gif")
    dlg.fmt.setCurrentText(".mp4")
    assert dlg.target() == str(tmp_path / "run1-timelapse.mp4")
    dlg.radios["generator"].setChecked(True)
    assert dlg.target() == str(tmp_path / "run1-generator.safetensors")
    dlg.path.setText(str(tmp_path / "mine"))
    dlg.path.textEdited.emit(str(tmp_path / "mine"))
    dlg.radios["timelapse"].setChecked(True)  # a typed path is kept; the extension added
    assert dlg.target() == str(tmp_path / "mine.gif")


def test_engine_advice_names_settings_not_command_line_flags(qtbot, make_window):
    from ganstudio.core import events as ev
    w = make_window()
    w.trainer._on_warning(ev.Warning("the discriminator wins", 377, "imbalance",
                                     {"d_pause": "on"}))
    assert w.info_bar.kind == "imbalance"
    assert w.info_bar.label.text() == \
        "Step 377: The discriminator wins. Try d_pause = on in the Model settings, then resume."
    assert "--set" not in w.info_bar.label.text()
    assert [m[:2] for m in w.chart.markers] == [(377, "imbalance")]


def test_own_folder_after_the_demo_gets_the_models_settings_back(qtbot, make_window,
                                                                  image_dir):
    from ganstudio.gui.main_window import DEMO_SETTINGS
    w = make_window(set=[], steps=7000)
    w.use_demo_dataset()
    assert w.model_panel.config()["resolution"] == DEMO_SETTINGS["resolution"]
    w.model_panel.form.set_values({"batch_size": 24})  # the user's own change stays
    w.dataset_panel.set_folder(str(image_dir))
    cfg = w.model_panel.config()
    assert (cfg["resolution"], cfg["g_features"], cfg["d_features"]) == (64, 64, 64)
    assert cfg["batch_size"] == 24 and w.model_panel.steps.value() == 7000
    w.tasks.wait_all()


def test_a_refused_setting_is_named_and_focused(qtbot, make_window):
    w = make_window(set=[])
    w.activateWindow()
    editor = w.model_panel.form.editors["lr_g"]
    editor.setText("fast")
    assert not w.start_training() and w.session is None
    text = w.info_bar.label.text()
    assert text.startswith("Check “LR G” in the Model panel:") and "'fast'" in text
    assert w.info_bar.kind == "setting"
    qtbot.waitUntil(lambda: editor.hasFocus(), timeout=2000)


def test_a_folder_can_be_typed_or_pasted(qtbot, tmp_path):
    from ganstudio.gui.dataset_panel import DatasetPanel
    panel = DatasetPanel()
    qtbot.addWidget(panel)
    assert not panel.path_edit.isReadOnly()
    folder = tmp_path / "pictures"
    folder.mkdir()
    with qtbot.waitSignal(panel.folderChosen) as blocker:
        panel.path_edit.setText(f"  {folder}  ")
        panel.path_edit.editingFinished.emit()
    assert blocker.args == [str(folder)] and panel.folder == str(folder)
    (tmp_path / "a.png").write_bytes(b"x")
    for typed, why in ((tmp_path / "missing", "does not exist"), (tmp_path / "a.png", "is a file")):
        with qtbot.assertNotEmitted(panel.folderChosen):
            panel.path_edit.setText(str(typed))
            panel.path_edit.editingFinished.emit()
        assert why in panel.info.text() and "unchanged" in panel.info.text()
        assert panel.folder == str(folder) and panel.path_edit.text() == str(folder)
