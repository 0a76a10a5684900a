"""What a model plugin provides: a :class:`ModelSpec` and a model object.

A plugin's ``ganstudio_register_models`` hook returns ModelSpecs. The engine
calls ``spec.factory(config, image_shape, device)`` to build a model that
follows :class:`GANModel` (kind ``"gan"``, trained on an image folder) or
:class:`ImageJob` (kind ``"image2image"``, e.g. style transfer: one
optimisation on given images).

The model surface is small on purpose: build, one training step that returns
*detached tensors* (never ``.item()``: that is a GPU sync), sample from given
latents, and state_dict / load_state_dict that include the optimizers.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Sequence

import torch

from .config import Field

GAN = "gan"
IMAGE_TO_IMAGE = "image2image"


@dataclass
class ModelSpec:
    """A model offered by a plugin.

    id:        stable identifier used on the command line and in run.json.
    name:      display name in the studio.
    kind:      ``"gan"`` (trained on a folder) or ``"image2image"``.
    schema:    list of :class:`~ganstudio.core.config.Field`; the settings form.
    factory:   ``factory(config, image_shape, device) -> model``.
    help:      one paragraph shown in the studio and by ``ganstudio plugins``.
    version:   model version; stored in run.json and checkpoints.
    """

    id: str
    name: str
    kind: str
    schema: Sequence[Field]
    factory: Callable[..., Any]
    help: str = ""
    version: str = "1"
    plugin: str = ""  # filled in by the plugin manager

    def field(self, name: str) -> Field | None:
        for f in self.schema:
            if f.name == name:
                return f
        return None


class GANModel:
    """Base class (and documentation) of a folder-trained model.

    Subclasses set ``self.config``, ``self.device``, ``self.image_shape``
    and implement the methods below. ``image_shape`` is ``(C, H, W)``; real
    batches arrive as float tensors in ``[-1, 1]`` on ``self.device``.
    """

    kind = GAN
    latent_dim: int = 100

    def __init__(self, config: dict, image_shape: tuple[int, int, int], device: torch.device):
        self.config = dict(config)
        self.image_shape = tuple(image_shape)
        self.device = torch.device(device)

    # -- what the engine calls, in the training thread ---------------------------------------
    @property
    def batch_size(self) -> int:
        """Images the next step wants. May change during training (ProGAN)."""
        return int(self.config["batch_size"])

    def train_step(self, real: torch.Tensor) -> dict[str, torch.Tensor]:
        """One update of D and G on ``real`` (N, C, H, W) in [-1, 1].

        Returns named scalar tensors, detached, on the device. No ``.item()``.
        """
        raise NotImplementedError

    def make_latents(self, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """Latent vectors for ``n`` samples (on ``self.device``)."""
        z = torch.randn(n, self.latent_dim, generator=generator, device="cpu")
        return z.to(self.device)

    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images for latents ``z`` as (N, C, h, w) in [-1, 1] (h, w may be < H, W)."""
        raise NotImplementedError

    def status(self) -> dict[str, float]:
        """Cheap host-side numbers added to each metrics line (e.g. resolution, alpha)."""
        return {}

    def attach_data(self, images: Any) -> None:
        """Called once with the :class:`~ganstudio.core.data.DeviceImages` before training.

        Models that need the data at several resolutions (ProGAN) prepare it here.
        """

    def state_dict(self) -> dict[str, Any]:
        """Everything needed to resume: networks, optimizers, counters."""
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError

    def generator_module(self) -> torch.nn.Module:
        """The network exported as "the trained generator" (the EMA copy if any)."""
        raise NotImplementedError


class ImageJob:
    """Base class of an image-to-image job (kind ``"image2image"``).

    The engine calls :meth:`train_step` with ``None`` until the step budget is
    reached; :meth:`preview` gives the current image for the live view and the
    samples folder; :meth:`result` gives the final (or best so far) image.
    Inputs (content / style paths) come in through the config.
    """

    kind = IMAGE_TO_IMAGE
    batch_size = 1

    def __init__(self, config: dict, image_shape: tuple[int, int, int] | None,
                 device: torch.device):
        self.config = dict(config)
        self.device = torch.device(device)

    def train_step(self, real: None = None) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    @torch.no_grad()
    def preview(self) -> torch.Tensor:
        """Current image(s), (N, C, H, W) in [-1, 1]."""
        raise NotImplementedError

    def result(self) -> torch.Tensor:
        return self.preview()

    def status(self) -> dict[str, float]:
        return {}

    def state_dict(self) -> dict[str, Any]:
        raise NotImplementedError

    def load_state_dict(self, state: dict[str, Any]) -> None:
        raise NotImplementedError
