"""GAN Studio plugin ``mlp_gan``: the fully connected GAN.

The original GAN of Goodfellow et al. (2014, "Generative Adversarial Nets") in
its common teaching form: a multilayer-perceptron generator (noise -> hidden
layers -> every pixel, tanh) and a multilayer-perceptron discriminator (every
pixel -> hidden layers -> one logit), trained with the non-saturating loss and
Adam. It ignores the image's 2-D structure, so it is best at small, centred,
grayscale images (digits, glyphs, icons); it is here to show how little a
plugin needs, not to compete with DCGAN.

This package lives in the GAN Studio repository as an example, but it is an
ordinary third-party package: it is found only through its entry point.
"""
from __future__ import annotations

import ganstudio
from ganstudio.core.model import GAN, LatentSpace, ModelSpec

from .model import MLPGAN, schema

__version__ = "1.0.0"
#: The plugin API this plugin is written for; GAN Studio refuses a mismatch with a clear message.
GANSTUDIO_PLUGIN_API = 1


@ganstudio.hookimpl
def ganstudio_register_models():
    return [ModelSpec(
        id="mlp-gan",
        name="Fully connected GAN (MLP)",
        kind=GAN,
        schema=schema(),
        factory=MLPGAN,
        help=("The original GAN with fully connected generator and discriminator. Learns "
              "small, centred images (e.g. 28 px grayscale digits); blurry beyond 32 px."),
        version=__version__,
        # what the studio and the engine may rely on (see plugins/PLUGINS.md)
        latent=LatentSpace(100, "gaussian", setting="latent_dim"),
        learning_rates={"lr_g": "g", "lr_d": "d"},
        test_settings={"g_width": 16, "d_width": 16},   # small networks for the kit
        capabilities=frozenset({"onnx", "ddp", "finetune"}),
    )]
