"""The skeleton plugin package that ``ganstudio plugin new NAME`` writes.

The skeleton is a complete, installable package (``pyproject.toml`` with the
``ganstudio.plugins`` entry point, a small convolutional GAN, a conformance
test) that passes the conformance kit unchanged, so an author starts from
something that trains and edits it step by step. The command itself is in
``ganstudio/cli/plugins.py``.
"""
from __future__ import annotations

import keyword
import re
from pathlib import Path

from ganstudio.core.errors import UserError

_NAME_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,48}$")


class PluginNames:
    """The names derived from what the author typed, e.g. ``my-gan``."""

    def __init__(self, raw: str):
        name = raw.strip()
        if not _NAME_RE.match(name):
            raise UserError(f"plugin name '{raw}' must start with a letter and use only "
                            "letters, digits, '-' and '_' (at most 49 characters)")
        low = name.lower()
        for prefix in ("ganstudio_", "ganstudio-"):
            if low.startswith(prefix) and len(low) > len(prefix):
                low = low[len(prefix):]
        self.snake = re.sub(r"[-_]+", "_", low).strip("_")
        if not self.snake or keyword.iskeyword(self.snake):
            raise UserError(f"plugin name '{raw}' cannot be used as a Python name")
        self.kebab = self.snake.replace("_", "-")
        self.folder = name                       # what the author typed
        self.entry_point = self.snake            # plugin name in `ganstudio plugins`
        self.module = f"ganstudio_{self.snake}"  # the import name
        self.distribution = f"ganstudio-{self.kebab}"
        self.model_id = self.kebab
        self.display = " ".join(p.capitalize() for p in self.snake.split("_"))
        self.cls = "".join(p.capitalize() for p in self.snake.split("_")) + "Model"

    def fill(self, template: str) -> str:
        for key, value in (("{{module}}", self.module), ("{{entry_point}}", self.entry_point),
                           ("{{distribution}}", self.distribution),
                           ("{{model_id}}", self.model_id), ("{{display}}", self.display),
                           ("{{cls}}", self.cls), ("{{folder}}", self.folder)):
            template = template.replace(key, value)
        return template


PYPROJECT = '''\
[build-system]
requires = ["setuptools>=64"]
build-backend = "setuptools.build_meta"

[project]
name = "{{distribution}}"
version = "0.1.0"
description = "{{display}}: a GAN Studio model plugin."
readme = "README.md"
requires-python = ">=3.10"
dependencies = ["ganstudio>=0.1", "torch>=2.0"]

# This entry point is what makes GAN Studio find the plugin once it is installed.
[project.entry-points."ganstudio.plugins"]
{{entry_point}} = "{{module}}"

[tool.setuptools]
packages = ["{{module}}"]
'''

INIT = '''\
"""{{display}}: a GAN Studio plugin (made with `ganstudio plugin new`)."""
from __future__ import annotations

import ganstudio
from ganstudio.core.model import GAN, LatentSpace, ModelSpec

from .model import {{cls}}, schema

__version__ = "0.1.0"
#: The plugin API this plugin is written for (checked when GAN Studio loads it).
GANSTUDIO_PLUGIN_API = 1


@ganstudio.hookimpl
def ganstudio_register_models():
    """Called once at start-up: return the models this plugin offers."""
    return [ModelSpec(
        id="{{model_id}}",
        name="{{display}}",
        kind=GAN,
        schema=schema(),
        factory={{cls}},
        help="Describe your model here: what it is good at, and for which images.",
        version=__version__,
        # What the engine, the studio and the kit may rely on (plugins/PLUGINS.md):
        latent=LatentSpace(64, "gaussian", setting="latent_dim"),
        learning_rates={"lr": ("g", "d")},          # the optimizers of optimizers()
        test_settings={"width": 16},                # small enough for the conformance kit
        capabilities=frozenset({"ddp"}),
    )]
'''

MODEL = '''\
"""The model: settings, networks and one training step.

Replace the networks and the losses with your own; keep the methods'
signatures (see ganstudio.core.model.GANModel) and run
`ganstudio plugins --check {{entry_point}}` after each change.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.model import GANModel


def schema() -> list[Field]:
    """The settings form: every field needs help text, and numbers need min and max."""
    return common_gan_fields(resolution=32, resolutions=(16, 32, 64), batch_size=64) + [
        Field("latent_dim", "int", 64, "Size of the noise vector z.", min=2, max=1024,
              group="Model"),
        Field("width", "int", 64, "Channels of the widest layer of G and D.", min=8,
              max=1024, group="Model"),
        Field("lr", "float", 2e-4, "Adam learning rate of G and D.", min=1e-7, max=1.0),
    ]


def _doublings(resolution: int) -> int:
    n = int(math.log2(resolution)) - 2  # from 4x4 up to the resolution
    if n < 1 or 2 ** (n + 2) != resolution:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return n


class Generator(nn.Module):
    """z -> 4x4 feature map -> (upsample, conv) x n -> image in [-1, 1]."""

    def __init__(self, latent_dim: int, width: int, channels: int, resolution: int):
        super().__init__()
        n = _doublings(resolution)
        self.width = width
        self.fc = nn.Linear(latent_dim, width * 16)
        layers: list[nn.Module] = []
        w = width
        for _ in range(n):
            out = max(w // 2, 8)
            layers += [nn.Upsample(scale_factor=2), nn.Conv2d(w, out, 3, padding=1),
                       nn.BatchNorm2d(out), nn.ReLU(inplace=True)]
            w = out
        layers += [nn.Conv2d(w, channels, 3, padding=1), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(self.fc(z).view(z.shape[0], self.width, 4, 4))


class Discriminator(nn.Module):
    """image -> (strided conv) x n -> 4x4 -> one logit."""

    def __init__(self, width: int, channels: int, resolution: int):
        super().__init__()
        n = _doublings(resolution)
        widths = [max(width >> (n - 1 - i), 8) for i in range(n)]
        layers: list[nn.Module] = []
        w_in = channels
        for w in widths:
            layers += [nn.Conv2d(w_in, w, 4, 2, 1), nn.LeakyReLU(0.2, inplace=True)]
            w_in = w
        self.net = nn.Sequential(*layers)
        self.out = nn.Linear(w_in * 16, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.out(self.net(x).flatten(1)).view(-1)


class {{cls}}(GANModel):
    """What the engine calls: train_step, sample, state_dict / load_state_dict."""

    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape, device)  # sets config, image_shape, device
        c, h, _w = self.image_shape
        self.latent_dim = int(self.config["latent_dim"])
        width = int(self.config["width"])
        self.G = Generator(self.latent_dim, width, c, h).to(self.device)
        self.D = Discriminator(width, c, h).to(self.device)
        lr = float(self.config["lr"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=(0.5, 0.999))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=(0.5, 0.999))

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update of D, then G, on real images (N, C, H, W) in [-1, 1]."""
        n = real.shape[0]
        z = torch.randn(n, self.latent_dim, device=self.device)
        ones = torch.ones(n, device=self.device)
        zeros = torch.zeros(n, device=self.device)
        # wrapped by the engine on several processes (capability ddp): call them so
        G, D = self.network("g"), self.network("d")

        # (1) update D
        self.opt_d.zero_grad(set_to_none=True)
        fake = G(z)
        loss_d = (F.binary_cross_entropy_with_logits(D(real).float(), ones)
                  + F.binary_cross_entropy_with_logits(D(fake.detach()).float(), zeros))
        loss_d.backward()
        self.opt_d.step()

        # (2) update G
        self.opt_g.zero_grad(set_to_none=True)
        loss_g = F.binary_cross_entropy_with_logits(D(fake).float(), ones)
        loss_g.backward()
        self.opt_g.step()

        # detached scalar tensors; never .item() here (it waits for the GPU)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        was_training = self.G.training
        self.G.eval()
        try:
            return self.G(z.to(self.device)).float()
        finally:
            self.G.train(was_training)

    def state_dict(self) -> dict:
        # everything needed to resume exactly, optimizers included
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    def generator_module(self) -> torch.nn.Module:
        return self.G

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"g": self.G, "d": self.D}
'''

TEST = '''\
"""GAN Studio's conformance kit, run on this plugin: `python -m pytest tests`."""
from ganstudio.testing import PluginConformance


class TestConformance(PluginConformance):
    plugin = "{{entry_point}}"
'''

README = '''\
# {{distribution}}

{{display}}: a GAN Studio model plugin.

```bash
python -m pip install -e .                 # install (GAN Studio finds it via its entry point)
ganstudio plugins                          # lists: {{entry_point}} 0.1.0 [entry point] ok
ganstudio plugins --check {{entry_point}}  # the conformance kit
python -m pytest tests                     # the same kit as tests
ganstudio train --model {{model_id}} --data ~/pictures --out runs/first --steps 2000
```

Edit `{{module}}/model.py` (settings, networks, training step). The plugin
author guide (PLUGINS.md in the GAN Studio repository) documents every hook.
'''

FILES = {
    "pyproject.toml": PYPROJECT,
    "README.md": README,
    "{{module}}/__init__.py": INIT,
    "{{module}}/model.py": MODEL,
    "tests/test_conformance.py": TEST,
}


def write_skeleton(name: str, parent: str | Path = ".") -> Path:
    """Write the skeleton package for ``name`` into ``parent/name``; returns that folder."""
    names = PluginNames(name)
    parent = Path(parent).expanduser()
    if parent.exists() and not parent.is_dir():
        raise UserError(f"--dir {parent} is a file, not a folder; give the folder to write "
                        "the plugin into")
    if not parent.is_dir():
        raise UserError(f"folder not found: {parent}")
    root = parent / names.folder
    if root.exists():
        raise UserError(f"{root} already exists; choose another name or folder")
    try:
        for rel, template in FILES.items():
            path = root / names.fill(rel)
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(names.fill(template), encoding="utf-8")
    except OSError as e:
        raise UserError(f"could not write the plugin into {root}: {e.strerror or e}") from None
    return root
