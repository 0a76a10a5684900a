"""The latent space of a trained generator: seeds, truncation, interpolation, loops.

Everything here works from what a model declares: ``ModelSpec.latent`` (the
distribution, ``"gaussian"`` or ``"uniform"``) and ``GANModel.generator_module()``
(latents ``(N, dim)`` -> images in ``[-1, 1]``, the EMA copy where the model
keeps one).

A *seed* names one latent vector: it is drawn alone from its own generator, so
sample ``i`` of a batch equals the same seed drawn by itself, on any device
(latents are always drawn on the CPU and then moved).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable, Sequence

import numpy as np
import torch

from .errors import UserError
from .model import GAN, LatentSpace, ModelSpec

GAUSSIAN, UNIFORM = "gaussian", "uniform"
MAX_SEED = 2**32 - 1
#: Most seeds one list may name (a grid of 10,000 is already more than a screen holds).
MAX_SEEDS = 10_000


class LatentSpaceError(UserError):
    """The model has no latent space, or an operation does not fit its distribution."""


# -- seeds ----------------------------------------------------------------------------------------
def parse_seeds(text: str) -> list[int]:
    """``"0-63"``, ``"3,17,42"`` or a mix (``"0-3,10"``) -> a list of seeds, in order.

    Raises UserError naming the part that is not a seed or a range.
    """
    seeds: list[int] = []
    for part in str(text).replace(" ", "").split(","):
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m:
            raise UserError(f"'{part}' is not a seed or a range of seeds (e.g. 0-63 or 3,17,42)")
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        if hi < lo:
            raise UserError(f"seed range '{part}' ends before it starts")
        if hi > MAX_SEED:
            raise UserError(f"seed {hi} is larger than {MAX_SEED}")
        if len(seeds) + (hi - lo + 1) > MAX_SEEDS:
            raise UserError(f"'{text}' names more than {MAX_SEEDS:,} seeds")
        seeds.extend(range(lo, hi + 1))
    if not seeds:
        raise UserError("no seeds given (e.g. 0-63 or 3,17,42)")
    return seeds


def seed_latents(seeds: Iterable[int], dim: int, distribution: str = GAUSSIAN) -> torch.Tensor:
    """One latent per seed, (N, dim) float32 on the CPU; each drawn from its own generator."""
    rows = []
    for s in seeds:
        g = torch.Generator().manual_seed(int(s))
        if distribution == GAUSSIAN:
            rows.append(torch.randn(int(dim), generator=g))
        elif distribution == UNIFORM:
            rows.append(torch.rand(int(dim), generator=g) * 2 - 1)
        else:
            raise LatentSpaceError(f"unknown latent distribution '{distribution}'")
    if not rows:
        return torch.zeros(0, int(dim))
    return torch.stack(rows)


def random_latents(n: int, dim: int, distribution: str = GAUSSIAN, seed: int = 0) -> torch.Tensor:
    """``n`` latents for a random walk, reproducible by ``seed`` (seeds seed*1000003 + i)."""
    base = (int(seed) * 1_000_003) % (MAX_SEED - n)
    return seed_latents(range(base, base + int(n)), dim, distribution)


# -- truncation and interpolation ---------------------------------------------------------------
def truncate(z: torch.Tensor, psi: float, distribution: str = GAUSSIAN) -> torch.Tensor:
    """Pull latents toward the mean of the distribution: ``mean + psi * (z - mean)``.

    Defined for Gaussian latents only (mean 0): psi 1 changes nothing, psi 0 gives
    the mean image; smaller psi trades variety for fidelity.
    """
    if psi == 1.0:
        return z
    if distribution != GAUSSIAN:
        raise LatentSpaceError("truncation applies to Gaussian latents only; this model's "
                               f"latents are {distribution}")
    return z * float(psi)


def lerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    return a + (b - a) * t


def slerp(a: torch.Tensor, b: torch.Tensor, t: float | torch.Tensor) -> torch.Tensor:
    """Spherical interpolation along the last dimension (norms interpolated linearly),
    so a path between Gaussian latents keeps a typical norm instead of crossing the
    low-density middle. Falls back to lerp for (anti)parallel vectors."""
    t = torch.as_tensor(t, dtype=a.dtype)
    na, nb = a.norm(dim=-1, keepdim=True), b.norm(dim=-1, keepdim=True)
    ua, ub = a / na.clamp_min(1e-12), b / nb.clamp_min(1e-12)
    cos = (ua * ub).sum(-1, keepdim=True).clamp(-1.0, 1.0)
    omega = torch.acos(cos)
    so = torch.sin(omega)
    if float(so.abs().min()) < 1e-6:
        return lerp(a, b, t)
    direction = (torch.sin((1 - t) * omega) * ua + torch.sin(t * omega) * ub) / so
    return direction * lerp(na, nb, t)


def interpolate(a: torch.Tensor, b: torch.Tensor, t: float, distribution: str = GAUSSIAN
                ) -> torch.Tensor:
    """slerp for Gaussian latents, lerp otherwise."""
    return slerp(a, b, t) if distribution == GAUSSIAN else lerp(a, b, t)


def path_latents(keys: torch.Tensor, steps: int, distribution: str = GAUSSIAN) -> torch.Tensor:
    """An open path through ``keys`` (K, dim): ``steps`` points, first key to last key."""
    keys = torch.as_tensor(keys, dtype=torch.float32)
    if keys.shape[0] < 2:
        raise LatentSpaceError("a path needs at least two points")
    if steps < 2:
        return keys[:1].clone()
    out = []
    segs = keys.shape[0] - 1
    for i in range(steps):
        pos = i * segs / (steps - 1)
        k = min(int(pos), segs - 1)
        out.append(interpolate(keys[k], keys[k + 1], pos - k, distribution))
    return torch.stack(out)


def loop_point(keys: torch.Tensor, u: float, distribution: str = GAUSSIAN,
               ease: bool = False) -> torch.Tensor:
    """The point at fraction ``u`` of a closed loop through ``keys`` (K, dim).

    ``u`` = 1 is ``u`` = 0 again (the loop closes on its first key). With ``ease``
    each segment starts and ends slowly (a cosine ease).
    """
    k_count = keys.shape[0]
    pos = (float(u) % 1.0) * k_count
    k = int(pos) % k_count
    t = pos - int(pos)
    if ease:
        t = 0.5 - 0.5 * math.cos(math.pi * t)
    return interpolate(keys[k], keys[(k + 1) % k_count], t, distribution)


def loop_latents(keys: torch.Tensor, frames: int, distribution: str = GAUSSIAN,
                 ease: bool = False) -> torch.Tensor:
    """``frames`` latents of a seamless loop through ``keys``: frame ``i`` is at
    ``i / frames`` of the way round, so the frame after the last is the first."""
    keys = torch.as_tensor(keys, dtype=torch.float32)
    if keys.shape[0] < 2:
        raise LatentSpaceError("a loop needs at least two points")
    if frames < 1:
        raise UserError("a loop needs at least one frame")
    return torch.stack([loop_point(keys, i / frames, distribution, ease) for i in range(frames)])


# -- latent files (a projection's result, accepted wherever seeds are) ---------------------------
def save_latent(path: str | Path, z: torch.Tensor) -> Path:
    """Write one latent (dim,) or several (N, dim) as a NumPy ``.npy`` file (no pickle)."""
    path = Path(path)
    np.save(path, z.detach().cpu().float().numpy(), allow_pickle=False)
    return path


def load_latent(path: str | Path, dim: int) -> torch.Tensor:
    """Latents (N, dim) from a ``.npy`` file written by :func:`save_latent`; UserError naming
    the file when it cannot be read or has another size."""
    path = Path(path)
    try:
        arr = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as e:
        raise UserError(f"cannot read latent file {path}: {e}") from None
    z = torch.from_numpy(np.asarray(arr, dtype=np.float32)).reshape(-1, arr.shape[-1]) \
        if arr.ndim else None
    if z is None or z.shape[-1] != int(dim) or not torch.isfinite(z).all():
        raise UserError(f"latent file {path} does not hold latents of size {dim} "
                        f"(found shape {tuple(arr.shape)})")
    return z


def parse_keys(text: str, dim: int, distribution: str = GAUSSIAN) -> tuple[torch.Tensor, list[str]]:
    """Key points of a path from ``"3,17,42"``, ranges, and ``.npy`` latent files
    (``"3,out/latent.npy,42"``): (K, dim) latents and a label for each."""
    rows, labels = [], []
    for part in [p.strip() for p in str(text).split(",") if p.strip()]:
        if part.lower().endswith(".npy"):
            z = load_latent(part, dim)
            rows.append(z)
            labels += [Path(part).name] * z.shape[0]
        else:
            seeds = parse_seeds(part)
            rows.append(seed_latents(seeds, dim, distribution))
            labels += [f"seed {s}" for s in seeds]
    if not rows:
        raise UserError("no seeds or latent files given")
    return torch.cat(rows), labels


# -- a trained generator, ready to explore --------------------------------------------------------
@dataclass
class Explorer:
    """A trained generator and its latent space: latents in, images in [-1, 1] out."""

    spec: ModelSpec
    model: Any
    latent: LatentSpace
    dim: int
    device: torch.device
    step: int | None = None
    checkpoint: Path | None = None

    @property
    def distribution(self) -> str:
        return self.latent.distribution

    def network(self) -> torch.nn.Module:
        """The generator in eval mode (BatchNorm uses its running statistics, so a
        sample does not depend on the others in its batch)."""
        net = self.model.generator_module()
        net.eval()
        return net

    @torch.no_grad()
    def images(self, z: torch.Tensor, batch: int = 32) -> torch.Tensor:
        """Images in [-1, 1] (float32, CPU) for latents ``z`` (N, dim)."""
        net = self.network()
        out = [net(z[i:i + batch].to(self.device)).float().cpu()
               for i in range(0, z.shape[0], batch)]
        return torch.cat(out) if out else torch.zeros(0)

    def image_shape(self) -> tuple[int, int, int]:
        """(C, H, W) of the generator's images (one latent is drawn to see)."""
        return tuple(self.images(torch.zeros(1, self.dim)).shape[1:])

    def seeds(self, seeds: Sequence[int], psi: float = 1.0) -> torch.Tensor:
        """Latents for ``seeds`` with truncation ``psi``."""
        return truncate(seed_latents(seeds, self.dim, self.distribution), psi, self.distribution)

    def seed_images(self, seeds: Sequence[int], psi: float = 1.0, batch: int = 32) -> torch.Tensor:
        return self.images(self.seeds(seeds, psi), batch=batch)


def latent_dim(spec: ModelSpec, model: Any) -> int:
    """The generator's latent size: the value of the setting the spec's LatentSpace
    names (``setting``) in the built model's config, else the declared ``dim``."""
    return int(spec.latent.size(getattr(model, "config", None)))


def explorer_for(spec: ModelSpec, model: Any, device: str | torch.device = "cpu",
                 step: int | None = None, checkpoint: Path | None = None) -> Explorer:
    """Wrap a built model; LatentSpaceError when its spec declares no latent space."""
    if spec.kind != GAN or spec.latent is None:
        raise LatentSpaceError(f"model '{spec.id}' declares no latent space; seeds, "
                               "interpolation and projection need one")
    if spec.latent.distribution not in (GAUSSIAN, UNIFORM):
        raise LatentSpaceError(f"model '{spec.id}' declares an unknown latent distribution "
                               f"'{spec.latent.distribution}'")
    return Explorer(spec, model, spec.latent, latent_dim(spec, model), torch.device(device),
                    step, checkpoint)


def load_explorer(run_dir: str | Path, plugin_manager: Any, device: str | torch.device = "cpu",
                  checkpoint: str | int | None = "last", warn=None) -> Explorer:
    """The run's generator from its newest checkpoint (``"last"``), the best-KID one
    (``"best"``, see :mod:`ganstudio.core.best`) or a step number."""
    from .explore_state import resolve_checkpoint
    from .inference import load_trained
    from .runs import RunFolder
    RunFolder(run_dir).read_info()  # a folder that is not a run fails here, by name
    path = resolve_checkpoint(run_dir, checkpoint)
    spec, model, state = load_trained(run_dir, plugin_manager, device=device, warn=warn,
                                      checkpoint=path)
    return explorer_for(spec, model, device, step=state.get("step"), checkpoint=path)
