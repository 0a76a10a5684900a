"""Fixtures for the studio tests: offscreen Qt, temporary settings, tiny images,
and a guard that fails any test which leaves a studio thread running."""
from __future__ import annotations

import gc
import os

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

import ganstudio  # noqa: E402
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
def _cycles_freed_in_the_gui_thread(qapp):
    """As in the studio: reference cycles are freed by the GUI thread's collector only
    (a widget freed by a background thread's collection corrupts Qt). After the test,
    what it left is collected here, and Python's own collector is back for other tests."""
    from ganstudio.gui.collector import install
    collector = install(qapp)
    yield
    qapp.processEvents()
    gc.collect()
    collector.stop()


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
def themed(qapp):
    """Apply a theme for one test and put the application's look back afterwards."""
    from ganstudio.gui.theme import apply_theme
    before = (qapp.styleSheet(), qapp.palette(), qapp.property("ganstudio_theme"))
    yield lambda name: apply_theme(qapp, name)
    qapp.setStyleSheet(before[0])
    qapp.setPalette(before[1])
    qapp.setProperty("ganstudio_theme", before[2])


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


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """Tiny models on a shared 2-core machine: one intra-op thread avoids oversubscription."""
    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


# -- a tiny, fast model plugin for the studio tests -------------------------------------------
def _fake_plugin():
    import torch
    from torch import nn

    import ganstudio
    from ganstudio.core.config import Field, common_gan_fields
    from ganstudio.core.model import GAN, GANModel, ModelSpec

    class TinyGAN(GANModel):
        """A linear generator fitted to the batch; NaN or out-of-memory on request."""

        latent_dim = 4

        def __init__(self, config, image_shape, device):
            super().__init__(config, image_shape, device)
            c, h, w = self.image_shape
            self.G = nn.Sequential(nn.Linear(4, c * h * w), nn.Tanh())
            self.opt = torch.optim.SGD(self.G.parameters(), lr=float(config["lr"]))
            self.calls = 0

        def train_step(self, real):
            if self.batch_size > int(self.config["max_batch"]):
                raise torch.OutOfMemoryError("out of memory (simulated by the test model)")
            self.calls += 1
            fake = self.G(torch.randn(real.shape[0], 4))
            loss = ((fake - real.flatten(1)) ** 2).mean()
            self.opt.zero_grad()
            loss.backward()
            self.opt.step()
            lr = self.opt.param_groups[0]["lr"]
            bad = (self.config["nan_at"] and self.calls >= self.config["nan_at"]
                   and lr > 0.75 * float(self.config["lr"]))
            loss_d = loss.detach() * 0 + (float("nan") if bad else 0.5 + 0.01 * self.calls)
            return {"loss_g": loss.detach(), "loss_d": loss_d}

        @torch.no_grad()
        def sample(self, z):
            c, h, w = self.image_shape
            return self.G(z).view(-1, c, h, w)

        def state_dict(self):
            return {"G": self.G.state_dict(), "opt": self.opt.state_dict(),
                    "calls": torch.tensor(self.calls)}

        def load_state_dict(self, state):
            self.G.load_state_dict(state["G"])
            self.opt.load_state_dict(state["opt"])
            self.calls = int(state["calls"])

        def load_weights(self, state):   # fine-tuning: the network, not SGD's state
            self.G.load_state_dict(state["G"])

        def generator_module(self):
            return self.G

        def optimizers(self):
            return {"g": self.opt}

        def trained_networks(self):
            return {"g": self.G}

    class FakePlugin:
        GANSTUDIO_PLUGIN_API = 1
        __version__ = "0.0.1"

        @ganstudio.hookimpl
        def ganstudio_register_models(self):
            schema = common_gan_fields(resolution=16, resolutions=(8, 16, 32), batch_size=8) + [
                Field("lr", "float", 0.01, "Learning rate.", min=1e-6, max=1.0),
                Field("nan_at", "int", 0, "Return NaN from this call on (0 = never).", min=0),
                Field("max_batch", "int", 1024, "Batches above this run out of memory.", min=1),
            ]
            return [ModelSpec(id="tiny", name="Tiny test GAN", kind=GAN, schema=schema,
                              factory=TinyGAN, help="A linear generator for tests.",
                              learning_rates=("lr",), capabilities=frozenset({"finetune"}))]

    return FakePlugin()


@pytest.fixture(scope="session")
def tiny_pm():
    from ganstudio.plugins import PluginManager
    return PluginManager(load_entry_points=False, load_folder=False,
                         extra=[("tinyplugin", _fake_plugin())])


@pytest.fixture
def tiny_window(make_window, tiny_pm, image_dir):
    """A window on the tiny model, 16 px data, frequent samples, long run."""
    def make(**opts):
        opts.setdefault("model", "tiny")
        opts.setdefault("set", [])
        opts.setdefault("data", str(image_dir))
        opts.setdefault("steps", 1_000_000)
        w = make_window(pm=tiny_pm, **opts)
        w.model_panel.sample_every.setValue(0.5)
        return w
    return make


def train_tiny_run(pm, run_dir: Path, data: Path, steps: int = 12):
    """A real run of the tiny model, written by the engine (no GUI)."""
    from ganstudio.core.engine import Engine, EngineSettings
    engine = Engine(pm.get_model("tiny"), run_dir, data_folder=data,
                    settings=EngineSettings(total_steps=steps, device="cpu", log_every_steps=2,
                                            log_every_s=1e9, sample_every_steps=4,
                                            checkpoint_every_s=0))
    engine.prepare()
    result = engine.run_loop()
    assert result.reason == "completed"
    return engine


@pytest.fixture
def finished_run(tmp_path, tiny_pm, image_dir):
    """A real 12-step run of the tiny model under tmp_path/runs."""
    run_dir = tmp_path / "runs" / "tiny-done"
    return run_dir, train_tiny_run(tiny_pm, run_dir, image_dir)


class SpecPlugin:
    """A plugin object offering the given model specs (for a plugin manager's ``extra``)."""

    GANSTUDIO_PLUGIN_API = 1
    __version__ = "0.0.1"

    def __init__(self, *specs):
        self.specs = list(specs)

    @ganstudio.hookimpl
    def ganstudio_register_models(self):
        return list(self.specs)
