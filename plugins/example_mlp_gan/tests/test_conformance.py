"""The GAN Studio conformance kit, run on this plugin: ``python -m pytest tests``."""
from ganstudio.testing import PluginConformance


class TestMLPGAN(PluginConformance):
    plugin = "mlp_gan"  # the entry-point name in pyproject.toml
