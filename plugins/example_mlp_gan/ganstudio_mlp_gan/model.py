"""MLP generator and discriminator, and one training step (D, then G)."""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F

from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.model import GANModel


def schema() -> list[Field]:
    """Settings shown in the studio's form (and accepted by ``--set``)."""
    return common_gan_fields(resolution=28, resolutions=(16, 28, 32, 64), channels=1,
                             batch_size=64) + [
        Field("latent_dim", "int", 100, "Size of the noise vector z.", min=2, max=1024,
              group="Model"),
        Field("g_width", "int", 256, "Width of the generator's first hidden layer; the next "
              "two are 2x and 4x as wide.", min=8, max=4096, group="Model"),
        Field("d_width", "int", 512, "Width of the discriminator's first hidden layer; the "
              "second is half as wide.", min=8, max=4096, group="Model"),
        Field("batch_norm", "bool", True, "Batch normalisation in the generator's hidden "
              "layers (steadier training).", group="Model", advanced=True),
        Field("dropout", "float", 0.0, "Dropout in the discriminator: raise it (0.3) when D "
              "wins too fast on a small folder.", min=0.0, max=0.9, group="Model",
              advanced=True),
        Field("lr_g", "float", 2e-4, "Generator learning rate.", min=1e-7, max=1.0),
        Field("lr_d", "float", 2e-4, "Discriminator learning rate.", min=1e-7, max=1.0),
        Field("beta1", "float", 0.5, "Adam beta1.", min=0.0, max=0.9999, advanced=True),
        Field("beta2", "float", 0.999, "Adam beta2.", min=0.0, max=0.9999, advanced=True),
    ]


class Generator(nn.Module):
    """z -> w -> 2w -> 4w -> C*H*W (tanh), LeakyReLU(0.2) between."""

    def __init__(self, latent_dim: int, width: int, image_shape: tuple[int, int, int],
                 batch_norm: bool):
        super().__init__()
        self.image_shape = tuple(image_shape)
        out = image_shape[0] * image_shape[1] * image_shape[2]
        layers: list[nn.Module] = []
        size_in = latent_dim
        for i, size in enumerate((width, 2 * width, 4 * width)):
            layers.append(nn.Linear(size_in, size))
            if batch_norm and i > 0:  # not on the first layer, as in the classic recipe
                layers.append(nn.BatchNorm1d(size))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            size_in = size
        layers += [nn.Linear(size_in, out), nn.Tanh()]
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(z.shape[0], *self.image_shape)


class Discriminator(nn.Module):
    """C*H*W -> w -> w/2 -> 1 logit (the sigmoid lives in the loss)."""

    def __init__(self, width: int, image_shape: tuple[int, int, int], dropout: float):
        super().__init__()
        size_in = image_shape[0] * image_shape[1] * image_shape[2]
        half = max(width // 2, 1)
        self.net = nn.Sequential(
            nn.Linear(size_in, width), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
            nn.Linear(width, half), nn.LeakyReLU(0.2, inplace=True), nn.Dropout(dropout),
            nn.Linear(half, 1),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x.flatten(1)).view(-1)


class MLPGAN(GANModel):
    """What the engine drives: build, train_step, sample, state (see GANModel)."""

    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape, device)
        cfg = self.config
        self.latent_dim = int(cfg["latent_dim"])
        self.G = Generator(self.latent_dim, int(cfg["g_width"]), self.image_shape,
                           bool(cfg["batch_norm"])).to(self.device)
        self.D = Discriminator(int(cfg["d_width"]), self.image_shape,
                               float(cfg["dropout"])).to(self.device)
        betas = (float(cfg["beta1"]), float(cfg["beta2"]))
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(cfg["lr_g"]), betas=betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=float(cfg["lr_d"]), betas=betas)

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        z = torch.randn(n, self.latent_dim, device=self.device)
        ones = torch.ones(n, device=self.device)
        zeros = torch.zeros(n, device=self.device)
        # The trained networks as the engine hands them over: wrapped on several
        # processes (capability ddp), so their gradients are averaged; else themselves.
        G, D = self.network("g"), self.network("d")

        # (1) update D: real images -> 1, generated images -> 0
        self.opt_d.zero_grad(set_to_none=True)
        fake = G(z)
        out_real = D(real)
        out_fake = D(fake.detach())
        loss_d = (F.binary_cross_entropy_with_logits(out_real.float(), ones)
                  + F.binary_cross_entropy_with_logits(out_fake.float(), zeros))
        loss_d.backward()
        self.opt_d.step()

        # (2) update G: make D say 1 for generated images (the non-saturating loss)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g = F.binary_cross_entropy_with_logits(D(fake).float(), ones)
        loss_g.backward()
        self.opt_g.step()

        # Detached tensors, no .item(): the engine averages them on the device.
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "d_real": torch.sigmoid(out_real.detach().float()).mean(),
                "d_fake": torch.sigmoid(out_fake.detach().float()).mean()}

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        was_training = self.G.training
        self.G.eval()  # batch norm uses its running statistics: same z, same image
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

    # Declared capabilities (ModelSpec.learning_rates names these optimizers).
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"g": self.G, "d": self.D}

    def load_weights(self, state: dict) -> None:
        """Start from another run's networks (capability ``finetune``)."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
