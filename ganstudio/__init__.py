"""GAN Studio: train generative models on your own images and watch them learn.

The package is split in layers: ``ganstudio.core`` (Qt-free engine, data, run
folders), ``ganstudio.hookspecs`` / ``ganstudio.plugins`` (the pluggy plugin
system), ``ganstudio.gui`` (PySide6 views) and ``ganstudio.cli``.
"""

__version__ = "0.1.0"

#: Version of the plugin API. A plugin declares the version it was written
#: for as ``GANSTUDIO_PLUGIN_API = 1`` at module level; a mismatch is reported
#: on load and the plugin is not used.
PLUGIN_API_VERSION = 1

from ganstudio.hookspecs import hookimpl  # noqa: E402  (plugins write @ganstudio.hookimpl)

__all__ = ["__version__", "PLUGIN_API_VERSION", "hookimpl"]
