"""Built-in plugin: the studio's Explore tab for trained runs.

Seeds (a browser with pins and a truncation slider), interpolation strips and
seamless loop videos, projection of a picture into the model, the memorisation
check and the best checkpoint by KID. It works for every model whose spec
declares a latent space (``ModelSpec.latent``); the work is done by the Qt-free
explorer modules of ``ganstudio.core`` and the tab only shows it.

The tab enters through the ``ganstudio_studio_panels`` hook like any plugin's;
Qt is imported only when the studio builds the tab.
"""
from __future__ import annotations

import ganstudio
from ganstudio.panels import PanelSpec

__version__ = "1.0.0"
GANSTUDIO_PLUGIN_API = 1


def _make_panel(studio):
    from .panel import ExplorePanel      # imports Qt: only in the studio
    return ExplorePanel(studio)


@ganstudio.hookimpl
def ganstudio_studio_panels():
    return [PanelSpec(id="explore", title="Explore", factory=_make_panel, order=30)]
