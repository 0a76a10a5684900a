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

from dataclasses import dataclass, field as dc_field
from typing import Any, Callable, Mapping, Sequence

import torch

from .config import Field

GAN = "gan"
IMAGE_TO_IMAGE = "image2image"
#: a feed-forward image-to-image network trained on a folder (e.g. fast style):
#: trained by the engine like a GAN, but no latent space and no GAN monitors.
FEEDFORWARD = "feedforward"
KINDS = (GAN, IMAGE_TO_IMAGE, FEEDFORWARD)
#: kinds the engine trains on an image folder
FOLDER_KINDS = (GAN, FEEDFORWARD)


@dataclass(frozen=True)
class LatentSpace:
    """The latent space of a GAN's generator, declared on its :class:`ModelSpec`.

    dim:          length of one latent vector (the generator takes (N, dim)).
    distribution: ``"gaussian"`` (standard normal: truncation toward the mean and
                  spherical interpolation make sense) or ``"uniform"`` (in [-1, 1];
                  linear interpolation).
    """

    dim: int
    distribution: str = "gaussian"
    #: the setting that holds the dimension when it is configurable (e.g.
    #: ``"latent_dim"``); ``dim`` is then its default.
    setting: str = ""

    def size(self, config: Mapping[str, Any] | None = None) -> int:
        """The dimension for ``config`` (the setting's value when there is one)."""
        if self.setting and config and self.setting in config:
            return int(config[self.setting])
        return int(self.dim)


#: Capability names a :class:`ModelSpec` may declare in ``capabilities``.
#: ``onnx``: ``export_generator()`` traces to ONNX (batch of latents -> images).
#: ``ddp``: ``trained_networks()`` may be wrapped in DistributedDataParallel.
#: ``capturable``: ``train_step`` is free of host syncs and data-dependent
#: control flow, so it may be captured as a CUDA graph.
#: ``d_features``: the model implements ``discriminator_features(x)``.
#: ``d_logits``: the model implements ``discriminate(x)`` (D's logits), which
#: the balance alarm uses to tell whether D wins or memorises.
#: ``finetune``: ``load_weights(state)`` starts a new run from another run's
#: networks (no optimizer state, no counters).
CAPABILITIES = ("onnx", "ddp", "capturable", "d_features", "d_logits", "finetune")


@dataclass
class ModelSpec:
    """A model offered by a plugin.

    id:        stable identifier used on the command line and in run.json.
    name:      display name in the studio.
    kind:      :data:`GAN` (trained on a folder, latent space, GAN monitors),
               :data:`FEEDFORWARD` (an image-to-image network trained on a folder:
               no latent space, no GAN monitors) or :data:`IMAGE_TO_IMAGE` (one
               optimisation on given images). A plugin rejects a bad combination of
               settings by raising :class:`ganstudio.core.errors.UserError` (or
               ``ConfigError``) from the factory: the CLI prints its message on one
               line and exits 2, the studio shows it.
    schema:    list of :class:`~ganstudio.core.config.Field`; the settings form.
    factory:   ``factory(config, image_shape, device) -> model``.
    help:      one paragraph shown in the studio and by ``ganstudio plugins``.
    version:   model version; stored in run.json and checkpoints.
    latent:    the generator's :class:`LatentSpace` (GANs), or None.
    learning_rates: the settings that are learning rates, and the optimizers (names
               from ``GANModel.optimizers()``) each one sets: a mapping
               ``{"lr_g": "g", "lr_d": "d"}`` or ``{"lr": ("g", "d"), "ttur_mult": "d"}``
               (an optimizer's rate is proportional to every setting that names it),
               or a plain sequence whose settings each set every optimizer (fine for a
               single ``"lr"``). On resume a changed setting scales its optimizers by
               new / old; a roll back halves them (see :meth:`lr_targets`).
    test_settings: settings that make the model tiny and fast for the
               conformance kit (e.g. ``{"g_features": 4, "resolution": 16}``).
    capabilities: a subset of :data:`CAPABILITIES`.
    quick_settings: settings for a quick first look on a CPU (smaller images,
               narrower networks); the studio's demo and the run-time estimate's
               faster alternatives use them.
    """

    id: str
    name: str
    kind: str
    schema: Sequence[Field]
    factory: Callable[..., Any]
    help: str = ""
    version: str = "1"
    latent: LatentSpace | None = None
    learning_rates: Sequence[str] | Mapping[str, str | Sequence[str]] = ()
    test_settings: dict[str, Any] = dc_field(default_factory=dict)
    capabilities: frozenset[str] = frozenset()
    quick_settings: dict[str, Any] = dc_field(default_factory=dict)
    plugin: str = ""  # filled in by the plugin manager

    def has(self, capability: str) -> bool:
        """True when the spec declares ``capability`` (one of :data:`CAPABILITIES`)."""
        return capability in self.capabilities

    def lr_targets(self) -> dict[str, tuple[str, ...]]:
        """Each learning-rate setting and the optimizer names it sets; ``()`` = all."""
        if isinstance(self.learning_rates, Mapping):
            out = {}
            for key, names in self.learning_rates.items():
                out[str(key)] = (names,) if isinstance(names, str) else tuple(names)
            return out
        return {str(key): () for key in self.learning_rates}

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
    #: True when the model draws its own batches (e.g. at several resolutions)
    #: and ``train_step`` receives None instead of a real batch.
    draws_own_batches: bool = False

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
    @torch.no_grad()
    def sample(self, z: torch.Tensor) -> torch.Tensor:
        """Images for latents ``z`` as (N, C, h, w) in [-1, 1] (h, w may be < H, W).

        The engine calls it during training (the sample grid, the balance alarm,
        KID/FID) with its random state isolated: noise drawn here never shifts
        the training streams. The same latents must give the same images.

        The default runs :meth:`generator_module` (the network an export holds, an
        average of G's weights when the model keeps one) in eval mode, and puts its
        mode back; a model whose sampling differs overrides it.
        """
        g = self.generator_module()
        was_training = g.training
        g.eval()
        try:
            return g(z.to(self.device)).float()
        finally:
            g.train(was_training)

    def status(self) -> dict[str, float]:
        """Cheap host-side numbers added to each metrics line (e.g. resolution, alpha)."""
        return {}

    def effective_config(self) -> dict[str, Any]:
        """The settings as the model applies them (e.g. ``auto`` replaced by its preset's
        value). The balance alarm compares its advice with these so it never suggests
        what the run already uses."""
        return dict(self.config)

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
        """The network exported as "the trained generator" (the EMA copy if any).

        It maps latents (N, latent.dim) to images (N, C, H, W) in [-1, 1]; the
        same network ``sample`` uses, so the live grid shows what an export
        holds (an average that starts late must already be what ``sample``
        uses). Export (safetensors / pt / ONNX) and the explorer use it; the
        engine never trains through it (it trains ``trained_networks()``).
        """
        raise NotImplementedError

    # -- declared capabilities (see ModelSpec.capabilities) -----------------------------------
    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        """The model's optimizers by name (e.g. ``{"g": opt_g, "d": opt_d}``).

        The engine scales their learning rates on roll back and reapplies the
        spec's ``learning_rates`` settings on resume; it never searches the
        model's attributes for them.
        """
        return {}

    def trained_networks(self) -> dict[str, torch.nn.Module]:
        """The networks the optimizers train, by name (e.g. ``{"g": G, "d": D}``).

        With capability ``ddp`` the engine wraps these for distributed training
        and hands the wrappers back through :meth:`use_wrapped_networks`;
        ``train_step`` calls them through :meth:`network`.
        """
        return {}

    def use_wrapped_networks(self, wrapped: dict[str, torch.nn.Module]) -> None:
        """Capability ``ddp``: the engine's DistributedDataParallel wrappers of
        :meth:`trained_networks`, by the same names (called once, before training)."""
        self._wrapped_networks = dict(wrapped)

    def network(self, name: str) -> torch.nn.Module:
        """The trained network ``name`` as ``train_step`` calls it: its wrapper in a
        distributed run (so its gradients are averaged across processes), else itself.
        Optimizers, state_dict and sampling keep using the plain network."""
        wrapped = getattr(self, "_wrapped_networks", None)
        if wrapped and name in wrapped:
            return wrapped[name]
        return self.trained_networks()[name]

    def discriminate(self, images: torch.Tensor) -> torch.Tensor:
        """Capability ``d_logits``: the discriminator's logits (N,) for images in
        [-1, 1] (positive = judged real), without training anything."""
        raise NotImplementedError

    def discriminator_features(self, images: torch.Tensor) -> list[torch.Tensor]:
        """Capability ``d_features``: intermediate discriminator features of
        images in [-1, 1], for projecting a real picture into the latent space."""
        raise NotImplementedError

    def load_weights(self, state: dict[str, Any]) -> None:
        """Capability ``finetune``: take another run's network weights (from a
        checkpoint's model state) without its optimizers or counters."""
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
