"""DCGAN networks and the training step."""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.model import GANModel


def schema() -> list[Field]:
    return common_gan_fields(resolution=64, resolutions=(32, 64, 128), batch_size=64) + [
        Field("latent_dim", "int", 100, "Size of the noise vector z.", min=2, max=1024,
              group="Model"),
        Field("g_features", "int", 64, "Width of the generator (ngf).", min=4, max=1024,
              group="Model"),
        Field("d_features", "int", 64, "Width of the discriminator (ndf).", min=4, max=1024,
              group="Model"),
        Field("lr_g", "float", 2e-4, "Generator learning rate.", min=1e-7, max=1.0),
        Field("lr_d", "float", 2e-4, "Discriminator learning rate. Lower it when D wins "
              "too fast (samples stay noise).", min=1e-7, max=1.0),
        Field("beta1", "float", 0.5, "Adam beta1.", min=0.0, max=0.9999, advanced=True),
        Field("beta2", "float", 0.999, "Adam beta2.", min=0.0, max=0.9999, advanced=True),
        Field("channels_last", "bool", False, "Use the channels-last memory layout "
              "(faster on recent GPUs).", advanced=True),
    ]


def _init_weights(m: nn.Module) -> None:
    name = m.__class__.__name__
    if "Conv" in name:
        nn.init.normal_(m.weight, 0.0, 0.02)
    elif "BatchNorm" in name:
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


def _blocks(resolution: int) -> int:
    n = int(math.log2(resolution)) - 2  # 4 -> resolution takes n doublings
    if 2 ** (n + 2) != resolution or n < 1:
        raise ValueError(f"DCGAN resolution must be a power of two >= 8, got {resolution}")
    return n


class Generator(nn.Module):
    def __init__(self, latent_dim: int, channels: int, features: int, resolution: int):
        super().__init__()
        n = _blocks(resolution)
        width = features * 2 ** (n - 1)
        layers: list[nn.Module] = [
            nn.ConvTranspose2d(latent_dim, width, 4, 1, 0, bias=False),
            nn.BatchNorm2d(width), nn.ReLU(True),
        ]
        for _ in range(n - 1):
            layers += [nn.ConvTranspose2d(width, width // 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width // 2), nn.ReLU(True)]
            width //= 2
        layers += [nn.ConvTranspose2d(width, channels, 4, 2, 1, bias=False), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(z.shape[0], -1, 1, 1))


class Discriminator(nn.Module):
    """Outputs logits (the sigmoid lives in the loss: safe under autocast)."""

    def __init__(self, channels: int, features: int, resolution: int):
        super().__init__()
        n = _blocks(resolution)
        width = features
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(n - 1):
            layers += [nn.Conv2d(width, width * 2, 4, 2, 1, bias=False),
                       nn.BatchNorm2d(width * 2), nn.LeakyReLU(0.2, inplace=True)]
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class DCGAN(GANModel):
    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape, device)
        c, h, _w = self.image_shape
        cfg = self.config
        self.latent_dim = int(cfg["latent_dim"])
        self.G = Generator(self.latent_dim, c, int(cfg["g_features"]), h).to(self.device)
        self.D = Discriminator(c, int(cfg["d_features"]), h).to(self.device)
        self.G.apply(_init_weights)
        self.D.apply(_init_weights)
        self.memory_format = torch.channels_last if cfg.get("channels_last") else torch.contiguous_format
        if cfg.get("channels_last"):
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        betas = (float(cfg["beta1"]), float(cfg["beta2"]))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(cfg["lr_g"]), betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=float(cfg["lr_d"]), betas=betas, **fused)

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        real = real.contiguous(memory_format=self.memory_format)
        z = torch.randn(n, self.latent_dim, device=self.device)
        ones = torch.ones(n, device=self.device)
        zeros = torch.zeros(n, device=self.device)

        # (1) update D: maximise log D(x) + log(1 - D(G(z)))
        self.opt_d.zero_grad(set_to_none=True)
        fake = self.G(z)
        out_real = self.D(real)
        out_fake = self.D(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(out_real.float(), ones)
                  + F.binary_cross_entropy_with_logits(out_fake.float(), zeros))
        loss_d.backward()
        self.opt_d.step()

        # (2) update G: maximise log D(G(z)) (the non-saturating loss)
        self.opt_g.zero_grad(set_to_none=True)
        out_g = self.D(fake)
        loss_g = F.binary_cross_entropy_with_logits(out_g.float(), ones)
        loss_g.backward()
        self.opt_g.step()

        return {
            "loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
            "d_real": torch.sigmoid(out_real.detach().float()).mean(),
            "d_fake": torch.sigmoid(out_fake.detach().float()).mean(),
        }

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        was_training = self.G.training
        self.G.eval()
        try:
            return self.G(z.to(self.device)).float()
        finally:
            self.G.train(was_training)

    def state_dict(self) -> dict:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    def generator_module(self) -> torch.nn.Module:
        return self.G
