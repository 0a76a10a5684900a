"""ProGAN and MSG-GAN models: WGAN-GP with the drift term, Adam (0, 0.99), EMA of G.

Losses (Gulrajani et al., "Improved Training of Wasserstein GANs", 2017, with
ProGAN's drift term):

    loss_D = D(fake) - D(real) + lambda_gp * (|grad D(x_hat)| - 1)^2 + drift * D(real)^2
    loss_G = -D(fake)

Nothing in a training step reads a value back from the device: the losses
are returned as detached tensors and the growth schedule is integer
arithmetic on the host (images shown so far).
"""
from __future__ import annotations

import contextlib
import copy
from typing import Any, Callable

import torch
import torch.nn.functional as F

from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.errors import ConfigError
from ganstudio.core.model import GANModel

from .layers import downscale2x, upscale2x
from .networks import Discriminator, Generator, level_count, resolution_at
from .schedule import Schedule, parse_batch_sizes

RESOLUTIONS = (8, 16, 32, 64, 128, 256, 512, 1024)
DEFAULT_BATCH_SIZES = "4:64,8:64,16:64,32:64,64:32,128:32,256:16,512:8,1024:4"


def _shared_fields(*, lr: float) -> list[Field]:
    return [
        Field("latent_dim", "int", 256, "Size of the noise vector z.", min=2, max=1024,
              group="Model"),
        Field("channel_max", "int", 256, "Most feature maps at any resolution (the paper "
              "uses 512; 256 trains about 3x faster and suits datasets of hundreds to "
              "thousands of images).", min=1, max=1024, group="Model"),
        Field("channel_base", "int", 16384, "Feature maps at resolution r are "
              "min(channel_max, channel_base / r): 16384 gives 128 maps at 128 px.",
              min=4, max=1 << 20, group="Model", advanced=True),
        Field("lr", "float", lr, "Learning rate of G and D (Adam). Lower it if the "
              "losses explode.", min=1e-7, max=1.0),
        Field("beta1", "float", 0.0, "Adam beta1 (the paper: 0).", min=0.0, max=0.9999,
              advanced=True),
        Field("beta2", "float", 0.99, "Adam beta2 (the paper: 0.99).", min=0.0, max=0.9999,
              advanced=True),
        Field("ema_decay", "float", 0.999, "Decay of the moving average of the generator "
              "used for samples and exports (0 = no averaging; it warms up over the first "
              "steps as (1 + t) / (10 + t)).", min=0.0, max=0.99999,
              advanced=True),
        Field("lambda_gp", "float", 10.0, "Weight of the WGAN-GP gradient penalty.", min=0.0,
              max=1000.0, advanced=True),
        Field("drift", "float", 0.001, "Weight of the drift term that keeps D's scores "
              "near zero.", min=0.0, max=10.0, advanced=True),
        Field("mbstd_group", "int", 4, "Group size of the minibatch standard deviation "
              "(1 = off in effect: each sample's own deviation is zero).", min=1, max=64,
              group="Model", advanced=True),
        Field("mixed_precision", "bool", True, "Let the engine's bf16 autocast run this "
              "model on GPUs that support it; off = always full fp32.", advanced=True),
    ]


def progan_schema() -> list[Field]:
    return common_gan_fields(resolution=128, resolutions=RESOLUTIONS, batch_size=64) + [
        Field("fade_images", "int", 400_000, "Real images shown while a new resolution "
              "fades in (alpha 0 -> 1).", min=0, max=10**9),
        Field("stable_images", "int", 400_000, "Real images shown at each resolution "
              "after its fade-in (and at 4x4 at the start).", min=1, max=10**9),
        Field("batch_sizes", "str", DEFAULT_BATCH_SIZES, "Batch per resolution, as "
              "resolution:batch pairs. Each is capped by batch_size, so lowering batch_size "
              "after an out-of-memory error lowers every large one."),
        Field("reset_optimizer", "bool", True, "Reset Adam's moments when a new resolution "
              "starts (the paper's reference code does).", advanced=True),
    ] + _shared_fields(lr=0.001)


def msggan_schema() -> list[Field]:
    return common_gan_fields(resolution=128, resolutions=RESOLUTIONS, batch_size=32) + \
        _shared_fields(lr=0.001)


class _WGANBase(GANModel):
    """What ProGAN and MSG-GAN share: networks, optimizers, EMA, the penalty, state."""

    multi_scale = False

    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape, device)
        cfg = self.config
        c = int(cfg["channels"])
        self.resolution = int(cfg["resolution"])
        if image_shape is not None and tuple(image_shape)[1:] != (self.resolution,) * 2:
            raise ConfigError(f"the images are {tuple(image_shape)[1]} px but the model was "
                              f"set up for {self.resolution} px")
        self.image_shape = (c, self.resolution, self.resolution)
        self.max_level = level_count(self.resolution)
        self.latent_dim = int(cfg["latent_dim"])
        base, cap = int(cfg["channel_base"]), int(cfg["channel_max"])
        self.G = Generator(self.latent_dim, c, self.resolution, base, cap).to(self.device)
        self.D = Discriminator(c, self.resolution, base, cap, mbstd_group=int(cfg["mbstd_group"]),
                               multi_scale=self.multi_scale).to(self.device)
        self.G_ema = copy.deepcopy(self.G).requires_grad_(False).eval()
        self._g_params = list(self.G.parameters())
        self._ema_params = list(self.G_ema.parameters())
        fused = {"fused": True} if self.device.type == "cuda" else {}
        betas = (float(cfg["beta1"]), float(cfg["beta2"]))
        lr = float(cfg["lr"])
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=lr, betas=betas, **fused)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=lr, betas=betas, **fused)
        self.ema_decay = float(cfg["ema_decay"])
        self.lambda_gp = float(cfg["lambda_gp"])
        self.drift = float(cfg["drift"])
        self.mixed_precision = bool(cfg["mixed_precision"])
        self.images_shown = 0
        self.g_steps = 0

    # -- the step ----------------------------------------------------------------------------
    def train_step(self, real: torch.Tensor | None) -> dict[str, torch.Tensor]:
        ctx = (contextlib.nullcontext() if self.mixed_precision
               else torch.autocast(self.device.type, enabled=False))
        with ctx:
            return self._step(real)

    def _step(self, real):  # pragma: no cover - overridden
        raise NotImplementedError

    def _wgan_step(self, reals, fakes, d: Callable[[Any], torch.Tensor]) -> dict[str, torch.Tensor]:
        """(1) update D with WGAN-GP + drift, (2) update G, (3) move the EMA.

        ``reals``/``fakes`` are tensors (ProGAN) or lists of tensors (MSG-GAN);
        ``fakes`` still carry G's graph.
        """
        detached = _map(fakes, torch.Tensor.detach)
        # (1) update D
        self.D.requires_grad_(True)
        d_real = d(reals).float()
        d_fake = d(detached).float()
        penalty = self._gradient_penalty(reals, detached, d)
        wdist = d_real.mean() - d_fake.mean()
        loss_d = -wdist + self.lambda_gp * penalty + self.drift * d_real.square().mean()
        self.opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        self.opt_d.step()

        # (2) update G (D frozen so no gradient is spent on its weights)
        self.D.requires_grad_(False)
        loss_g = -d(fakes).float().mean()
        self.opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        self.opt_g.step()
        self.D.requires_grad_(True)

        # (3) the moving average of G (for samples and exports). Its decay warms up as
        # (1 + t) / (10 + t) so early grids are not dominated by the random start.
        self.g_steps += 1
        decay = min(self.ema_decay, (1.0 + self.g_steps) / (10.0 + self.g_steps))
        with torch.no_grad():
            torch._foreach_lerp_(self._ema_params, self._g_params, 1.0 - decay)
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach(),
                "wdist": wdist.detach(), "gp": penalty.detach(),
                "d_real": d_real.detach().mean()}

    def _gradient_penalty(self, reals, fakes, d) -> torch.Tensor:
        if self.lambda_gp == 0:
            return torch.zeros((), device=self.device)
        first = reals[0] if isinstance(reals, list) else reals
        eps = torch.rand(first.shape[0], 1, 1, 1, device=first.device)
        mixed = _map2(reals, fakes, lambda r, f: torch.lerp(r.float(), f.float(), eps)
                      .requires_grad_(True))
        inputs = mixed if isinstance(mixed, list) else [mixed]
        grads = torch.autograd.grad(d(mixed).float().sum(), inputs, create_graph=True)
        sq = sum(g.float().square().flatten(1).sum(1) for g in grads)
        return (torch.sqrt(sq + 1e-12) - 1.0).square().mean()

    # -- declared capabilities ---------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def trained_networks(self) -> dict[str, torch.nn.Module]:
        return {"g": self.G, "d": self.D}

    # -- state -------------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "G_ema": self.G_ema.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict(),
                "images_shown": int(self.images_shown), "g_steps": int(self.g_steps)}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state["G_ema"])
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])
        self.images_shown = int(state["images_shown"])
        self.g_steps = int(state.get("g_steps", 0))

    def generator_module(self) -> torch.nn.Module:
        return self.G_ema

    # -- declared capabilities ---------------------------------------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"g": self.opt_g, "d": self.opt_d}

    def trained_networks(self) -> dict[str, torch.nn.Module]:
        return {"g": self.G, "d": self.D}

    def _d_full(self, x: torch.Tensor) -> torch.Tensor:
        """D's score of full-resolution images (the grown network, no fade)."""
        return self.D(x, self.max_level, 1.0)

    def discriminator_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Capability ``d_features``: the output of each of D's blocks (finest first) for
        images in [-1, 1] at the training resolution; differentiable with respect to
        the images."""
        feats: list[torch.Tensor] = []
        hooks = [self.D.blocks[k][1].register_forward_hook(
            lambda _m, _i, out: feats.append(out.float()))
            for k in range(self.max_level, 0, -1)]
        try:
            self._d_full(images.to(self.device).float())
        finally:
            for h in hooks:
                h.remove()
        return feats

    def load_weights(self, state: dict[str, Any]) -> None:
        """Capability ``finetune``: another run's G, D and averaged G, without its
        optimizers, counters or schedule position."""
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.G_ema.load_state_dict(state.get("G_ema", state["G"]))


class ProGAN(_WGANBase):
    """Progressive growing: 4x4 first, then each doubling faded in."""

    def __init__(self, config: dict, image_shape, device):
        super().__init__(config, image_shape, device)
        cfg = self.config
        table = parse_batch_sizes(cfg["batch_sizes"])
        self.schedule = Schedule(self.resolution, int(cfg["fade_images"]),
                                 int(cfg["stable_images"]), table, int(cfg["batch_size"]))
        self.reset_optimizer = bool(cfg["reset_optimizer"])
        self.pyramid: list[torch.Tensor] | None = None
        self.data_generator: torch.Generator | None = None
        self.flip = bool(cfg.get("flip", True))
        self._set_progress(0, self.schedule.at(0).alpha)

    #: The engine skips its own batch draw for models that set this (see attach_data).
    draws_own_batches = False

    @property
    def batch_size(self) -> int:
        return self.schedule.at(self.images_shown).phase.batch

    def attach_data(self, images: Any) -> None:
        """Prepare the data at every resolution once, on the data's device (uint8, 4/3 of
        the target-resolution set in all), and draw batches with its generator."""
        full = images.images
        levels = [full]
        for _ in range(self.max_level):
            src = levels[-1]
            half = torch.empty(src.shape[0], src.shape[1], src.shape[2] // 2,
                               src.shape[3] // 2, dtype=torch.uint8, device=src.device)
            step = max(1, (1 << 26) // max(1, src[0].numel()))  # chunks of ~256 MB in float
            for i in range(0, src.shape[0], step):
                chunk = src[i:i + step].float()
                half[i:i + step] = downscale2x(chunk).round_().clamp_(0, 255).to(torch.uint8)
            levels.append(half)
        self.pyramid = levels[::-1]  # 4x4 first
        self.data_generator = images.generator
        self.flip = bool(images.flip)
        self.draws_own_batches = True

    def _set_progress(self, phase_index: int, alpha: float) -> None:
        """Record the phase and alpha of the step just trained: status, samples and the
        exported generator describe the network as it was last trained."""
        self.phase_index, self.alpha = int(phase_index), float(alpha)
        level = self.schedule.phases[self.phase_index].level
        self.G.set_progress(level, self.alpha)
        self.G_ema.set_progress(level, self.alpha)

    def _real_batch(self, real, n: int, level: int, alpha: float) -> torch.Tensor:
        res = resolution_at(level)
        if self.pyramid is not None:
            imgs = self.pyramid[level]
            idx = torch.randint(0, imgs.shape[0], (n,), device=imgs.device,
                                generator=self.data_generator)
            x = imgs.index_select(0, idx).to(self.device, non_blocking=True)
            x = x.float().div_(127.5).sub_(1.0)
            if self.flip:
                mask = torch.rand(n, device=imgs.device, generator=self.data_generator) < 0.5
                x = torch.where(mask.to(self.device).view(n, 1, 1, 1), x.flip(3), x)
        elif real is not None:  # no attach_data: scale the given batch down
            x = real.float()
            if x.shape[-1] != res:
                x = F.avg_pool2d(x, x.shape[-1] // res)
        else:
            raise RuntimeError("ProGAN needs images: call attach_data() or pass a batch")
        if alpha < 1.0:  # fade the reals like the fakes: the coarse image scaled up
            x = torch.lerp(upscale2x(downscale2x(x)), x, alpha)
        return x

    def _step(self, real):
        pos = self.schedule.at(self.images_shown)
        phase = pos.phase
        if phase.level != self.schedule.phases[self.phase_index].level and self.reset_optimizer:
            self.opt_g.state.clear()  # a new resolution starts with fresh Adam moments
            self.opt_d.state.clear()
        level, alpha, n = phase.level, pos.alpha, phase.batch
        self._set_progress(phase.index, alpha)
        x = self._real_batch(real, n, level, alpha)
        z = torch.randn(n, self.latent_dim, device=self.device)
        G, D = self.network("g"), self.network("d")  # DDP wrappers in a distributed run
        fake = G(z, level, alpha)
        out = self._wgan_step(x, fake, lambda t: D(t, level, alpha))
        self.images_shown += n
        return out

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        return self.G_ema(z.to(self.device)).float().clamp_(-1, 1)

    def status(self) -> dict[str, float]:
        """The phase and alpha of the last step; images left counted from now."""
        phase = self.schedule.phases[self.phase_index]
        shown = self.images_shown
        into = min(max(shown - phase.start, 0), phase.images)
        return {"resolution": phase.resolution, "alpha": round(self.alpha, 6),
                "phase": phase.index, "phases": len(self.schedule.phases),
                "fading": int(phase.fading), "phase_progress": round(into / phase.images, 6),
                "images_left_phase": phase.images - into,
                "images_left_total": max(self.schedule.total_images - shown, 0),
                "images_shown": shown}

    def state_dict(self) -> dict[str, Any]:
        return {**super().state_dict(), "phase_index": self.phase_index, "alpha": self.alpha,
                "resolution": self.schedule.phases[self.phase_index].resolution}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        super().load_state_dict(state)
        index = int(state.get("phase_index", 0))
        if not 0 <= index < len(self.schedule.phases):
            raise ValueError(f"phase {index} is not in this schedule")
        self._set_progress(index, float(state.get("alpha", 1.0)))


class MSGGAN(_WGANBase):
    """Multi-scale gradients: every resolution trained at once, no growing."""

    multi_scale = True

    def _step(self, real):
        if real is None:
            raise RuntimeError("MSG-GAN needs a batch of real images")
        x = real.float()
        reals = [x]
        for _ in range(self.max_level):
            reals.append(downscale2x(reals[-1]))
        reals.reverse()  # 4x4 first, like the generator's outputs
        z = torch.randn(x.shape[0], self.latent_dim, device=self.device)
        G, D = self.network("g"), self.network("d")  # DDP wrappers in a distributed run
        fakes = G(z, all_scales=True)
        out = self._wgan_step(reals, fakes, D)
        self.images_shown += x.shape[0]
        return out

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        return self.G_ema(z.to(self.device), self.max_level, 1.0).float().clamp_(-1, 1)

    def status(self) -> dict[str, float]:
        return {"resolution": self.resolution, "images_shown": self.images_shown}

    def _d_full(self, x: torch.Tensor) -> torch.Tensor:
        reals = [x]
        for _ in range(self.max_level):
            reals.append(downscale2x(reals[-1]))
        return self.D(reals[::-1])


def _map(x, fn):
    return [fn(t) for t in x] if isinstance(x, list) else fn(x)


def _map2(a, b, fn):
    return [fn(s, t) for s, t in zip(a, b)] if isinstance(a, list) else fn(a, b)
