"""DCGAN networks and the training step, with the small-data balance tools.

Two presets:

- ``default``: the settings GAN Studio recommends for artists' small
  datasets (hundreds to a few thousand images): DiffAugment (colour,
  translation, cutout) on real and fake images, spectral normalisation in D
  instead of BatchNorm, the hinge loss, Adam betas (0.0, 0.99) as usual with
  spectral norm, and an exponential moving average of G for samples and
  exports. Same networks, learning rates and batch size as classic.
- ``classic``: the recipe of the well-known PyTorch DCGAN example, exactly:
  BatchNorm in both networks, non-saturating BCE with labels 1 / 0, Adam
  2e-4 with betas (0.5, 0.999), no augmentation, no averaging.

Settings whose value is ``auto`` take the preset's value; any other value
overrides the preset (``--set preset=classic --set augment=translation``).
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn

from ganstudio.core import gan_tools as gt
from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.errors import ConfigError
from ganstudio.core.model import GANModel

AUTO = "auto"

#: What each preset implies for the settings left at ``auto``.
PRESETS: dict[str, dict[str, object]] = {
    "default": {
        "loss": "hinge", "d_norm": "spectral", "augment": "color,translation,cutout",
        "augment_adaptive": "off", "ema": "on", "d_pause": "off", "beta1": 0.0, "beta2": 0.99,
    },
    "classic": {
        "loss": "bce", "d_norm": "batch", "augment": "off",
        "augment_adaptive": "off", "ema": "off", "d_pause": "off", "beta1": 0.5, "beta2": 0.999,
    },
}


def schema() -> list[Field]:
    return common_gan_fields(resolution=64, resolutions=(32, 64, 128), batch_size=64) + [
        Field("preset", "choice", "default",
              "default: augmentation, spectral norm, hinge loss and an averaged generator - "
              "made for small datasets. classic: the original PyTorch DCGAN example's recipe "
              "(for comparison). Settings left at 'auto' follow the preset.",
              choices=list(PRESETS), group="Balance"),
        Field("latent_dim", "int", 100, "Size of the noise vector z.", min=2, max=1024,
              group="Model"),
        Field("g_features", "int", 64, "Width of the generator (ngf).", min=4, max=1024,
              group="Model"),
        Field("d_features", "int", 64, "Width of the discriminator (ndf).", min=4, max=1024,
              group="Model"),
        Field("d_norm", "choice", AUTO, "Normalisation in D: spectral (stable, the default "
              "preset), batch (the classic architecture) or none. auto = the preset's.",
              choices=[AUTO, "spectral", "batch", "none"], group="Model"),
        Field("lr_g", "float", 2e-4, "Generator learning rate.", min=1e-7, max=1.0),
        Field("lr_d", "float", 2e-4, "Discriminator learning rate. Lower it when D wins "
              "too fast (samples stay noise).", min=1e-7, max=1.0),
        Field("beta1", "str", AUTO, "Adam beta1 (a number in [0, 1)); auto = the preset's: "
              "0.0 for default, 0.5 for classic.", advanced=True),
        Field("beta2", "str", AUTO, "Adam beta2 (a number in [0, 1)); auto = the preset's: "
              "0.99 for default, 0.999 for classic.", advanced=True),
        Field("loss", "choice", AUTO, "GAN loss: hinge, bce (non-saturating) or wgan-gp "
              "(gradient penalty; use with d_norm=none or spectral). auto = the preset's.",
              choices=[AUTO, *gt.LOSSES], group="Balance"),
        Field("gp_weight", "float", 10.0, "Weight of the WGAN-GP gradient penalty.",
              min=0.0, max=1000.0, group="Balance", advanced=True),
        Field("augment", "str", AUTO, "Differentiable augmentation of real and fake images "
              "before D: a comma list of color, translation, cutout; or off. "
              "auto = the preset's.", group="Balance"),
        Field("augment_adaptive", "choice", AUTO, "on: augmentation strength follows D's "
              "overfitting (ADA-style) instead of always-on. auto = the preset's.",
              choices=[AUTO, "on", "off"], group="Balance", advanced=True),
        Field("augment_target", "float", 0.6, "Adaptive augmentation: target of "
              "E[sign(D(real))]; lower means more augmentation.", min=0.0, max=1.0,
              group="Balance", advanced=True),
        Field("ema", "choice", AUTO, "Keep a moving average of G for samples and exports "
              "(smoother, better samples). auto = the preset's.",
              choices=[AUTO, "on", "off"], group="Balance"),
        Field("ema_decay", "float", 0.999, "Decay of the generator average.", min=0.0,
              max=0.99999, group="Balance", advanced=True),
        Field("d_pause", "choice", AUTO, "on: skip D's update while its loss is below "
              "d_pause_below (lets G catch up when D wins). auto = the preset's.",
              choices=[AUTO, "on", "off"], group="Balance"),
        Field("d_pause_below", "float", 0.2, "D loss under which D's updates pause.",
              min=0.0, max=10.0, group="Balance", advanced=True),
        Field("label_smoothing", "float", 0.0, "One-sided label smoothing for the bce loss: "
              "real targets become 1 - this (e.g. 0.1).", min=0.0, max=0.5, group="Balance"),
        Field("instance_noise", "float", 0.0, "Std of Gaussian noise added to D's inputs, "
              "fading to 0 over instance_noise_steps (e.g. 0.1).", min=0.0, max=2.0,
              group="Balance", advanced=True),
        Field("instance_noise_steps", "int", 2000, "Steps over which instance noise fades.",
              min=1, max=10_000_000, group="Balance", advanced=True),
        Field("channels_last", "bool", False, "Use the channels-last memory layout "
              "(faster on recent GPUs; always used on a CPU, where it is faster).",
              advanced=True),
    ]


def effective_settings(config: dict) -> dict:
    """The config with every ``auto`` replaced by the preset's value (validated)."""
    preset = str(config.get("preset", "default"))
    if preset not in PRESETS:
        raise ConfigError(f"setting 'preset': {preset!r} is not one of {', '.join(PRESETS)}")
    out = dict(config)
    for key, value in PRESETS[preset].items():
        if str(out.get(key, AUTO)).strip().lower() == AUTO:
            out[key] = value
    for key in ("beta1", "beta2"):
        try:
            out[key] = float(out[key])
        except (TypeError, ValueError):
            out[key] = float("nan")
        if not 0.0 <= out[key] < 1.0:
            raise ConfigError(f"setting '{key}': expected auto or a number in [0, 1), "
                              f"got {config.get(key)!r}")
    out["loss"] = gt.check_loss(str(out["loss"]))
    out["augment_ops"] = gt.parse_augment_policy(str(out["augment"]))
    if out["loss"] == "wgan-gp" and out["d_norm"] == "batch":
        raise ConfigError("setting 'loss': wgan-gp's gradient penalty is not valid with "
                          "BatchNorm in D; use --set d_norm=none or d_norm=spectral")
    return out


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
    """Outputs logits (the sigmoid lives in the loss: safe under autocast).

    ``norm="batch"`` is the classic architecture; ``"spectral"`` drops
    BatchNorm and normalises every convolution's spectral norm instead.
    """

    def __init__(self, channels: int, features: int, resolution: int, norm: str = "batch"):
        super().__init__()
        n = _blocks(resolution)
        width = features
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True)]
        for _ in range(n - 1):
            layers.append(nn.Conv2d(width, width * 2, 4, 2, 1, bias=False))
            if norm == "batch":
                layers.append(nn.BatchNorm2d(width * 2))
            layers.append(nn.LeakyReLU(0.2, inplace=True))
            width *= 2
        layers += [nn.Conv2d(width, 1, 4, 1, 0, bias=False)]
        self.net = nn.Sequential(*layers)
        self.apply(_init_weights)
        if norm == "spectral":
            gt.apply_spectral_norm(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x).view(-1)


class DCGAN(GANModel):
    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape, device)
        c, h, _w = self.image_shape
        cfg = self.config
        self.settings = s = effective_settings(cfg)
        self.latent_dim = int(cfg["latent_dim"])
        self.G = Generator(self.latent_dim, c, int(cfg["g_features"]), h).to(self.device)
        self.G.apply(_init_weights)
        self.D = Discriminator(c, int(cfg["d_features"]), h, norm=s["d_norm"]).to(self.device)
        # On a CPU the channels-last layout is always used: oneDNN's convolutions run it
        # faster (DCGAN 64 px, batch 128, 2 cores: about 15 % less CPU time per image).
        cl = bool(cfg.get("channels_last")) or self.device.type == "cpu"
        self.memory_format = torch.channels_last if cl else torch.contiguous_format
        if cl:
            self.G.to(memory_format=torch.channels_last)
            self.D.to(memory_format=torch.channels_last)
        fused = {"fused": True} if self.device.type == "cuda" else {}
        betas = (s["beta1"], s["beta2"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(cfg["lr_g"]), betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=float(cfg["lr_d"]), betas=betas, **fused)

        self.loss = s["loss"]
        self.ada = (gt.AdaptiveStrength(self.device, target=float(cfg["augment_target"]))
                    if s["augment_adaptive"] == "on" and s["augment_ops"] else None)
        self.augment = gt.DiffAugment(s["augment_ops"],
                                      self.ada.p if self.ada is not None else 1.0)
        self.ema = (gt.EMA(self.G, float(cfg["ema_decay"])) if s["ema"] == "on" else None)
        self.pause = gt.DPause(float(cfg["d_pause_below"]) if s["d_pause"] == "on" else 0.0)
        self.noise = gt.InstanceNoise(float(cfg["instance_noise"]),
                                      int(cfg["instance_noise_steps"]))
        self.label_smoothing = float(cfg["label_smoothing"])
        self._last_d: dict[str, torch.Tensor] | None = None

    def _d_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.ada is not None:
            self.augment.strength = self.ada.p
        return self.augment(self.noise(x)).contiguous(memory_format=self.memory_format)

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        n = real.shape[0]
        G, D = self.network("g"), self.network("d")  # DDP wrappers in a distributed run
        real = real.contiguous(memory_format=self.memory_format)
        z = torch.randn(n, self.latent_dim, device=self.device)

        # (1) update D on real and fake (both through the same augmentation)
        fake = G(z)
        update_d = self.pause.should_update_d()
        gt.set_requires_grad(self.D, True)
        if update_d:
            self.opt_d.zero_grad(set_to_none=True)
            real_in, fake_in = self._d_input(real), self._d_input(fake.detach())
            out_real = D(real_in)
            out_fake = D(fake_in)
            loss_d = gt.d_loss(self.loss, out_real, out_fake,
                               label_smoothing=self.label_smoothing)
            total_d = loss_d
            if self.loss == "wgan-gp":
                total_d = loss_d + gt.gradient_penalty(D, real_in, fake_in,
                                                       float(self.config["gp_weight"]))
            total_d.backward()
            self.opt_d.step()
            if self.ada is not None:
                self.ada.observe(out_real)
            self.pause.observe(loss_d)
            acc_real, acc_fake = gt.accuracy(out_real, out_fake)
            self._last_d = {"loss_d": loss_d.detach(), "d_real": torch.sigmoid(out_real.detach().float()).mean(),
                            "d_fake": torch.sigmoid(out_fake.detach().float()).mean(),
                            "d_acc_real": acc_real, "d_acc_fake": acc_fake}
        self.noise.advance()

        # (2) update G through D (D frozen: no wasted gradients for D's weights)
        gt.set_requires_grad(self.D, False)
        self.opt_g.zero_grad(set_to_none=True)
        out_g = D(self._d_input(fake))
        loss_g = gt.g_loss(self.loss, out_g)
        loss_g.backward()
        self.opt_g.step()
        gt.set_requires_grad(self.D, True)
        if self.ema is not None:
            self.ema.update(self.G)

        out = {"loss_g": loss_g.detach()}
        if self._last_d is not None:
            out.update(self._last_d)
        if self.pause.enabled:
            out["d_paused"] = torch.tensor(0.0 if update_d else 1.0, device=self.device)
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def use_wrapped_networks(self, wrapped: dict[str, nn.Module]) -> None:
        if self.pause.enabled:  # a per-process decision: the processes would wait forever
            raise ConfigError("setting 'd_pause': each process would pause D by its own loss "
                              "and the processes would wait on each other; use d_pause=off "
                              "to train on several processes")
        super().use_wrapped_networks(wrapped)

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"g": self.G, "d": self.D}

    def _sampler(self) -> nn.Module:
        return self.ema.module if self.ema is not None else self.G

    # sample(): GANModel's, through generator_module() (the EMA generator once it exists)

    @torch.no_grad()
    def discriminate(self, x: torch.Tensor) -> torch.Tensor:
        """D's logits for images ``x`` (no augmentation), leaving D's state untouched.

        Used by the engine's balance alarm. BatchNorm running statistics are
        restored afterwards so measuring does not change training.
        """
        saved = [b.clone() for b in self.D.buffers()]
        try:
            return self.D(x.to(self.device).contiguous(memory_format=self.memory_format)).float()
        finally:
            for b, v in zip(self.D.buffers(), saved):
                b.copy_(v)

    def discriminator_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Capability ``d_features``: D's activations after each LeakyReLU, for images in
        [-1, 1] at the training size; differentiable with respect to the images. D runs
        in eval mode, which updates none of its buffers (BatchNorm statistics,
        spectral-norm vectors) and uses no batch statistics."""
        was_training = self.D.training
        self.D.eval()
        feats: list[torch.Tensor] = []
        try:
            x = images.to(self.device).contiguous(memory_format=self.memory_format)
            for layer in self.D.net:
                # in-place activations would overwrite the feature just kept
                x = layer(x.clone() if isinstance(layer, nn.LeakyReLU) else x)
                if isinstance(layer, nn.LeakyReLU):
                    feats.append(x.float().contiguous())
            return feats
        finally:
            self.D.train(was_training)

    def effective_config(self) -> dict:
        """The settings with every ``auto`` replaced by the preset's value."""
        return {k: v for k, v in self.settings.items() if k != "augment_ops"}

    def status(self) -> dict[str, float]:
        out: dict[str, float] = {}
        if self.ada is not None:
            out["augment_p"] = round(float(self.ada.p), 4)   # host sync: only when logging
        return out

    def state_dict(self) -> dict:
        state = {"G": self.G.state_dict(), "D": self.D.state_dict(),
                 "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                 "noise_step": self.noise.step}
        if self.ema is not None:
            state["ema"] = self.ema.state_dict()
        if self.ada is not None:
            state["ada"] = self.ada.state_dict()
        return state

    def load_state_dict(self, state: dict) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.noise.step = int(state.get("noise_step", 0))
        if self.ema is not None:
            if "ema" in state:
                self.ema.load_state_dict(state["ema"])
            else:  # a checkpoint from before the average existed: start it from G
                self.ema.module.load_state_dict(self.G.state_dict())
        if self.ada is not None and "ada" in state:
            self.ada.load_state_dict(state["ada"])

    def generator_module(self) -> torch.nn.Module:
        return self._sampler()

    # -- declared capabilities ---------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def trained_networks(self) -> dict[str, nn.Module]:
        return {"g": self.G, "d": self.D}

    def load_weights(self, state: dict) -> None:
        """Capability ``finetune``: another run's G, D (and average) without its
        optimizers or counters."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        if self.ema is not None:  # the other run's average, or its G when it kept none
            ema = state.get("ema")
            self.ema.module.load_state_dict(ema["module"] if isinstance(ema, dict)
                                            else self.G.state_dict())
