"""Fixtures for the studio tests: offscreen Qt, temporary settings, tiny images,
and a guard that fails any test which leaves a studio thread running."""
from __future__ import annotations

import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from PIL import Image  # noqa: E402


@pytest.fixture(autouse=True)
def _isolated_studio(tmp_path_factory, monkeypatch):
    """Cache and QSettings in temp folders: the tests never touch the user's."""
    from PySide6.QtCore import QSettings
    base = tmp_path_factory.mktemp("studio-env")
    monkeypatch.setenv("GANSTUDIO_CACHE_DIR", str(base / "cache"))
    monkeypatch.setenv("GANSTUDIO_PLUGINS_DIR", str(base / "plugins"))
    QSettings.setDefaultFormat(QSettings.IniFormat)
    QSettings.setPath(QSettings.IniFormat, QSettings.UserScope, str(base / "settings"))
    yield


@pytest.fixture(autouse=True)
def no_thread_left_running():
    """Fail the test if it leaves a studio QThread running (and stop it for the next test)."""
    yield
    from ganstudio.gui.tasks import running_threads
    left = running_threads()
    for t in left:
        t.quit()
        t.wait(20_000)
    assert not left, f"QThread(s) left running: {[t.objectName() for t in left]}"


@pytest.fixture
def settings(tmp_path):
    from PySide6.QtCore import QSettings
    return QSettings(str(tmp_path / "studio.ini"), QSettings.IniFormat)


def make_images(folder: Path, n: int = 20, size: int = 32, seed: int = 0) -> Path:
    """Small coloured blobs on gradients: real PNG files for the dataset loader."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / size
    for i in range(n):
        c = rng.uniform(0, 255, 3)
        cx, cy, r = rng.uniform(0.3, 0.7), rng.uniform(0.3, 0.7), rng.uniform(0.15, 0.3)
        mask = ((xx - cx) ** 2 + (yy - cy) ** 2 < r * r)[..., None]
        bg = np.stack([xx * 200, yy * 200, np.full_like(xx, 60)], -1)
        img = np.where(mask, c, bg).astype(np.uint8)
        Image.fromarray(img).save(folder / f"img_{i:03d}.png")
    return folder


@pytest.fixture
def image_dir(tmp_path):
    return make_images(tmp_path / "images")


@pytest.fixture(scope="session")
def plugin_manager():
    from ganstudio.plugins import PluginManager
    return PluginManager(load_folder=False)


TINY_DCGAN = ["resolution=32", "g_features=8", "d_features=8", "batch_size=8", "latent_dim=16"]


@pytest.fixture
def make_window(qtbot, settings, tmp_path, plugin_manager):
    """A studio window with plugins loaded and runs under tmp_path/runs."""
    from ganstudio.gui.main_window import MainWindow, StudioOptions
    windows = []

    def make(pm=None, **opts):
        opts.setdefault("runs_root", str(tmp_path / "runs"))
        opts.setdefault("set", list(TINY_DCGAN))
        opts.setdefault("model", "dcgan")
        opts.setdefault("device", "cpu")
        w = MainWindow(StudioOptions(**opts), settings)
        w.confirm_close = lambda: True
        qtbot.addWidget(w)
        w.show()
        w.set_plugin_manager(pm or plugin_manager)
        windows.append(w)
        return w

    yield make
    for w in windows:
        if w.session is not None and w.session.running:
            w.session.worker.stop()
            w.session.join(30_000)
        if w.watcher is not None:
            w.watcher.stop()
        w.tasks.wait_all()
