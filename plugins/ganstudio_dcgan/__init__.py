"""Built-in plugin: DCGAN (Radford, Metz and Chintala, 2016).

Registered through the ``ganstudio.plugins`` entry point like any third-party
plugin. The networks follow the classic PyTorch DCGAN example: transposed
convolutions in G, strided convolutions in D, BatchNorm, ReLU / LeakyReLU 0.2,
N(0, 0.02) initialisation, latent size 100, Adam (2e-4, betas 0.5 / 0.999).
The resolution (32, 64 or 128) sets the number of up/down-sampling blocks.

The ``default`` preset adds the small-data tools of :mod:`ganstudio.core.gan_tools`
(DiffAugment, spectral norm, hinge loss, an averaged generator); the ``classic``
preset is the example's recipe unchanged. See :mod:`ganstudio_dcgan.model`.
"""
from __future__ import annotations

import ganstudio
from ganstudio.core.model import GAN, LatentSpace, ModelSpec

from .model import DCGAN, schema

__version__ = "1.0.0"
GANSTUDIO_PLUGIN_API = 1


@ganstudio.hookimpl
def ganstudio_register_models():
    return [ModelSpec(
        id="dcgan",
        name="DCGAN",
        kind=GAN,
        schema=schema(),
        factory=DCGAN,
        help=("Deep convolutional GAN: the classic, fast architecture. A good first model for "
              "a folder of a few hundred to a few thousand images at 32-128 px."),
        version=__version__,
        latent=LatentSpace(100, "gaussian", setting="latent_dim"),
        learning_rates={"lr_g": "g", "lr_d": "d"},
        test_settings={"g_features": 8, "d_features": 8},
        capabilities=frozenset({"onnx", "ddp", "d_features", "d_logits", "finetune"}),
        # light enough that a 2-core CPU shows a GAN learning within minutes
        quick_settings={"resolution": 32, "batch_size": 16, "g_features": 32, "d_features": 32},
    )]


def _classic_settings(resolution: int, batch_size: int, features: int,
                      channels_last: bool | None = None) -> dict:
    """The example's networks (both ``features`` wide) trained with its recipe."""
    settings = {"resolution": resolution, "batch_size": batch_size, "g_features": features,
                "d_features": features, "preset": "classic"}
    if channels_last is not None:
        settings["channels_last"] = bool(channels_last)
    return settings


@ganstudio.hookimpl
def ganstudio_benchmark_references():
    """DCGAN is the studio's side of the benchmark against the classic example script:
    the same architecture, so the classic loop trains this model's own G and D."""
    from ganstudio.bench.reference import BenchmarkReference
    return [BenchmarkReference(model_id="dcgan", settings=_classic_settings,
                               networks=lambda model: (model.G, model.D))]
