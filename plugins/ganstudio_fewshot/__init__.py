"""Built-in plugin: a few-shot GAN for 64-1024 px pictures from 100-5,000 images.

Written from the description in Liu, Zhu, Song and Elgammal, "Towards Faster and
Stabilized GAN Training for High-fidelity Few-shot Image Synthesis" (ICLR 2021):
skip-layer excitation and GLU in G, a discriminator that is also a
self-supervised auto-encoder, the hinge loss, DiffAugment and an averaged G.
Registered through the ``ganstudio.plugins`` entry point like any other plugin.
See :mod:`ganstudio_fewshot.networks` and :mod:`ganstudio_fewshot.model`.
"""
from __future__ import annotations

import ganstudio
from ganstudio.core.model import GAN, LatentSpace, ModelSpec

from .model import FewShotGAN, schema
from .networks import LATENT_DIM

__version__ = "1.0.0"
GANSTUDIO_PLUGIN_API = 1
MODEL_ID = "fewshot"

#: tiny widths for the conformance kit and the tests (64 px, the smallest resolution)
TEST_SETTINGS = {"g_features": 4, "d_features": 4, "batch_size": 4}
GANSTUDIO_TEST_SETTINGS = {MODEL_ID: TEST_SETTINGS}

HELP = (
    "Few-shot GAN after Liu et al. (ICLR 2021): 64-1024 px pictures from 100-5,000 of your "
    "images, with skip-layer excitation in G and a discriminator that also learns to "
    "rebuild the real images (which keeps it from memorising a small folder). The defaults "
    "(256 px, batch 8, augmentation on) are the paper's. On a GPU: the paper trained 1024 px "
    "at batch 8 on one 11 GB card in a few hours for 100 images; 256 and 512 px need less "
    "(not measured here yet; python -m ganstudio_fewshot.speedcheck measures images/s and "
    "peak memory per resolution). If a step runs out of memory, halve batch_size. On a "
    "CPU: resolution 64 with g_features 8 and d_features 8 (the README gives its speed and "
    "KID beside DCGAN on a 2-core CPU), and keep 256 px and above for a GPU."
)


@ganstudio.hookimpl
def ganstudio_register_models():
    return [ModelSpec(
        id=MODEL_ID,
        name="Few-shot GAN (FastGAN)",
        kind=GAN,
        schema=schema(),
        factory=FewShotGAN,
        help=HELP,
        version=__version__,
        latent=LatentSpace(LATENT_DIM, "gaussian"),
        learning_rates={"lr_g": "g", "lr_d": "d"},
        test_settings=dict(TEST_SETTINGS),
        capabilities=frozenset({"onnx", "d_features", "d_logits", "finetune", "ddp"}),
    )]
