"""The few-shot GAN's settings and training step.

Training, per step (after the paper): (1) D sees the augmented real batch and
the augmented fakes, with the hinge loss, plus the reconstruction loss of its
two decoders on the real batch (the whole image from the 8x8 features, one
random quarter from the 16x16 features); (2) G is updated through D with the
hinge generator loss; (3) the moving average of G is updated. Adam with
lr 2e-4 and betas (0.5, 0.999) for both networks, batch 8, DiffAugment
(colour, translation, cutout) on real and fake images.

FreezeD (Mo, Cho and Shin, 2020): with ``freeze_d = k`` the first k blocks of D
are not trained; meant for fine-tuning from an earlier run (``--init-from``).
"""
from __future__ import annotations

from typing import Any

import torch
import torch.nn as nn

from ganstudio.core import gan_tools as gt
from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.model import GANModel

from . import losses
from .networks import (LATENT_DIM, RESOLUTIONS, Discriminator, Generator, quarter, resize)

#: how many D blocks FreezeD can freeze at most (stem + 5 halvings + head at 256 px)
MAX_FREEZE = 8


def schema() -> list[Field]:
    return common_gan_fields(resolution=256, resolutions=RESOLUTIONS, batch_size=8) + [
        Field("g_features", "int", 64, "Width of the generator: channels per feature map are "
              "this times 16 at 4 px, halving as the maps grow (1/8 of it at 1024 px). "
              "16-32 trains much faster on a CPU.", min=2, max=512, group="Model"),
        Field("d_features", "int", 64, "Width of the discriminator (same scaling as "
              "g_features).", min=2, max=512, group="Model"),
        Field("noise", "bool", True, "Noise injection in G's deeper blocks (fresh noise "
              "while training, one fixed noise map for samples and exports).", group="Model"),
        Field("lr_g", "float", 2e-4, "Generator learning rate.", min=1e-7, max=1.0),
        Field("lr_d", "float", 2e-4, "Discriminator learning rate.", min=1e-7, max=1.0),
        Field("beta1", "float", 0.5, "Adam beta1 of both networks.", min=0.0, max=0.999,
              advanced=True),
        Field("beta2", "float", 0.999, "Adam beta2 of both networks.", min=0.0, max=0.9999,
              advanced=True),
        Field("augment", "str", "color,translation,cutout", "Differentiable augmentation of "
              "real and fake images before D: a comma list of color, translation, cutout; "
              "or off. Keep it on for a few hundred images.", group="Balance"),
        Field("recon_weight", "float", 1.0, "Weight of D's reconstruction loss (the "
              "self-supervised decoders that keep D from memorising the images).",
              min=0.0, max=100.0, group="Balance"),
        Field("perceptual", "choice", "auto", "auto: add a VGG-19 perceptual term to the "
              "reconstruction loss when the weights file is on this machine (never "
              "downloaded); off: pixel and structural terms only.", choices=["auto", "off"],
              group="Balance", advanced=True),
        Field("vgg_weights", "path", "", "VGG-19 weights file for the perceptual term "
              "(torchvision's vgg19 state_dict). Empty: the file the style models use, in "
              "the torch hub cache, if it is there.", group="Balance", advanced=True),
        Field("ema", "bool", True, "Keep a moving average of G for samples and exports.",
              group="Balance"),
        Field("ema_decay", "float", 0.999, "Decay of the generator average.", min=0.0,
              max=0.99999, group="Balance", advanced=True),
        Field("freeze_d", "int", 0, "FreezeD: do not train the first k blocks of D "
              "(1 = the input layers). For fine-tuning from an earlier run on a small "
              "folder; 0 = train all of D.", min=0, max=MAX_FREEZE, group="Balance"),
    ]


class FewShotGAN(GANModel):
    latent_dim = LATENT_DIM

    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape, device)
        c, h, _w = self.image_shape
        cfg = self.config
        self.G = Generator(h, c, int(cfg["g_features"]), noise=bool(cfg["noise"])).to(self.device)
        self.D = Discriminator(h, c, int(cfg["d_features"])).to(self.device)
        self.frozen = self._freeze(int(cfg["freeze_d"]))
        betas = (float(cfg["beta1"]), float(cfg["beta2"]))
        fused = {"fused": True} if self.device.type == "cuda" else {}
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(cfg["lr_g"]), betas=betas,
                                      **fused)
        self.opt_d = torch.optim.Adam(self._trainable_d(), lr=float(cfg["lr_d"]), betas=betas,
                                      **fused)
        self.augment = gt.DiffAugment(str(cfg["augment"]))
        self.ema = gt.EMA(self.G, float(cfg["ema_decay"])) if cfg["ema"] else None
        self.recon_weight = float(cfg["recon_weight"])
        vgg = None
        if cfg["perceptual"] == "auto":
            path = losses.find_vgg_weights(cfg.get("vgg_weights") or None)
            if path is not None:
                vgg = losses.load_vgg_trunk(path, self.device)
        self.perceptual = vgg is not None
        self.recon_loss = losses.ReconstructionLoss(vgg)

    # -- FreezeD ---------------------------------------------------------------------------
    def _freeze(self, k: int) -> int:
        blocks = self.D.blocks
        k = min(k, len(blocks))
        for block in blocks[:k]:
            block.requires_grad_(False)
        return k

    def _trainable_d(self) -> list[nn.Parameter]:
        frozen = {id(p) for block in self.D.blocks[:self.frozen] for p in block.parameters()}
        return [p for p in self.D.parameters() if id(p) not in frozen]

    def _d_requires_grad(self, flag: bool) -> None:
        for p in self._trainable_d():
            p.requires_grad_(flag)

    # -- training ----------------------------------------------------------------------------
    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        G, D = self.network("g"), self.network("d")  # DDP wrappers in a distributed run
        z = torch.randn(n, self.latent_dim, device=self.device)
        fake = G(z)
        # the quarter the second decoder rebuilds: drawn from the CPU generator (which the
        # engine checkpoints), so choosing it never waits for the GPU
        q = int(torch.randint(0, 4, (1,)))

        # (1) update D: hinge on real and fake, reconstruction of the real batch
        self._d_requires_grad(True)
        self.opt_d.zero_grad(set_to_none=True)
        # fake first: in a distributed run the last call before backward() must use every
        # weight that gets a gradient (the decoders run on reals only)
        logits_fake = D(self.augment(fake.detach()))
        real_in = self.augment(real)
        logits_real, rec_whole, rec_part = D(real_in, reconstruct=q)
        size = self.D.decoder_res
        loss_rec = (self.recon_loss(rec_whole, resize(real_in, size))
                    + self.recon_loss(rec_part, resize(quarter(real_in, q), size)))
        lr, lf = logits_real.float(), logits_fake.float()
        loss_d = torch.relu(1.0 - lr).mean() + torch.relu(1.0 + lf).mean()
        (loss_d + self.recon_weight * loss_rec).backward()
        self.opt_d.step()

        # (2) update G through D (D's weights need no gradients here)
        self._d_requires_grad(False)
        self.opt_g.zero_grad(set_to_none=True)
        loss_g = -D(self.augment(fake)).float().mean()
        loss_g.backward()
        self.opt_g.step()
        self._d_requires_grad(True)
        # (3) the moving average of G
        if self.ema is not None:
            self.ema.update(self.G)

        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "loss_rec": loss_rec.detach(),
                "d_real": lr.detach().mean(), "d_fake": lf.detach().mean()}

    # -- sampling ----------------------------------------------------------------------------
    def _sampler(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.G

    # sample(): GANModel's, through generator_module() (the EMA generator once it exists)

    @torch.no_grad()
    def _run_d(self, fn):
        """Run ``fn`` on D and put back its buffers (BatchNorm statistics and spectral-norm
        vectors), so that measuring never changes training."""
        saved = [b.clone() for b in self.D.buffers()]
        try:
            return fn()
        finally:
            for b, v in zip(self.D.buffers(), saved):
                b.copy_(v)

    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D's mean logit per image (no augmentation); used by the balance alarm."""
        return self._run_d(lambda: self.D(x.to(self.device)).float().mean(dim=(1, 2, 3)))

    def discriminator_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """D's feature maps of ``images`` at 32 (when present), 16 and 8 px.

        D runs in eval mode (BatchNorm's running statistics, no spectral-norm update),
        so each image's features depend on that image alone and D's state is left as
        it was; gradients flow back to ``images`` (projection into the latent space)."""
        was_training = self.D.training
        self.D.eval()
        try:
            maps = self.D.features(images.to(self.device))
        finally:
            self.D.train(was_training)
        return [maps[r].float() for r in (32, 16, 8) if r in maps]

    @torch.no_grad()
    def reconstruct(self, images: torch.Tensor, q: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
        """D's two reconstructions of ``images`` (whole image, quarter ``q``), for checks."""
        return self._run_d(lambda: self.D(images.to(self.device), reconstruct=q)[1:])

    def status(self) -> dict[str, float]:
        return {}

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        state = {"G": self.G.state_dict(), "D": self.D.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.load_weights(state)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    def load_weights(self, state: dict[str, Any]) -> None:
        """Networks (G, D with its decoders, G's average) from another run's model state;
        this run's optimizers start fresh. Raises on missing keys or other shapes."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"])
            else:   # a run trained without the average: start it from G
                self.ema.module.load_state_dict(self.G.state_dict())

    # -- declared capabilities ---------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"g": self.G, "d": self.D}

    def generator_module(self) -> nn.Module:
        return self._sampler()
