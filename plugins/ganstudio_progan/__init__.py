"""Built-in plugin: progressive GAN and MSG-GAN.

* ``progan``: Karras, Aila, Laine and Lehtinen, "Progressive Growing of GANs
  for Improved Quality, Stability, and Variation" (ICLR 2018). Generator and
  discriminator grow from 4x4 to the target resolution, each new block faded
  in; pixel norm, equalized learning rate, minibatch standard deviation,
  WGAN-GP with drift, Adam (0, 0.99), a moving average of G for samples.
* ``msggan``: Karnewar and Wang, "MSG-GAN: Multi-Scale Gradients for
  Generative Adversarial Networks" (CVPR 2020). The same networks without
  growing: G emits an image at every scale and D reads them all, so every
  resolution trains from the first step.

Registered through the ``ganstudio.plugins`` entry point like any third-party
plugin.
"""
from __future__ import annotations

import ganstudio
from ganstudio.core.config import resolve_config
from ganstudio.core.model import GAN, LatentSpace, ModelSpec

from .model import MSGGAN, ProGAN, msggan_schema, progan_schema
from .schedule import Schedule, parse_batch_sizes

__version__ = "1.0.0"
GANSTUDIO_PLUGIN_API = 1

#: Small settings for the conformance kit (``ganstudio plugins --check progan``):
#: tiny widths and a schedule short enough that its few steps cross a fade-in.
_TINY = {"resolution": 16, "channel_max": 8, "channel_base": 64, "latent_dim": 8}
_PROGAN_TEST = {**_TINY, "fade_images": 8, "stable_images": 4, "batch_sizes": "4:4"}
_SHARED = dict(latent=LatentSpace(256, "gaussian", setting="latent_dim"),
               learning_rates={"lr": ("g", "d")}, version=__version__)


def schedule_for(config: dict) -> Schedule:
    """The growth schedule a ProGAN config gives (for steps and time estimates)."""
    return Schedule(int(config["resolution"]), int(config["fade_images"]),
                    int(config["stable_images"]), parse_batch_sizes(config["batch_sizes"]),
                    int(config["batch_size"]))


@ganstudio.hookimpl
def ganstudio_register_models():
    default_steps = schedule_for(resolve_config(progan_schema())).steps()
    return [
        ModelSpec(
            id="progan",
            name="Progressive GAN",
            kind=GAN,
            schema=progan_schema(),
            factory=ProGAN,
            help=("Progressive growing (Karras et al. 2018): starts at 4x4 and fades in each "
                  "doubling up to the target resolution (default 128 px). Stable at high "
                  f"resolution. With the defaults the whole schedule to 128 px takes "
                  f"{default_steps:,} steps (4.4 million images); set --steps to at least that. "
                  "On several processes the schedule counts each process's images."),
            test_settings=_PROGAN_TEST,
            capabilities=frozenset({"onnx", "d_features", "finetune", "ddp"}),
            **_SHARED,
        ),
        ModelSpec(
            id="msggan",
            name="MSG-GAN (multi-scale gradients)",
            kind=GAN,
            schema=msggan_schema(),
            factory=MSGGAN,
            help=("Multi-scale gradients (Karnewar and Wang 2020): the ProGAN networks without "
                  "growing; the generator's image at every scale goes to the discriminator, "
                  "so all resolutions learn at once. No schedule to tune. Made for a GPU: "
                  "at the defaults (128 px, batch 32) a step takes minutes on a 2-core CPU; "
                  "for a CPU try DCGAN, or a lower resolution and channel_max."),
            test_settings=dict(_TINY),
            capabilities=frozenset({"onnx", "ddp", "d_features", "finetune"}),
            **_SHARED,
        ),
    ]
