"""Shared fixtures for the whole test suite.

Every test runs with ``GANSTUDIO_CACHE_DIR`` and ``GANSTUDIO_PLUGINS_DIR``
pointed at fresh temporary folders (so nothing reads or writes the user's
real cache or plugin folder), with no plugin blocked, and with the
process-wide plugin manager forgotten.

Fixtures offered to every test module:

* ``image_folder``: a tiny folder of generated images (PNG and JPEG, in a
  sub-folder too), varied enough that a GAN has something to learn.
* ``make_image``: write one generated image (any PIL mode / format / size).
* ``tiny_plugin_module`` / ``tiny_plugin_file``: a test-only plugin offering
  the model ``tinygan`` (a fully connected G and D, a few thousand weights), as
  an in-process module or as a single-file plugin in the user plugin folder
  (what a subprocess ``ganstudio`` run picks up).
* ``plugin_manager``: a PluginManager holding only the test-only plugin.
* ``tiny_spec``: the ``tinygan`` ModelSpec from that manager.
"""
from __future__ import annotations

import os
import sys
import textwrap
import types
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

# Tests train tiny networks: one CPU thread is faster than several (no spin-waiting
# threads fighting over the CI's two cores), and subprocesses inherit the setting.
# Set GANSTUDIO_TEST_THREADS to use more.
_THREADS = int(os.environ.get("GANSTUDIO_TEST_THREADS", "1"))
os.environ["OMP_NUM_THREADS"] = str(_THREADS)
os.environ.setdefault("MKL_NUM_THREADS", str(_THREADS))
try:
    import torch as _torch
    _torch.set_num_threads(_THREADS)
except ImportError:  # pragma: no cover - torch is a dependency
    pass

#: Source of the test-only plugin. Kept as text so the same code serves as an
#: in-process module and as a drop-in file for subprocess runs.
TINY_PLUGIN_SOURCE = textwrap.dedent('''
    """Test-only plugin: a fully connected GAN small enough for CPU tests."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import ganstudio
    from ganstudio.core.config import Field, common_gan_fields
    from ganstudio.core.model import GAN, GANModel, ModelSpec

    __version__ = "0.0.1"
    GANSTUDIO_PLUGIN_API = 1


    class TinyGAN(GANModel):
        """Linear G (latent -> image, tanh) and linear D; Adam on both."""

        def __init__(self, config, image_shape, device):
            super().__init__(config, image_shape, device)
            c, h, w = self.image_shape
            self.latent_dim = int(self.config["latent_dim"])
            self.G = nn.Sequential(nn.Linear(self.latent_dim, c * h * w), nn.Tanh()).to(self.device)
            self.D = nn.Linear(c * h * w, 1).to(self.device)
            lr = float(self.config["lr"])
            self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999))
            self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))

        def _g(self, z):
            return self.G(z).view(z.shape[0], *self.image_shape)

        def train_step(self, real):
            n = real.shape[0]
            z = torch.randn(n, self.latent_dim, device=self.device)
            fake = self._g(z)
            self.opt_d.zero_grad(set_to_none=True)
            out_real = self.D(real.flatten(1)).view(-1)
            out_fake = self.D(fake.detach().flatten(1)).view(-1)
            loss_d = (F.binary_cross_entropy_with_logits(out_real, torch.ones_like(out_real))
                      + F.binary_cross_entropy_with_logits(out_fake, torch.zeros_like(out_fake)))
            loss_d.backward()
            self.opt_d.step()
            self.opt_g.zero_grad(set_to_none=True)
            out_g = self.D(fake.flatten(1)).view(-1)
            loss_g = F.binary_cross_entropy_with_logits(out_g, torch.ones_like(out_g))
            loss_g.backward()
            self.opt_g.step()
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

        @torch.no_grad()
        def sample(self, z):
            return self._g(z.to(self.device)).float()

        def state_dict(self):
            return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                    "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

        def load_state_dict(self, state):
            self.G.load_state_dict(state["G"])
            self.D.load_state_dict(state["D"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])

        def generator_module(self):
            return self.G

        def optimizers(self):
            return {"g": self.opt_g, "d": self.opt_d}

        def trained_networks(self):
            return {"g": self.G, "d": self.D}


    def schema():
        return common_gan_fields(resolution=8, resolutions=(8, 16, 32), batch_size=4) + [
            Field("latent_dim", "int", 8, "Size of z.", min=1, max=256, group="Model"),
            Field("lr", "float", 1e-3, "Learning rate of G and D.", min=1e-7, max=1.0),
        ]


    @ganstudio.hookimpl
    def ganstudio_register_models():
        return [ModelSpec(id="tinygan", name="Tiny test GAN", kind=GAN, schema=schema(),
                          factory=TinyGAN, help="Test-only model.", version=__version__,
                          learning_rates=("lr",))]
''')

TINY_PLUGIN_NAME = "tinyplugin"


# -- environment isolation (every test) ------------------------------------------------------
@pytest.fixture(autouse=True)
def _isolated_ganstudio_env(tmp_path_factory, monkeypatch):
    """Fresh cache and plugin folders, no blocked plugins, no cached plugin manager."""
    base = tmp_path_factory.mktemp("ganstudio_env")
    cache = base / "cache"
    plugins = base / "plugins"
    cache.mkdir()
    plugins.mkdir()
    monkeypatch.setenv("GANSTUDIO_CACHE_DIR", str(cache))
    monkeypatch.setenv("GANSTUDIO_PLUGINS_DIR", str(plugins))
    monkeypatch.delenv("GANSTUDIO_BLOCK_PLUGINS", raising=False)
    monkeypatch.setenv("QT_QPA_PLATFORM", "offscreen")
    import ganstudio.plugins as gp
    monkeypatch.setattr(gp, "_default", None)
    yield


@pytest.fixture
def cache_dir() -> Path:
    """The per-test dataset cache folder (``$GANSTUDIO_CACHE_DIR``)."""
    return Path(os.environ["GANSTUDIO_CACHE_DIR"])


@pytest.fixture
def plugins_dir() -> Path:
    """The per-test user plugin folder (``$GANSTUDIO_PLUGINS_DIR``), empty at start."""
    return Path(os.environ["GANSTUDIO_PLUGINS_DIR"])


# -- generated images ------------------------------------------------------------------------
def pattern_rgb(width: int, height: int, seed: int = 0) -> np.ndarray:
    """A (H, W, 3) uint8 picture: gradients plus a coloured square placed by ``seed``.

    Deterministic and varied (so a model has structure to learn) and cheap.
    """
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:height, 0:width]
    img = np.empty((height, width, 3), dtype=np.uint8)
    img[..., 0] = (xx * 255 // max(width - 1, 1)).astype(np.uint8)
    img[..., 1] = (yy * 255 // max(height - 1, 1)).astype(np.uint8)
    img[..., 2] = 64
    side = max(2, min(width, height) // 3)
    x0 = int(rng.integers(0, width - side + 1))
    y0 = int(rng.integers(0, height - side + 1))
    img[y0:y0 + side, x0:x0 + side] = rng.integers(0, 256, 3, dtype=np.uint8)
    return img


def write_image(path: Path, *, size=(16, 16), mode: str = "RGB", seed: int = 0,
                fmt: str | None = None, **save_kwargs) -> Path:
    """Write a generated image of ``size`` (w, h) in PIL ``mode`` to ``path``."""
    from PIL import Image
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    img = Image.fromarray(pattern_rgb(size[0], size[1], seed), "RGB")
    if mode != "RGB":
        img = img.convert(mode)
    img.save(path, format=fmt, **save_kwargs)
    return path


@pytest.fixture
def make_image():
    """``make_image(path, size=(w, h), mode="RGB", seed=0, fmt=None, **save_kwargs)``."""
    return write_image


@pytest.fixture
def image_folder(tmp_path) -> Path:
    """12 small images (16x16 and 20x16; PNG and JPEG), three of them in a sub-folder."""
    root = tmp_path / "images"
    for i in range(9):
        write_image(root / f"img_{i:02d}.png", size=(16, 16), seed=i)
    for i in range(9, 12):
        write_image(root / "more" / f"photo_{i:02d}.jpg", size=(20, 16), seed=i, quality=95)
    return root


# -- the test-only plugin --------------------------------------------------------------------
def load_tiny_plugin_module() -> types.ModuleType:
    """A fresh module object built from :data:`TINY_PLUGIN_SOURCE`."""
    module = types.ModuleType("ganstudio_test_tinyplugin")
    module.__file__ = "<tiny test plugin>"
    exec(compile(TINY_PLUGIN_SOURCE, module.__file__, "exec"), module.__dict__)
    return module


@pytest.fixture
def tiny_plugin_module() -> types.ModuleType:
    return load_tiny_plugin_module()


@pytest.fixture
def tiny_plugin_file(plugins_dir) -> Path:
    """The test-only plugin written as ``tinyplugin.py`` into the user plugin folder."""
    path = plugins_dir / f"{TINY_PLUGIN_NAME}.py"
    path.write_text(TINY_PLUGIN_SOURCE, encoding="utf-8")
    return path


@pytest.fixture
def plugin_manager(tiny_plugin_module):
    """A PluginManager with only the test-only plugin (no entry points, no folder)."""
    from ganstudio.plugins import PluginManager
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[(TINY_PLUGIN_NAME, tiny_plugin_module)])
    info = pm.plugins[TINY_PLUGIN_NAME]
    assert info.status == "ok", info.error
    return pm


@pytest.fixture
def tiny_spec(plugin_manager):
    return plugin_manager.get_model("tinygan")
