"""Built-in plugin: neural style transfer.

Two models:

* ``style-transfer`` (kind ``image2image``): the optimisation method of Gatys,
  Ecker and Bethge (2016) on VGG-19 features: content + Gram-matrix style +
  total variation, L-BFGS or Adam, coarse-to-fine for large outputs, blended
  styles, colour preservation by luminance-only transfer.
* ``fast-style`` (kind ``feedforward``, trained on a folder of content images): the
  feed-forward network of Johnson, Alahi and Fei-Fei (2016), trained for one
  style by the same engine, then applied to any picture in one pass.

The studio's "Style transfer" tab comes from this package too (:mod:`.panel`,
offered by ``ganstudio_studio_panels``; Qt is imported only there). GAN Studio
itself reaches these models only through their specs and the declared model
interfaces: no module of this package is fetched by model id.
"""
from __future__ import annotations

import ganstudio
from ganstudio.core.model import FEEDFORWARD, IMAGE_TO_IMAGE, ModelSpec

__version__ = "1.0.0"
GANSTUDIO_PLUGIN_API = 1


def _style_transfer(config, image_shape, device):
    from .gatys import StyleTransferJob
    return StyleTransferJob(config, image_shape, device)


def _fast_style(config, image_shape, device):
    from .fast import FastStyleModel
    return FastStyleModel(config, image_shape, device)


@ganstudio.hookimpl
def ganstudio_register_models():
    from . import fast, gatys
    return [
        ModelSpec(
            id="style-transfer", name="Style transfer (Gatys)", kind=IMAGE_TO_IMAGE,
            schema=gatys.schema(), factory=_style_transfer, version=__version__,
            help=("Repaint a content picture in the style of one or more style pictures by "
                  "optimising the image itself against VGG-19 features (Gatys et al.). "
                  "Needs VGG-19 weights."),
        ),
        ModelSpec(
            id=fast.MODEL_ID, name="Fast style network (Johnson)", kind=FEEDFORWARD,
            schema=fast.schema(), factory=_fast_style, version=__version__,
            learning_rates={"lr": "net"},
            capabilities=frozenset({"onnx"}),   # image -> image, any size (export_run)
            help=("Train a small image-transformation network for one style on a folder of "
                  "content pictures (perceptual losses, Johnson et al.), then stylize any "
                  "picture in one pass with 'ganstudio stylize --net RUN'."),
        ),
    ]


@ganstudio.hookimpl
def ganstudio_studio_panels():
    from ganstudio.panels import PanelSpec

    def make_panel(studio):
        from .panel import StylePanel   # imports Qt: only when the studio builds the tab
        return StylePanel(studio)
    return [PanelSpec(id="style-transfer", title="Style transfer", factory=make_panel, order=50)]
