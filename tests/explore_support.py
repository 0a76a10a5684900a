"""Test support for the explorer: a tiny model that declares a latent space,
discriminator features and ONNX export, and a helper that trains a short run.

The model's source is text so that it serves both as an in-process plugin and
as a single-file plugin dropped into the user plugin folder (for the CLI).
"""
from __future__ import annotations

import textwrap
import types
from pathlib import Path

EXPLORE_PLUGIN_SOURCE = textwrap.dedent('''
    """Test-only plugin: a small MLP GAN declaring what the explorer builds on."""
    import torch
    import torch.nn as nn
    import torch.nn.functional as F

    import ganstudio
    from ganstudio.core.config import Field, common_gan_fields
    from ganstudio.core.model import GAN, GANModel, LatentSpace, ModelSpec

    __version__ = "0.0.1"
    GANSTUDIO_PLUGIN_API = 1


    class Gen(nn.Module):
        def __init__(self, dim, shape):
            super().__init__()
            self.shape = shape
            n = shape[0] * shape[1] * shape[2]
            # BatchNorm: a sample depends on its batch unless the explorer uses eval mode
            self.net = nn.Sequential(nn.Linear(dim, 64), nn.BatchNorm1d(64), nn.ReLU(),
                                     nn.Linear(64, n), nn.Tanh())

        def forward(self, z):
            return self.net(z).view(z.shape[0], *self.shape)


    class ExploreGAN(GANModel):
        def __init__(self, config, image_shape, device):
            super().__init__(config, image_shape, device)
            c, h, w = self.image_shape
            self.latent_dim = int(self.config["latent_dim"])
            self.G = Gen(self.latent_dim, self.image_shape).to(self.device)
            self.D1 = nn.Sequential(nn.Flatten(), nn.Linear(c * h * w, 32), nn.LeakyReLU(0.2))
            self.D2 = nn.Linear(32, 1)
            self.D1.to(self.device), self.D2.to(self.device)
            lr = float(self.config["lr"])
            self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999))
            self.opt_d = torch.optim.Adam(list(self.D1.parameters()) + list(self.D2.parameters()),
                                          lr=lr, betas=(0.5, 0.999))

        def make_latents(self, n, generator=None):
            return torch.randn(n, self.latent_dim, generator=generator).to(self.device)

        def train_step(self, real):
            n = real.shape[0]
            z = self.make_latents(n)
            fake = self.G(z)
            self.opt_d.zero_grad(set_to_none=True)
            lr_ = self.D2(self.D1(real)).view(-1)
            lf = self.D2(self.D1(fake.detach())).view(-1)
            loss_d = F.softplus(-lr_).mean() + F.softplus(lf).mean()
            loss_d.backward()
            self.opt_d.step()
            self.opt_g.zero_grad(set_to_none=True)
            loss_g = F.softplus(-self.D2(self.D1(fake)).view(-1)).mean()
            loss_g.backward()
            self.opt_g.step()
            return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

        @torch.no_grad()
        def sample(self, z):
            was = self.G.training
            self.G.eval()
            try:
                return self.G(z.to(self.device)).float()
            finally:
                self.G.train(was)

        def state_dict(self):
            return {"G": self.G.state_dict(), "D1": self.D1.state_dict(),
                    "D2": self.D2.state_dict(), "opt_g": self.opt_g.state_dict(),
                    "opt_d": self.opt_d.state_dict()}

        def load_state_dict(self, state):
            self.G.load_state_dict(state["G"])
            self.D1.load_state_dict(state["D1"])
            self.D2.load_state_dict(state["D2"])
            self.opt_g.load_state_dict(state["opt_g"])
            self.opt_d.load_state_dict(state["opt_d"])

        def generator_module(self):
            return self.G

        def discriminator_features(self, images):
            return [self.D1(images.to(self.device))]

        def optimizers(self):
            return {"g": self.opt_g, "d": self.opt_d}


    def schema():
        return common_gan_fields(resolution=8, resolutions=(8, 16), batch_size=8) + [
            Field("latent_dim", "int", 32, "Size of z.", min=1, max=256, group="Model"),
            Field("lr", "float", 2e-3, "Learning rate.", min=1e-7, max=1.0),
        ]


    @ganstudio.hookimpl
    def ganstudio_register_models():
        common = dict(kind=GAN, schema=schema(), factory=ExploreGAN, version=__version__,
                      help="Test-only model for the explorer.")
        return [
            ModelSpec(id="explgan", name="Explore test GAN", latent=LatentSpace(32, "gaussian", setting="latent_dim"),
                      capabilities=frozenset({"d_features", "onnx"}), **common),
            ModelSpec(id="explgan-uniform", name="Explore test GAN (uniform)",
                      latent=LatentSpace(32, "uniform"), capabilities=frozenset({"onnx"}),
                      **common),
            ModelSpec(id="explgan-nolatent", name="Explore test GAN without latent space",
                      **common),
        ]
''')

PLUGIN_NAME = "exploreplugin"


def plugin_module() -> types.ModuleType:
    module = types.ModuleType("ganstudio_test_exploreplugin")
    module.__file__ = "<explore test plugin>"
    exec(compile(EXPLORE_PLUGIN_SOURCE, module.__file__, "exec"), module.__dict__)
    return module


def plugin_manager():
    from ganstudio.plugins import PluginManager
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[(PLUGIN_NAME, plugin_module())])
    assert pm.plugins[PLUGIN_NAME].status == "ok", pm.plugins[PLUGIN_NAME].error
    return pm


def write_plugin_file(plugins_dir: Path) -> Path:
    path = Path(plugins_dir) / f"{PLUGIN_NAME}.py"
    path.write_text(EXPLORE_PLUGIN_SOURCE, encoding="utf-8")
    return path


def train_run(run_dir: Path, data: Path, pm, *, model: str = "explgan", steps: int = 60,
              checkpoint_every: int = 0, keep: int = 3, resolution: int = 8,
              **settings) -> Path:
    """A short real training run on ``data`` with checkpoints (every ``checkpoint_every``
    steps when > 0, and at the end)."""
    from ganstudio.core.engine import Engine, EngineSettings
    engine_settings = EngineSettings(total_steps=steps, device="cpu", precision="fp32",
                                     monitors=False, sample_every_s=0, sample_every_steps=steps,
                                     checkpoint_every_s=0, checkpoint_every_steps=checkpoint_every,
                                     keep_checkpoints=keep, log_every_steps=steps)
    engine = Engine(pm.get_model(model), run_dir, data_folder=data,
                    overrides={"resolution": resolution, **settings},
                    settings=engine_settings)
    engine.prepare()
    engine.run_loop()
    return Path(run_dir)


def write_training_images(folder: Path, n: int, size: int = 16) -> Path:
    """``n`` small PNGs: gradients and a coloured square placed by the image's index."""
    import numpy as np
    from PIL import Image
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    yy, xx = np.mgrid[0:size, 0:size]
    for i in range(n):
        rng = np.random.default_rng(i)
        img = np.empty((size, size, 3), dtype=np.uint8)
        img[..., 0] = xx * 255 // (size - 1)
        img[..., 1] = yy * 255 // (size - 1)
        img[..., 2] = 64
        side = size // 3
        x0, y0 = rng.integers(0, size - side + 1, 2)
        img[y0:y0 + side, x0:x0 + side] = rng.integers(0, 256, 3, dtype=np.uint8)
        Image.fromarray(img).save(folder / f"img_{i:02d}.png")
    return folder
