"""Style transfer plugin: losses, VGG-19 weights, the optimisation job and the fast network.

Every VGG file here is made by the tests (random weights, fp16 to stay small):
random features give a working, if unartistic, style transfer, which is all the
numerical checks need. Nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.plugins import PluginManager
from ganstudio_style import fast, gatys, losses, vgg
from ganstudio_style.imaging import load_image, save_image

SMALL_LAYERS = dict(style_layers="relu1_1,relu2_1,relu3_1", content_layer="relu3_1")


@pytest.fixture(autouse=True)
def _no_torch_cache(tmp_path, monkeypatch):
    """An empty torch hub cache: only the files a test makes are ever found."""
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch_home"))


@pytest.fixture(scope="module")
def vgg_file(tmp_path_factory) -> Path:
    """Random VGG-19 features up to relu5_1 with torchvision's key names (fp16)."""
    path = tmp_path_factory.mktemp("vgg") / "vgg19_random.pth"
    torch.save(vgg.random_vgg_state("relu5_1", seed=0, dtype=torch.float16), path)
    return path


@pytest.fixture(scope="module")
def pictures(tmp_path_factory) -> dict[str, Path]:
    """A smooth colourful content picture and two textured style pictures."""
    d = tmp_path_factory.mktemp("pictures")
    yy, xx = np.mgrid[0:40, 0:48]
    content = np.stack([xx * 5, yy * 6, 255 - xx * 3], -1).clip(0, 255).astype(np.uint8)
    Image.fromarray(content).save(d / "content.png")
    stripes = np.zeros((32, 32, 3), np.uint8)
    stripes[:, ::4] = (250, 200, 20)
    stripes[::5, :] = (20, 40, 220)
    Image.fromarray(stripes).save(d / "stripes.png")
    rng = np.random.default_rng(3)
    dots = (rng.random((36, 36, 3)) > 0.8).astype(np.uint8) * 255
    Image.fromarray(dots).save(d / "dots.png")
    return {"content": d / "content.png", "style": d / "stripes.png", "style2": d / "dots.png"}


def make_job(pictures, vgg_file, **overrides) -> gatys.StyleTransferJob:
    from ganstudio.core.config import resolve_config
    cfg = dict(content=str(pictures["content"]), style=str(pictures["style"]), size=32,
               iterations=20, vgg_weights=str(vgg_file))
    cfg.update(overrides)
    config = resolve_config(gatys.schema(), cfg)
    return gatys.StyleTransferJob(config, None, torch.device("cpu"))


# -- losses -----------------------------------------------------------------------------------
def test_gram_matrix_of_a_known_tensor():
    # 2 channels, 2x2 positions: rows [1,2,3,4] and [0,1,0,1].
    f = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]], [[0.0, 1.0], [0.0, 1.0]]]])
    g = losses.gram_matrix(f)
    expected = torch.tensor([[[30.0, 6.0], [6.0, 2.0]]]) / 8.0  # / (C*H*W)
    assert g.shape == (1, 2, 2)
    assert torch.allclose(g, expected)


def test_content_loss_is_feature_mse():
    a = torch.zeros(1, 2, 2, 2)
    b = torch.full((1, 2, 2, 2), 3.0)
    assert losses.content_loss(a, b).item() == pytest.approx(9.0)
    assert losses.content_loss(b, b).item() == 0.0


def test_style_loss_weights_each_layer():
    f1 = torch.ones(1, 1, 2, 2)              # gram = 4/4 = 1
    f2 = torch.full((1, 1, 2, 2), 2.0)       # gram = 16/4 = 4
    targets = {"a": torch.zeros(1, 1, 1), "b": torch.ones(1, 1, 1)}
    feats = {"a": f1, "b": f2}
    # (1-0)^2 * 2 + (4-1)^2 * 0.5 = 2 + 4.5
    assert losses.style_loss(feats, targets, {"a": 2.0, "b": 0.5}).item() == pytest.approx(6.5)
    assert losses.style_loss(feats, targets, {"a": 0.0, "b": 1.0}).item() == pytest.approx(9.0)


def test_tv_loss_of_a_known_image():
    img = torch.tensor([[[[0.0, 1.0], [0.0, 1.0]]]])   # steps of 1 across, none down
    assert losses.tv_loss(img).item() == pytest.approx(1.0)
    assert losses.tv_loss(torch.full((1, 3, 4, 4), 0.3)).item() == 0.0


def test_blended_grams_are_the_weighted_mean():
    a, b = {"x": torch.full((1, 2, 2), 4.0)}, {"x": torch.zeros(1, 2, 2)}
    out = losses.blended_grams([a, b], [3.0, 1.0])
    assert torch.allclose(out["x"], torch.full((1, 2, 2), 3.0))
    with pytest.raises(ValueError):
        losses.blended_grams([a, b], [0.0, 0.0])


def test_colour_helpers_swap_luminance_and_chroma():
    g = torch.Generator().manual_seed(0)
    a, b = torch.rand(1, 3, 8, 8, generator=g) * 0.6 + 0.2, torch.rand(1, 3, 8, 8, generator=g) * 0.6 + 0.2
    assert torch.allclose(losses.yiq_to_rgb(losses.rgb_to_yiq(a)), a, atol=1e-5)
    mixed = losses.combine_luminance(a, b)
    yiq_m, yiq_a, yiq_b = (losses.rgb_to_yiq(t) for t in (mixed, a, b))
    inside = ((mixed > 0.001) & (mixed < 0.999)).all(1, keepdim=True)  # no clamping there
    assert inside.float().mean() > 0.5
    assert torch.allclose(yiq_m[:, :1][inside], yiq_a[:, :1][inside], atol=1e-4)
    assert torch.allclose(yiq_m[:, 1:][inside.expand(-1, 2, -1, -1)],
                          yiq_b[:, 1:][inside.expand(-1, 2, -1, -1)], atol=1e-4)
    grey = losses.luminance(a)
    assert torch.allclose(grey[:, 0], grey[:, 1]) and torch.allclose(grey[:, 1], grey[:, 2])


# -- VGG-19 -----------------------------------------------------------------------------------
def test_layer_names_follow_torchvision_indices():
    assert vgg.LAYER_INDEX["conv1_1"] == 0 and vgg.LAYER_INDEX["relu1_1"] == 1
    assert vgg.LAYER_INDEX["relu4_2"] == 22 and vgg.LAYER_INDEX["relu5_1"] == 29
    assert len(vgg.EXPECTED_SHAPES) == 32  # 16 convs x (weight, bias)


def test_features_match_torchvision_vgg19():
    from torchvision.models.vgg import cfgs, make_layers
    assert cfgs["E"][:7] == [64, 64, "M", 128, 128, "M", 256]
    tv = make_layers(cfgs["E"][:7], batch_norm=False).eval()  # torchvision's trunk to relu3_1
    state = {f"features.{k}": v for k, v in tv.state_dict().items()}
    ours = vgg.VGGFeatures(["relu2_1", "relu3_1"], vgg.check_state_dict(state, "mem", "relu3_1"))
    x = torch.rand(1, 3, 24, 24)
    norm = (x - torch.tensor(vgg.IMAGENET_MEAN).view(1, 3, 1, 1)) / torch.tensor(
        vgg.IMAGENET_STD).view(1, 3, 1, 1)
    with torch.no_grad():
        got = ours(x)
        assert torch.allclose(got["relu3_1"], tv(norm), atol=1e-5)
        assert torch.allclose(got["relu2_1"], tv[:7](norm), atol=1e-5)


def test_weights_file_with_classifier_keys_loads(tmp_path):
    state = vgg.random_vgg_state("relu2_1")
    state["classifier.0.weight"] = torch.zeros(2, 2)  # ignored, like torchvision's full file
    path = tmp_path / "full.pth"
    torch.save(state, path)
    net = vgg.load_vgg(["relu2_1"], path)
    assert torch.equal(net.features[5].weight, state["features.5.weight"])


@pytest.mark.parametrize("state, needle", [
    ({"encoder.0.weight": torch.zeros(64, 3, 3, 3)}, "unexpected keys encoder.0.weight"),
    ({"features.0.weight": torch.zeros(64, 3, 5, 5), "features.0.bias": torch.zeros(64)},
     "features.0.weight is (64, 3, 5, 5), VGG-19 has (64, 3, 3, 3)"),
    ({"features.0.weight": torch.zeros(64, 3, 3, 3), "features.0.bias": torch.zeros(64)},
     "lacks VGG-19 weights needed up to relu2_1: features.2.weight"),
    ({"features.1.weight": torch.zeros(3)}, "unexpected key features.1.weight"),
])
def test_mismatched_weights_are_refused(tmp_path, state, needle):
    path = tmp_path / "w.pth"
    torch.save(state, path)
    with pytest.raises(UserError) as e:
        vgg.load_vgg(["relu2_1"], path)
    assert needle in str(e.value) and str(path) in str(e.value)


def test_unreadable_weights_files_are_refused(tmp_path):
    junk = tmp_path / "junk.pth"
    junk.write_bytes(b"not a torch file at all")
    with pytest.raises(UserError, match="junk.pth"):
        vgg.load_vgg(["relu1_1"], junk)
    with pytest.raises(UserError, match="not found"):
        vgg.load_vgg(["relu1_1"], tmp_path / "absent.pth")


def test_hub_cache_is_used_and_its_absence_explained(tmp_path):
    with pytest.raises(vgg.VGGWeightsMissing) as e:
        vgg.find_weights(None)
    msg = str(e.value)
    assert "vgg19-dcbb9e9d.pth" in msg and str(vgg.hub_weights_path().parent) in msg
    assert "setting vgg_weights" in msg and "--" not in msg  # either face words its own
    assert e.value.file == "vgg19-dcbb9e9d.pth" and e.value.folder == vgg.hub_weights_path().parent
    status = vgg.weights_status(None)
    assert not status.found and status.downloadable and status.problem == msg
    missing = vgg.weights_status(tmp_path / "absent.pth")
    assert not missing.found and not missing.downloadable and "not found" in missing.problem
    vgg.hub_weights_path().parent.mkdir(parents=True)
    torch.save(vgg.random_vgg_state("relu1_1"), vgg.hub_weights_path())
    assert vgg.find_weights(None) == vgg.hub_weights_path()
    assert vgg.load_vgg(["relu1_1"]).features[0].weight.shape == (64, 3, 3, 3)


def test_download_checks_the_hash_and_fails_clearly_offline(tmp_path):
    src = tmp_path / "src.bin"
    src.write_bytes(b"x" * 3_000_000)
    prefix = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    seen = []
    dest = tmp_path / "cache" / f"vgg19-{prefix}.pth"
    got = vgg.download_vgg_weights(lambda done, total: seen.append((done, total)),
                                   url=src.as_uri(), dest=dest)
    assert got == dest and dest.read_bytes() == src.read_bytes()
    assert seen[-1] == (3_000_000, 3_000_000) and len(seen) >= 3
    with pytest.raises(UserError, match="damaged"):
        vgg.download_vgg_weights(url=src.as_uri(), dest=tmp_path / "vgg19-00000000.pth")
    with pytest.raises(UserError) as e:
        vgg.download_vgg_weights(url="http://127.0.0.1:9/vgg19.pth",
                                 dest=tmp_path / "off" / vgg.VGG19_FILE, timeout=5)
    assert vgg.VGG19_FILE in str(e.value) and str(tmp_path / "off") in str(e.value)
    assert not list((tmp_path / "off").glob("*")), "no partial file is left behind"


# -- the optimisation ---------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer, steps, ratio", [("lbfgs", 20, 0.2), ("adam", 25, 0.5)])
def test_optimisation_lowers_the_loss(pictures, vgg_file, optimizer, steps, ratio):
    job = make_job(pictures, vgg_file, optimizer=optimizer, lr=0.05)
    first = job.train_step()["loss"].item()
    for _ in range(steps - 1):
        last = job.train_step()["loss"].item()
    assert math.isfinite(first) and last < ratio * first
    assert job.evaluations == steps
    # The saved result (best image seen, clamped to 0-1) is much better than the start.
    best = job.result_image()
    assert best.shape == (1, 3, 27, 32) and 0 <= best.min() and best.max() <= 1
    with torch.no_grad():
        assert job.losses(best)["loss"].item() < 0.35 * first


def test_best_image_survives_a_bad_step(pictures, vgg_file):
    job = make_job(pictures, vgg_file, optimizer="adam", lr=0.05)
    for _ in range(5):
        job.train_step()
    best_before = job.best_image.clone()
    best_loss = job.best_loss.item()
    with torch.no_grad():
        job.image.fill_(0.0)       # wreck the current image: a black picture
        assert job.losses(job.image)["loss"].item() > 1.05 * best_loss
    job.train_step()               # evaluates the wrecked image
    assert job.best_loss.item() == pytest.approx(best_loss)
    assert torch.equal(job.best_image, best_before)


def test_noise_start_and_blended_styles(pictures, vgg_file):
    job = make_job(pictures, vgg_file, init="noise", style=f"{pictures['style']}|{pictures['style2']}",
                   style_blend="3,1", **SMALL_LAYERS)
    assert not torch.allclose(job.image, job.content_input)
    single = [make_job(pictures, vgg_file, style=str(pictures[k]), **SMALL_LAYERS).style_grams
              for k in ("style", "style2")]
    for name, g in job.style_grams.items():
        assert torch.allclose(g, 0.75 * single[0][name] + 0.25 * single[1][name], atol=1e-6)


def test_colour_preservation_keeps_the_content_chroma(pictures, vgg_file):
    job = make_job(pictures, vgg_file, preserve_colors=True, **SMALL_LAYERS)
    assert torch.allclose(job.content_input[:, 0], job.content_input[:, 1])  # grey input
    for _ in range(8):
        job.train_step()
    out = job.result_image()
    content = job.content_full
    yiq_out, yiq_c = losses.rgb_to_yiq(out), losses.rgb_to_yiq(content)
    inside = ((out > 0.01) & (out < 0.99)).all(1, keepdim=True).expand(-1, 2, -1, -1)
    assert inside.float().mean() > 0.3
    assert (yiq_out[:, 1:][inside] - yiq_c[:, 1:][inside]).abs().max() < 1e-3
    assert (yiq_out[:, :1] - yiq_c[:, :1]).abs().mean() > 1e-3  # the luminance did change
    plain = make_job(pictures, vgg_file, **SMALL_LAYERS)
    for _ in range(8):
        plain.train_step()
    chroma_shift = (losses.rgb_to_yiq(plain.result_image())[:, 1:] - yiq_c[:, 1:]).abs().mean()
    assert chroma_shift > 1e-2


def test_coarse_to_fine_schedule():
    assert gatys.scale_sizes(512) == [512]
    assert gatys.scale_sizes(1024) == [512, 1024]
    assert gatys.scale_sizes(2048) == [512, 1024, 2048]
    assert gatys.scale_sizes(64, 3) == [16, 32, 64]
    assert gatys.split_iterations(300, 3) == [100, 100, 100]
    assert gatys.split_iterations(10, 3) == [3, 3, 4]


def test_coarse_to_fine_job_moves_up_and_stop_keeps_full_size(pictures, vgg_file):
    job = make_job(pictures, vgg_file, scales=2, iterations=6, **SMALL_LAYERS)
    seen = []
    for _ in range(6):
        job.train_step()
        seen.append(job.status()["scale_px"])
    assert seen == [16, 16, 16, 32, 32, 32]
    assert job.image.shape[-1] == 32
    early = make_job(pictures, vgg_file, scales=2, iterations=6, **SMALL_LAYERS)
    early.train_step()
    assert early.image.shape[-1] == 16
    assert early.result_image().shape == (1, 3, 27, 32)  # stopped early: upsampled best


def test_layer_weights_and_bad_settings(pictures, vgg_file):
    job = make_job(pictures, vgg_file, style_layer_weights="1,0,2", **SMALL_LAYERS)
    assert job.layer_weights == {"relu1_1": 1.0, "relu2_1": 0.0, "relu3_1": 2.0}
    cases = [
        (dict(content=""), "no content image"),
        (dict(style=""), "no style image"),
        (dict(style_blend="1,2"), "2 weight(s) for 1 style"),
        (dict(style_layer_weights="1,2"), "2 weight(s) for 5 style layers"),
        (dict(style_layers="relu9_9"), "unknown layer(s) relu9_9"),
        (dict(style_blend="a,b"), "expected numbers"),
        (dict(content="/nope/missing.png"), "content image not found: /nope/missing.png"),
    ]
    for override, needle in cases:
        with pytest.raises(UserError) as e:
            make_job(pictures, vgg_file, **override)
        assert needle in str(e.value), override


def test_unreadable_picture_is_named(tmp_path, pictures, vgg_file):
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8 not really a jpeg")
    with pytest.raises(UserError, match="style image .*broken.jpg cannot be read"):
        make_job(pictures, vgg_file, style=str(bad))


def test_state_round_trip_continues_identically(pictures, vgg_file):
    a = make_job(pictures, vgg_file, optimizer="adam", **SMALL_LAYERS)
    for _ in range(3):
        a.train_step()
    buf = io.BytesIO()
    torch.save(a.state_dict(), buf)  # as a checkpoint does: a snapshot, not live tensors
    buf.seek(0)
    state = torch.load(buf, weights_only=True)
    b = make_job(pictures, vgg_file, optimizer="adam", **SMALL_LAYERS)
    b.load_state_dict(state)
    la, lb = a.train_step()["loss"], b.train_step()["loss"]
    assert la.item() == pytest.approx(lb.item(), rel=1e-5)
    assert torch.allclose(a.image, b.image, atol=1e-6)
    assert b.evaluations == 4


def test_engine_runs_the_job_and_writes_the_run(tmp_path, pictures, vgg_file):
    pm = PluginManager(load_folder=False)
    spec = pm.get_model("style-transfer")
    assert spec.kind == "image2image"
    engine = Engine(spec, tmp_path / "run",
                    overrides=dict(content=str(pictures["content"]), style=str(pictures["style"]),
                                   size=24, vgg_weights=str(vgg_file), **SMALL_LAYERS),
                    settings=EngineSettings(total_steps=6, device="cpu", log_every_steps=1,
                                            sample_every_steps=3, checkpoint_every_s=0))
    engine.prepare()
    done = engine.run_loop()
    assert done.reason == "completed" and engine.step == 6
    rows, _ = engine.run.read_metrics()
    assert [r["step"] for r in rows] == [1, 2, 3, 4, 5, 6]
    assert {"loss", "content", "style", "tv", "evaluations"} <= set(rows[-1])
    assert rows[-1]["loss"] < rows[0]["loss"]
    assert [s for s, _ in engine.run.list_samples()] == [0, 3, 6]
    with Image.open(engine.run.list_samples()[-1][1]) as img:
        assert img.size == (24 + 4, 20 + 4)  # one image with the grid padding


def test_image_helpers_round_trip(tmp_path):
    arr = np.zeros((10, 20, 4), np.uint8)
    arr[..., 0], arr[..., 3] = 200, 255
    arr[:, :5, 3] = 0  # transparent strip becomes white
    Image.fromarray(arr, "RGBA").save(tmp_path / "a.png")
    t = load_image(tmp_path / "a.png", 40)
    assert t.shape == (1, 3, 20, 40)
    assert torch.allclose(t[0, :, 10, 2], torch.ones(3), atol=0.02)
    out = save_image(t, tmp_path / "b.png")
    back = np.asarray(Image.open(out))
    assert back.shape == (20, 40, 3) and back[10, 30, 0] >= 195
    with pytest.raises(UserError, match="use a .png"):
        save_image(t, tmp_path / "c.txt")


# -- the fast network ---------------------------------------------------------------------------
def _fast_config(pictures, vgg_file, **extra):
    from ganstudio.core.config import resolve_config
    cfg = dict(style=str(pictures["style"]), vgg_weights=str(vgg_file), resolution=32,
               width=8, res_blocks=1, batch_size=2, lr=5e-3, style_weight=1e4,
               style_layers="relu1_2,relu2_2,relu3_1", content_layer="relu2_2")
    cfg.update(extra)
    return resolve_config(fast.schema(), cfg)


def test_transformer_net_keeps_any_size():
    net = fast.TransformerNet(width=4, res_blocks=1)
    for h, w in [(16, 16), (17, 30), (9, 13)]:
        assert net(torch.rand(1, 3, h, w)).shape == (1, 3, h, w)


def test_fast_model_contract_without_data(pictures, vgg_file):
    model = fast.FastStyleModel(_fast_config(pictures, vgg_file), (3, 32, 32), "cpu")
    assert model.vgg is None  # VGG is loaded only for training
    z = model.make_latents(3, torch.Generator().manual_seed(0))
    assert z.shape == (3, 3, 32, 32) and z.min() >= -1 and z.max() <= 1
    out = model.sample(z)
    assert out.shape == (3, 3, 32, 32) and out.min() >= -1 and out.max() <= 1
    real = z.clone()
    curve = [model.train_step(real)["loss"].item() for _ in range(16)]
    assert sum(curve[-4:]) / 4 < 0.8 * sum(curve[:4]) / 4, curve
    other = fast.FastStyleModel(_fast_config(pictures, vgg_file), (3, 32, 32), "cpu")
    other.load_state_dict(model.state_dict())
    assert torch.allclose(other.sample(z), model.sample(z))


def test_fast_training_through_the_engine_then_apply(tmp_path, pictures, vgg_file):
    data = tmp_path / "photos"
    data.mkdir()
    rng = np.random.default_rng(0)
    for i in range(5):
        Image.fromarray((rng.random((40, 40, 3)) * 255).astype(np.uint8)).save(data / f"{i}.png")
    (data / "sub").mkdir()
    Image.fromarray(np.full((30, 50, 3), 90, np.uint8)).save(data / "sub" / "wide.jpg")
    pm = PluginManager(load_folder=False)
    spec = pm.get_model("fast-style")
    overrides = {k: v for k, v in _fast_config(pictures, vgg_file).items()}
    engine = Engine(spec, tmp_path / "run", data_folder=data, overrides=overrides,
                    settings=EngineSettings(total_steps=4, device="cpu", n_samples=64,
                                            checkpoint_every_s=0))
    engine.prepare()
    assert engine.fixed_noise.shape == (6, 3, 32, 32)  # fixed content pictures, not 64
    assert engine.run_loop().reason == "completed"
    from ganstudio.core.feedforward import apply_to_paths, apply_to_tensor, load_feedforward
    spec, model, step = load_feedforward(tmp_path / "run", pm)
    assert spec.kind == "feedforward" and step == 4 and model.config["width"] == 8
    written, ms = apply_to_paths(model, [data], tmp_path / "out", size=24)
    assert len(written) == 6 and ms > 0
    assert (tmp_path / "out" / "sub" / "wide.png").is_file()
    with Image.open(tmp_path / "out" / "sub" / "wide.png") as img:
        assert img.size == (24, 14)
    # the declared surface (sample on pictures in [-1, 1]) is the network itself
    picture = load_image(data / "sub" / "wide.jpg")
    assert torch.allclose(apply_to_tensor(model, picture),
                          fast.stylize_tensor(model.generator_module(), picture), atol=1e-6)
    single, _ = apply_to_paths(model, [data / "sub" / "wide.jpg"], tmp_path / "one.jpg")
    with Image.open(single[0]) as img:
        assert single[0].name == "one.jpg" and img.size == (50, 30)
    bad = tmp_path / "bad"
    Engine(pm.get_model("style-transfer"), bad, overrides=dict(
        content=str(pictures["content"]), style=str(pictures["style"]), size=16,
        vgg_weights=str(vgg_file), **SMALL_LAYERS),
        settings=EngineSettings(total_steps=1, device="cpu")).prepare()
    with pytest.raises(UserError, match="not a trained feed-forward network"):
        load_feedforward(bad, pm)
    with pytest.raises(UserError, match="input not found"):
        apply_to_paths(model, [tmp_path / "nothing.png"], tmp_path / "o")


def test_fast_network_exports_to_onnx_checked_against_torch(tmp_path):
    from ganstudio_style.export import export_module
    import onnxruntime as ort
    torch.manual_seed(0)
    net = fast.TransformerNet(4, 1).eval()
    report = export_module(net, tmp_path / "style.onnx")
    assert report.path.is_file() and report.max_abs_diff < 1e-3
    # checked on sides that are not multiples of 4, where the network pads
    assert report.checked_shapes and all(s[-1] % 4 and s[-2] % 4 for s in report.checked_shapes)
    session = ort.InferenceSession(str(report.path), providers=["CPUExecutionProvider"])
    assert [i.name for i in session.get_inputs()] == ["input"]
    assert [o.name for o in session.get_outputs()] == ["output"]
    assert session.get_inputs()[0].shape == ["batch", 3, "height", "width"]
    x = torch.rand(3, 3, 21, 37)
    got = session.run(None, {"input": x.numpy()})[0]
    assert got.shape == (3, 3, 21, 37)
    assert np.abs(got - net(x).clamp(0, 1).detach().numpy()).max() < 1e-3
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.onnx"]

    class SizeBranch(torch.nn.Module):  # a branch on the size: the trace keeps one side only
        def forward(self, x):
            return x * 0.5 if x.shape[-1] == 50 else x
    with pytest.raises(UserError, match="differs from torch"):
        export_module(SizeBranch(), tmp_path / "wrong.onnx")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["style.onnx"]  # nothing else kept


def test_engine_autocast_does_not_change_the_job(pictures, vgg_file):
    """The engine may wrap steps in bf16 autocast; the job keeps fp32 unless asked."""
    plain = make_job(pictures, vgg_file, optimizer="adam", scales=2, iterations=2, **SMALL_LAYERS)
    cast = make_job(pictures, vgg_file, optimizer="adam", scales=2, iterations=2, **SMALL_LAYERS)
    for _ in range(3):  # the third step enters the second scale
        a = plain.train_step()["loss"]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            b = cast.train_step()["loss"]
        assert b.dtype == torch.float32 and b.item() == pytest.approx(a.item(), rel=1e-6)
    assert cast.status()["scale_px"] == 32


# -- L-BFGS without host reads ----------------------------------------------------------------
def _quartic_bowl(n: int = 30):
    g = torch.Generator().manual_seed(0)
    a = torch.randn(n, n, generator=g)
    a = a @ a.T / n + 0.1 * torch.eye(n)
    b = torch.randn(n, generator=g)
    return lambda x: 0.5 * x @ a @ x - b @ x + 0.05 * (x ** 4).sum(), torch.randn(n, generator=g)


@pytest.mark.parametrize("kind", ["quartic", "linear"])
def test_device_lbfgs_follows_torch_lbfgs(kind):
    """Same iterates as torch.optim.LBFGS(max_iter=1), history eviction included; a linear
    loss gives y = 0 pairs, which both must reject (torch skips them, ours masks them)."""
    from ganstudio_style.lbfgs import DeviceLBFGS
    f, x0 = _quartic_bowl()
    if kind == "linear":
        c = torch.linspace(-1, 1, x0.numel())
        f = lambda x: (c * x).sum()  # noqa: E731
    xa, xb = x0.clone().requires_grad_(True), x0.clone().requires_grad_(True)
    ref = torch.optim.LBFGS([xa], lr=1.0, max_iter=1, history_size=4)
    ours = DeviceLBFGS(xb, lr=1.0, history_size=4)

    def closure(opt, x):
        def run():
            opt.zero_grad()
            loss = f(x)
            loss.backward()
            return loss
        return run
    losses_seen = []
    for _ in range(25):
        la, lb = ref.step(closure(ref, xa)), ours.step(closure(ours, xb))
        assert lb.item() == pytest.approx(la.item(), rel=1e-4, abs=1e-4)
        assert torch.allclose(xa, xb, atol=1e-4)
        losses_seen.append(lb.item())
    assert ours.count == 4  # the ring is full: older pairs were evicted
    if kind == "quartic":
        assert losses_seen[-1] < losses_seen[0] - 20  # it really optimised (about -10.8)


def test_device_lbfgs_does_not_move_at_a_minimum():
    from ganstudio_style.lbfgs import DeviceLBFGS
    x = torch.ones(5, requires_grad=True)
    opt = DeviceLBFGS(x)
    def closure():
        opt.zero_grad()
        loss = ((x - 1) ** 2).sum()
        loss.backward()
        return loss
    for _ in range(3):
        assert opt.step(closure).item() == 0.0
    assert torch.equal(x.detach(), torch.ones(5))  # zero gradient: no step, no NaN


def test_lbfgs_job_step_reads_nothing_back(pictures, vgg_file, monkeypatch):
    """On a GPU every value read back waits for the device: a step must not read any (and
    the job must not make cuDNN time every new shape, nor leave that setting changed)."""
    job = make_job(pictures, vgg_file, scales=2, iterations=4, **SMALL_LAYERS)
    seen = []
    real_losses = job.losses

    def losses(image):
        seen.append(torch.backends.cudnn.benchmark)
        return real_losses(image)
    monkeypatch.setattr(job, "losses", losses)
    monkeypatch.setattr(torch.backends.cudnn, "benchmark", True)
    reads = []
    for name in ("item", "__bool__", "__float__", "tolist"):
        real = getattr(torch.Tensor, name)
        monkeypatch.setattr(torch.Tensor, name,
                            lambda self, *a, _r=real, _n=name, **k: reads.append(_n) or _r(self, *a, **k))
    for _ in range(4):  # the third step enters the second scale
        job.train_step()
    restored = torch.backends.cudnn.benchmark
    monkeypatch.undo()
    assert reads == []
    assert seen == [False] * 4 and restored is True
    assert job.evaluations == 4 and job.status()["scale_px"] == 32
