"""The conformance kit over every built-in plugin, exactly as a plugin author runs it.

Models are picked up from the installed entry points at collection time, so a
new built-in model is checked without touching this file. Models that need a
VGG-19 weights file (style transfer) get a small random one made here, with
their layers limited to what that file holds, and a generated style picture.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from ganstudio import testing as kit
from ganstudio.plugins import PluginManager

PM = PluginManager(load_folder=False)
BUILTIN = [info for info in PM.plugins.values() if info.source == "built-in"]
MODELS = [(info.name, spec) for info in BUILTIN if info.status == "ok" for spec in info.models]
VGG_LAYERS = "relu1_1,relu2_1,relu3_1"


def test_every_builtin_plugin_loads_through_its_entry_point():
    names = {info.name for info in BUILTIN}
    assert {"dcgan", "csvlog"} <= names
    for info in BUILTIN:
        assert info.status == "ok", f"{info.name}: {info.error}"
    assert {"dcgan"} <= {spec.id for _, spec in MODELS}


@pytest.fixture(scope="module")
def vgg_weights(tmp_path_factory) -> str | None:
    """Random VGG-19 features up to relu3_1 (fp16, a few hundred kB), made with the
    style plugin's own helper (a missing helper fails the style models' checks)."""
    try:
        import torch
        from ganstudio_style import vgg
        make = vgg.random_vgg_state
    except (ImportError, AttributeError):
        return None
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.pth"
    torch.save(make("relu3_1", seed=0, dtype=torch.float16), path)
    return str(path)


def _overrides(spec, vgg_weights: str | None, folder: Path) -> dict:
    if spec.field("vgg_weights") is None or vgg_weights is None:
        return {}
    out = {"vgg_weights": vgg_weights}
    style = spec.field("style")
    if style is not None and style.type == "str" and not style.default:
        # a list of style pictures as text: the kit only fills `path` settings itself
        from PIL import Image
        path = folder / "style_input.png"
        Image.fromarray(kit.tiny_images(1, 3, 16, seed=5)[0].permute(1, 2, 0).numpy()).save(path)
        out["style"] = str(path)
    if spec.field("style_layers") is not None:
        out["style_layers"] = VGG_LAYERS
    content = spec.field("content_layer")
    if content is not None and content.type == "choice" and "relu3_1" in content.choices:
        out["content_layer"] = "relu3_1"
    elif content is not None and content.type == "str":
        out["content_layer"] = "relu3_1"
    optimizer = spec.field("optimizer")
    if optimizer is not None and optimizer.type == "choice" and "adam" in optimizer.choices:
        # L-BFGS history is deliberately not checkpointed (GBs at full size), so only the
        # Adam path promises an exact resume
        out["optimizer"] = "adam"
    size = spec.field("size")
    if size is not None and size.type == "int":
        out["size"] = max(int(size.min or 16), 16)
    return out


@pytest.mark.parametrize("plugin, spec", MODELS, ids=[spec.id for _, spec in MODELS])
def test_builtin_model_passes_the_kit(plugin, spec, tmp_path: Path, vgg_weights):
    results = kit.check_model(spec, workdir=tmp_path, module=PM.plugins[plugin].module,
                              overrides=_overrides(spec, vgg_weights, tmp_path))
    report = kit.format_report(spec.id, results)
    names = ["schema", "build", "steps", "samples", "state", "declared", "resume"]
    if spec.kind in ("gan", "feedforward"):
        names.append("bf16")           # the default precision on CUDA GPUs and AMX CPUs
    if spec.kind == "gan" and spec.latent is not None:
        names.append("latent")         # the explorer: seeds, batch independence
        if spec.has("onnx"):
            names.append("onnx")
    assert [r.name for r in results] == names
    assert not [r for r in results if r.status == kit.FAIL], report
    # A built-in model that cannot be built here is a failure, never a skip.
    assert results[1].status == kit.PASS, report
    assert all(r.status in (kit.PASS, kit.WARN) for r in results), report


def test_csvlog_hooks_pass_the_kit(tmp_path: Path):
    results = kit.check_plugin(PM, "csvlog", workdir=tmp_path)
    assert [(r.name, r.status) for r in results] == [
        ("load", "pass"), ("hooks", "pass"), ("hooks", "pass")], \
        kit.format_report("csvlog", results)
    assert "0 models" in results[0].detail
    text = (tmp_path / "listener_run" / "metrics.csv").read_text()
    assert text == "step,time,loss_d,loss_g\n1,0.5,1.25,0.75\n2,1.0,1.0,0.5\n"
