"""Exports for other tools: ONNX (checked in onnxruntime), safetensors and pt, by checkpoint."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn as nn

import explore_support as es
from ganstudio.core.errors import CheckpointError, UserError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    base = tmp_path_factory.mktemp("onnx_run")
    es.write_training_images(base / "images", 8)
    pm = es.plugin_manager()
    run = es.train_run(base / "run", base / "images", pm, steps=20, checkpoint_every=10)
    return run, pm


def test_onnx_generator_has_a_dynamic_batch_and_matches_torch(trained, tmp_path):
    import onnxruntime as ort
    from ganstudio.core.exporting import export_run
    from ganstudio.core.latents import load_explorer
    run, pm = trained
    result = export_run(run, pm, tmp_path / "g.onnx", "onnx")
    assert result.path == tmp_path / "g.onnx" and result.kind == "generator"
    assert result.max_abs_diff is not None and result.max_abs_diff < 1e-3
    assert [p.name for p in tmp_path.iterdir()] == ["g.onnx"]
    session = ort.InferenceSession(str(result.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["latent"]
    assert [o.name for o in session.get_outputs()] == ["image"]
    explorer = load_explorer(run, pm)
    for n in (1, 7):
        z = explorer.seeds(range(n))
        out = session.run(None, {"latent": z.numpy()})[0]
        assert out.shape == (n, 3, 8, 8)
        assert out.min() >= 0 and out.max() <= 1
        want = ((explorer.images(z) + 1) / 2).numpy()
        assert np.abs(out - want).max() < 1e-4


def test_image_to_image_onnx_has_dynamic_size_and_conventional_names(tmp_path):
    import onnxruntime as ort
    from ganstudio.core.onnx_export import export_image_net_onnx
    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.InstanceNorm2d(8, affine=True),
                        nn.ReLU(), nn.Conv2d(8, 3, 3, padding=1), nn.Sigmoid()).eval()
    report = export_image_net_onnx(net, 3, tmp_path / "style.onnx", size=16)
    assert report.max_abs_diff < 1e-3 and len(report.checked_shapes) == 3
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].name == "input" and session.get_outputs()[0].name == "output"
    x = torch.rand(3, 3, 21, 34)
    out = session.run(None, {"input": x.numpy()})[0]
    with torch.no_grad():
        want = net(x).clamp(0, 1).numpy()
    assert out.shape == (3, 3, 21, 34) and np.abs(out - want).max() < 1e-4


def test_a_mismatching_export_is_not_written(tmp_path):
    from ganstudio.core import onnx_export
    net = nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Unflatten(1, (3, 2, 2))).eval()
    with pytest.raises(UserError, match="differs from torch"):
        # a negative tolerance lets no export pass: the check, not luck, decides
        onnx_export.export_generator_onnx(net, 4, tmp_path / "g.onnx", tolerance=-1.0)
    assert list(tmp_path.iterdir()) == []


def test_weights_by_checkpoint_step_and_best(trained, tmp_path):
    from safetensors.torch import load_file
    from ganstudio.core.checkpoints import load_checkpoint
    from ganstudio.core.explore_state import update_state
    from ganstudio.core.exporting import export_run
    run, pm = trained
    r = export_run(run, pm, tmp_path / "g10.safetensors", checkpoint=10)
    assert r.format == "safetensors" and r.step == 10
    weights = load_file(str(r.path))
    ckpt = load_checkpoint(run / "checkpoints" / "ckpt_00000010.pt")
    key = next(iter(weights))
    assert torch.equal(weights[key], ckpt["model"]["G"][key])
    r = export_run(run, pm, tmp_path / "last.pt", "pt", checkpoint="last")
    assert r.step == 20 and isinstance(torch.load(r.path, weights_only=True), dict)
    with pytest.raises(CheckpointError, match="no best checkpoint"):
        export_run(run, pm, tmp_path / "best.pt", checkpoint="best")
    update_state(run, best_step=10)
    assert export_run(run, pm, tmp_path / "best.pt", checkpoint="best").step == 10


def test_export_errors(trained, tmp_path, image_folder):
    from ganstudio.core.exporting import export_run
    run, pm = trained
    with pytest.raises(UserError, match="say --format"):
        export_run(run, pm, tmp_path / "g.bin")
    with pytest.raises(UserError, match="unknown export format"):
        export_run(run, pm, tmp_path / "g.bin", "tflite")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        export_run(run, pm, blocker / "g.onnx")
    nolat = es.train_run(tmp_path / "nolat", image_folder, pm, model="explgan-nolatent", steps=2)
    with pytest.raises(UserError, match="does not declare ONNX export"):
        export_run(nolat, pm, tmp_path / "n.onnx")
