"""Progressive GAN and MSG-GAN plugin: layers, networks, schedule, training, resume."""
from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F

from ganstudio.core.config import resolve_config
from ganstudio.core.data import DeviceImages
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import ConfigError

import ganstudio_progan
from ganstudio_progan.layers import (EqualizedConv2d, EqualizedLinear, minibatch_group,
                                     minibatch_stddev)
from ganstudio_progan.networks import Discriminator, Generator, channels_at
from ganstudio_progan.schedule import Schedule, batch_for, parse_batch_sizes

TINY = dict(channel_max=8, channel_base=64, latent_dim=8)


def _specs():
    return {s.id: s for s in ganstudio_progan.ganstudio_register_models()}


def _spec(model_id: str):
    spec = _specs()[model_id]
    spec.plugin = "progan"
    return spec


def _config(model_id: str = "progan", **overrides):
    return resolve_config(_spec(model_id).schema, {**TINY, **overrides})


def _images(n: int = 12, res: int = 16, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.randint(0, 256, (n, 3, res, res), generator=g, dtype=torch.uint8)


# -- layers --------------------------------------------------------------------------------------
def test_equalized_conv_scales_weights_by_he_constant_at_run_time():
    torch.manual_seed(0)
    conv = EqualizedConv2d(8, 4, 3)
    assert conv.scale == pytest.approx(math.sqrt(2.0) / math.sqrt(8 * 3 * 3))
    # stored weights are N(0, 1): no init scaling is baked in
    assert conv.weight.std().item() == pytest.approx(1.0, abs=0.15)
    with torch.no_grad():
        conv.bias.normal_()
    x = torch.randn(2, 8, 5, 5)
    expected = F.conv2d(x, conv.weight * conv.scale, conv.bias, padding=1)
    assert torch.allclose(conv(x), expected, atol=1e-6)
    # the gradient reaching the stored weight is the scaled one (what equalizes Adam's steps)
    conv(x).sum().backward()
    w = (conv.weight.detach() * conv.scale).requires_grad_(True)
    F.conv2d(x, w, conv.bias.detach(), padding=1).sum().backward()
    assert torch.allclose(conv.weight.grad, w.grad * conv.scale, atol=1e-5)


def test_equalized_linear_gain():
    lin = EqualizedLinear(16, 3, gain=1.0)
    assert lin.scale == pytest.approx(0.25)
    x = torch.randn(4, 16)
    assert torch.allclose(lin(x), x @ (lin.weight * 0.25).t() + lin.bias, atol=1e-6)


def test_minibatch_stddev_channel_values():
    torch.manual_seed(1)
    x = torch.randn(8, 3, 2, 2)
    out = minibatch_stddev(x, group_size=4)
    assert out.shape == (8, 4, 2, 2)
    assert torch.equal(out[:, :3], x)
    # sample i is in group i % 2 (groups of 4 taken with stride 2)
    for i in range(8):
        members = x[[j for j in range(8) if j % 2 == i % 2]]
        std = torch.sqrt(members.var(dim=0, unbiased=False) + 1e-8).mean()
        assert torch.allclose(out[i, 3], std.expand(2, 2), atol=1e-6)
    # identical samples -> (almost) zero deviation; a batch of 6 uses groups of 3
    same = torch.ones(6, 2, 2, 2)
    assert minibatch_group(6, 4) == 3
    assert minibatch_stddev(same, 4)[:, 2].abs().max().item() < 1e-3


# -- networks ------------------------------------------------------------------------------------
def test_widths_follow_the_paper_rule():
    assert [channels_at(r, 16384, 512) for r in (4, 32, 64, 128, 1024)] == [512, 512, 256, 128, 16]


def test_shapes_at_every_scale():
    torch.manual_seed(0)
    G = Generator(8, 3, 32, 64, 8)
    D = Discriminator(3, 32, 64, 8)
    z = torch.randn(4, 8)
    for level, res in enumerate((4, 8, 16, 32)):
        for alpha in (0.0, 0.5, 1.0):
            img = G(z, level, alpha)
            assert img.shape == (4, 3, res, res)
            score = D(img, level, alpha)
            assert score.shape == (4,)
            assert torch.isfinite(score).all()
    G.set_progress(2, 0.25)  # forward(z) alone uses the stored training state
    assert G(z).shape == (4, 3, 16, 16)
    assert torch.allclose(G(z), G(z, 2, 0.25))


def test_fade_in_starts_from_the_previous_resolution():
    torch.manual_seed(0)
    G = Generator(8, 3, 32, 64, 8)
    D = Discriminator(3, 32, 64, 8)
    z = torch.randn(4, 8)
    x = torch.randn(4, 3, 32, 32)
    for level in (1, 2, 3):
        previous = G(z, level - 1, 1.0)
        at_zero = G(z, level, 0.0)
        assert torch.allclose(at_zero, F.interpolate(previous, scale_factor=2, mode="nearest"),
                              atol=1e-6)
        assert not torch.allclose(G(z, level, 0.5), at_zero, atol=1e-4)
        img = F.avg_pool2d(x, 2 ** (3 - level))
        assert torch.allclose(D(img, level, 0.0), D(F.avg_pool2d(img, 2), level - 1, 1.0),
                              atol=1e-5)


def test_generator_state_restores_its_progress():
    G = Generator(8, 3, 16, 64, 8)
    G.set_progress(1, 0.5)
    H = Generator(8, 3, 16, 64, 8)
    H.load_state_dict(G.state_dict())
    assert (H._level, H._alpha) == (1, 0.5)


# -- schedule ------------------------------------------------------------------------------------
def test_schedule_phases_alpha_and_batches():
    s = Schedule(16, 100, 50, {4: 10, 8: 5}, 8)
    kinds = [(p.resolution, p.fading, p.images, p.batch) for p in s.phases]
    assert kinds == [(4, False, 50, 8), (8, True, 100, 5), (8, False, 50, 5),
                     (16, True, 100, 5), (16, False, 50, 5)]
    assert s.total_images == 350
    pos = s.at(50 + 25)
    assert (pos.phase.index, pos.phase.resolution, pos.alpha) == (1, 8, 0.25)
    assert (pos.left_phase, pos.left_total, pos.progress) == (75, 275, 0.25)
    assert s.at(149).alpha == pytest.approx(0.99)
    assert s.at(150).phase.index == 2 and s.at(150).alpha == 1.0
    end = s.at(10_000)
    assert (end.phase.index, end.alpha, end.left_total, end.progress) == (4, 1.0, 0, 1.0)


def test_schedule_steps_match_a_step_by_step_walk():
    s = Schedule(32, 30, 17, {4: 4, 16: 3, 32: 2}, 4)
    shown = steps = 0
    while shown < s.total_images:
        shown += s.at(shown).phase.batch
        steps += 1
    assert s.steps() == steps


def test_batch_sizes_parsing_and_cap():
    table = parse_batch_sizes("4:64, 8:32,32:8")
    assert table == {4: 64, 8: 32, 32: 8}
    assert batch_for(16, table, 1000) == 32    # nearest lower listed
    assert batch_for(64, table, 1000) == 8
    assert batch_for(4, table, 16) == 16       # capped by batch_size
    for bad in ("4-64", "6:8", "8:0", "x:y"):
        with pytest.raises(ConfigError, match="batch_sizes"):
            parse_batch_sizes(bad)
    with pytest.raises(ConfigError, match="batch_sizes"):
        _spec("progan").factory(_config(batch_sizes="4:sixty"), (3, 128, 128), "cpu")


def test_default_schedule_is_documented():
    cfg = resolve_config(_spec("progan").schema)
    sched = ganstudio_progan.schedule_for(cfg)
    assert cfg["resolution"] == 128 and sched.phases[-1].resolution == 128
    assert f"{sched.steps():,}" in _spec("progan").help


# -- the model -----------------------------------------------------------------------------------
def _model(**overrides):
    cfg = _config(resolution=16, fade_images=8, stable_images=8, batch_sizes="4:4",
                  batch_size=4, **overrides)
    torch.manual_seed(0)
    model = _spec("progan").factory(cfg, (3, 16, 16), "cpu")
    data = DeviceImages(_images(), torch.device("cpu"), seed=3)
    model.attach_data(data)
    return model


def test_data_pyramid_is_box_filtered_and_kept_once():
    model = _model()
    imgs = _images()
    assert [lvl.shape[-1] for lvl in model.pyramid] == [4, 8, 16]
    assert model.pyramid[2] is model.pyramid[2] and model.pyramid[2].dtype == torch.uint8
    eight = F.avg_pool2d(imgs.float(), 2).round()
    assert torch.equal(model.pyramid[1], eight.to(torch.uint8))
    four = F.avg_pool2d(eight, 2).round()
    assert torch.equal(model.pyramid[0], four.to(torch.uint8))


def test_training_walks_the_schedule_and_reports_status():
    model = _model()
    before = [p.detach().clone() for p in model.G.parameters()]
    seen = []
    for _ in range(10):
        out = model.train_step(None)
        assert set(out) >= {"loss_d", "loss_g", "gp", "wdist"}
        assert all(v.dim() == 0 and not v.requires_grad and torch.isfinite(v) for v in out.values())
        st = model.status()
        seen.append((st["resolution"], st["alpha"], st["phase"]))
        sample = model.sample(model.make_latents(2))
        assert sample.shape == (2, 3, st["resolution"], st["resolution"])
        assert sample.min() >= -1 and sample.max() <= 1
    assert seen[:5] == [(4, 1.0, 0), (4, 1.0, 0), (8, 0.0, 1), (8, 0.5, 1), (8, 1.0, 2)]
    assert seen[-1][0] == 16
    st = model.status()
    assert st["images_left_total"] == 0 and st["phase_progress"] == 1.0
    assert model.images_shown == 40
    changed = [not torch.equal(a, b) for a, b in zip(before, model.G.parameters())]
    assert sum(changed) > len(changed) // 2
    # the EMA copy follows G but lags behind it
    ema = dict(model.G_ema.named_parameters())
    name, p = next((n, p) for n, p in model.G.named_parameters() if n.startswith("dense"))
    assert not torch.equal(ema[name], p)


def test_ema_decay_warms_up_then_holds():
    model = _model(ema_decay=0.5)
    name = "conv0.weight"
    ema_before = dict(model.G_ema.named_parameters())[name].detach().clone()
    model.train_step(None)  # step 1: decay min(0.5, 2/11) = 2/11
    g1 = dict(model.G.named_parameters())[name].detach()
    ema1 = dict(model.G_ema.named_parameters())[name].detach().clone()
    assert torch.allclose(ema1, torch.lerp(ema_before, g1, 9 / 11), atol=1e-6)
    for _ in range(20):
        model.train_step(None)  # (1 + t) / (10 + t) passes 0.5 at t = 8
    ema_prev = dict(model.G_ema.named_parameters())[name].detach().clone()
    model.train_step(None)
    g = dict(model.G.named_parameters())[name].detach()
    ema = dict(model.G_ema.named_parameters())[name].detach()
    assert torch.allclose(ema, torch.lerp(ema_prev, g, 0.5), atol=1e-6)


def test_optimizer_state_resets_when_a_resolution_starts():
    model = _model()
    model.train_step(None)
    model.train_step(None)  # two steps at 4x4 (8 images, batch 4)
    assert all(int(s["step"]) == 2 for s in model.opt_d.state.values())
    n_before = len(model.opt_d.state)
    model.train_step(None)  # first step at 8 px: fresh moments, new layers join
    assert all(int(s["step"]) == 1 for s in model.opt_d.state.values())
    assert len(model.opt_d.state) > n_before


def test_works_without_attached_data():
    cfg = _config(resolution=16, fade_images=8, stable_images=8, batch_sizes="4:4", batch_size=4)
    model = _spec("progan").factory(cfg, (3, 16, 16), "cpu")
    real = _images(4).float() / 127.5 - 1
    for _ in range(3):
        out = model.train_step(real)
    assert torch.isfinite(out["loss_d"])
    assert model.status()["resolution"] == 8


def test_grayscale_and_smallest_target():
    cfg = _config(resolution=8, channels=1, fade_images=4, stable_images=4, batch_sizes="4:2",
                  batch_size=4)
    model = _spec("progan").factory(cfg, (1, 8, 8), "cpu")
    model.attach_data(DeviceImages(_images(6, 8)[:, :1], torch.device("cpu")))
    for _ in range(6):
        model.train_step(None)
    assert model.status()["resolution"] == 8
    assert model.sample(model.make_latents(2)).shape == (2, 1, 8, 8)


def test_state_round_trip_mid_fade():
    model = _model()
    for _ in range(4):
        model.train_step(None)
    assert 0 < model.status()["alpha"] < 1
    state = model.state_dict()
    other = _spec("progan").factory(model.config, (3, 16, 16), "cpu")
    other.load_state_dict(state)
    assert other.status() == model.status()
    z = model.make_latents(3, torch.Generator().manual_seed(5))
    assert torch.equal(other.sample(z), model.sample(z))
    assert other.generator_module()._alpha == model.status()["alpha"]
    assert other.opt_g.state_dict()["state"].keys() == model.opt_g.state_dict()["state"].keys()


def test_target_resolution_mismatch_is_a_config_error():
    with pytest.raises(ConfigError, match="32 px"):
        _spec("progan").factory(_config(resolution=16), (3, 32, 32), "cpu")


# -- through the engine --------------------------------------------------------------------------
def _metrics(run_dir):
    lines = [json.loads(x) for x in (run_dir / "metrics.jsonl").read_text().splitlines() if x]
    for line in lines:
        line.pop("time"), line.pop("img_per_s")
    return lines


def _engine(run_dir, total, *, resume=False, **cfg):
    overrides = {**TINY, "resolution": 16, "fade_images": 12, "stable_images": 8,
                 "batch_sizes": "4:4,16:2", "batch_size": 4, **cfg}
    settings = EngineSettings(total_steps=total, log_every_steps=1, checkpoint_every_steps=5,
                              sample_every_steps=1000, device="cpu", log_every_s=1e9,
                              checkpoint_every_s=0, n_samples=4)
    return Engine(_spec("progan"), run_dir, overrides=overrides, settings=settings,
                  images=_images(), resume=resume)


def test_engine_run_through_growth_phases_and_exact_resume_mid_fade(tmp_path):
    total = 16
    full = _engine(tmp_path / "full", total)
    full.prepare()
    done = full.run_loop()
    assert done.reason == "completed", done
    ref = _metrics(tmp_path / "full")
    assert [m["step"] for m in ref] == list(range(1, total + 1))
    assert {m["resolution"] for m in ref} == {4, 8, 16}
    assert any(0 < m["alpha"] < 1 for m in ref if m["resolution"] == 16)
    # the engine counts what the model drew itself (4 per step, then 2 at 16 px)
    assert full.images_seen == ref[-1]["images_shown"] == full.model.images_shown

    # interrupted at step 10 (a checkpoint is written there): the fade-in to 16 px runs
    # over steps 8-13, so step 10 trains with alpha 2/6
    part = _engine(tmp_path / "resumed", 10)
    part.prepare()
    assert part.run_loop().reason == "completed"
    mid = _metrics(tmp_path / "resumed")[-1]
    assert (mid["resolution"], mid["alpha"]) == (16, pytest.approx(2 / 6, abs=1e-5)), mid
    again = _engine(tmp_path / "resumed", total, resume=True)
    again.prepare()
    assert again.resumed_from is not None and again.step == 10
    assert again.run_loop().reason == "completed"
    assert _metrics(tmp_path / "resumed") == ref
    z = full.fixed_noise
    assert torch.equal(full.model.sample(z), again.model.sample(z))


def test_fade_in_runs_under_bf16_autocast(tmp_path):
    """GPUs train under bf16 autocast by default: the fade-in blends branches of mixed dtypes."""
    engine = _engine(tmp_path / "bf16", 12)
    engine.settings.precision = "bf16"
    engine.prepare()
    assert engine.device.autocast_dtype == torch.bfloat16
    done = engine.run_loop()
    assert done.reason == "completed", done
    lines = _metrics(tmp_path / "bf16")
    assert any(0 < m["alpha"] < 1 for m in lines)          # it went through a fade-in
    assert all(math.isfinite(m["loss_d"]) for m in lines)


def test_fade_blends_branches_of_different_dtypes():
    # on CUDA, autocast runs upsampling in float32 and convolutions in bf16
    from ganstudio_progan.networks import fade
    old = torch.zeros(2, 3, dtype=torch.float32)
    new = torch.ones(2, 3, dtype=torch.bfloat16)
    out = fade(old, new, 0.25)
    assert out.dtype == torch.float32 and torch.allclose(out, torch.full((2, 3), 0.25))


def test_cli_trains_progan_on_a_folder(image_folder, tmp_path, capsys):
    from ganstudio.cli import main
    out = tmp_path / "run"
    sets = ["channel_max=8", "channel_base=64", "latent_dim=8", "resolution=16",
            "fade_images=8", "stable_images=8", "batch_sizes=4:4"]
    argv = ["train", "--model", "progan", "--data", str(image_folder), "--out", str(out),
            "--steps", "8", "--device", "cpu", "--log-steps", "1", "--quiet"]
    for s in sets:
        argv += ["--set", s]
    assert main(argv) == 0
    lines = _metrics(out)
    assert [m["resolution"] for m in lines][:4] == [4, 4, 8, 8]
    assert lines[-1]["resolution"] == 16
    assert list((out / "checkpoints").glob("ckpt_*.pt"))
    # the trained generator samples at the resolution it reached (16 px tiles)
    from ganstudio.core.inference import generate, load_trained
    from ganstudio.plugins import get_plugin_manager
    _spec_, model, _state = load_trained(out, get_plugin_manager(), "cpu")
    assert generate(model, 3, seed=1).shape == (3, 3, 16, 16)
    assert main(["sample", "--run", str(out), "--n", "4", "--out", str(tmp_path / "g.png"),
                 "--device", "cpu"]) == 0
    assert (tmp_path / "g.png").stat().st_size > 0
    assert main(["train", "--model", "progan", "--data", str(image_folder), "--out",
                 str(tmp_path / "bad"), "--set", "batch_sizes=4:x", "--steps", "1",
                 "--device", "cpu", "--quiet"]) == 2
    assert "batch_sizes" in capsys.readouterr().err


# -- MSG-GAN -------------------------------------------------------------------------------------
def test_msggan_trains_every_scale_at_once():
    cfg = _config("msggan", resolution=16, batch_size=4)
    torch.manual_seed(0)
    model = _spec("msggan").factory(cfg, (3, 16, 16), "cpu")
    outs = model.G.forward_all(torch.randn(2, 8))
    assert [o.shape[-1] for o in outs] == [4, 8, 16]
    d_before = {n: p.detach().clone() for n, p in model.D.named_parameters()}
    g_before = {n: p.detach().clone() for n, p in model.G.named_parameters()}
    real = _images(4).float() / 127.5 - 1
    for _ in range(3):
        out = model.train_step(real)
    assert all(torch.isfinite(v) for v in out.values())
    # every toRGB (one per scale) and every D block learned: gradients reach all scales
    for k in range(3):
        assert not torch.equal(g_before[f"to_rgb.{k}.weight"], model.G.to_rgb[k].weight)
    assert all(not torch.equal(d_before[n], p) for n, p in model.D.named_parameters()
               if n.endswith("weight"))
    sample = model.sample(model.make_latents(5))
    assert sample.shape == (5, 3, 16, 16)
    assert model.status() == {"resolution": 16, "images_shown": 12}
    # D really reads the low scales: changing only the 4x4 input changes its score
    reals = [F.avg_pool2d(real, 4), F.avg_pool2d(real, 2), real]
    moved = [reals[0] + 0.5, reals[1], reals[2]]
    assert not torch.allclose(model.D(reals), model.D(moved))


def test_plugin_registers_both_models():
    from ganstudio.plugins import PluginManager
    pm = PluginManager(load_folder=False)
    assert pm.get_model("progan").plugin == "progan"
    assert pm.get_model("msggan").plugin == "progan"
    for f in _spec("progan").schema:
        assert f.help, f.name


# -- the shared conformance kit ------------------------------------------------------------------
from ganstudio.testing import PluginConformance  # noqa: E402


class TestProganConformance(PluginConformance):
    """Both models pass the kit every plugin passes (with GANSTUDIO_TEST_SETTINGS)."""

    plugin = "progan"
