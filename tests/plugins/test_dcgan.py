"""DCGAN: presets and their overrides, the balance tools in the training step, state round
trip, and the compare-presets command."""
from __future__ import annotations

import json

import pytest
import torch
import torch.nn as nn

from ganstudio.core import gan_tools as gt
from ganstudio.core.config import resolve_config
from ganstudio.core.errors import ConfigError
from ganstudio_dcgan.model import DCGAN, PRESETS, effective_settings, schema

TINY = {"resolution": 32, "batch_size": 4, "g_features": 4, "d_features": 4, "latent_dim": 8,
        "channels": 1}


def build(**over) -> DCGAN:
    torch.manual_seed(0)
    cfg = resolve_config(schema(), {**TINY, **over})
    return DCGAN(cfg, (cfg["channels"], 32, 32), torch.device("cpu"))


def batch(n: int = 4, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 32, 32, generator=g) * 2 - 1


def test_presets_resolve_and_settings_override_them():
    default = effective_settings(resolve_config(schema(), {}))
    assert default["preset"] == "default"
    assert (default["loss"], default["d_norm"], default["ema"]) == ("hinge", "spectral", "on")
    assert default["augment_ops"] == ("color", "translation", "cutout")
    assert (default["beta1"], default["beta2"]) == (0.0, 0.99)
    classic = effective_settings(resolve_config(schema(), {"preset": "classic"}))
    assert (classic["loss"], classic["d_norm"], classic["ema"], classic["augment_ops"]) == \
        ("bce", "batch", "off", ())
    # the classic example's exact optimiser recipe
    assert (classic["lr_g"], classic["lr_d"], classic["beta1"], classic["beta2"]) == \
        (2e-4, 2e-4, 0.5, 0.999)
    mixed = effective_settings(resolve_config(schema(), {
        "preset": "classic", "augment": "translation", "loss": "hinge", "ema": "on",
        "beta1": "0.3"}))
    assert mixed["augment_ops"] == ("translation",) and mixed["loss"] == "hinge"
    assert (mixed["beta1"], mixed["beta2"]) == (0.3, 0.999)
    assert mixed["ema"] == "on" and mixed["d_norm"] == "batch"
    assert set(PRESETS) == {"default", "classic"}


def test_bad_settings_are_named():
    with pytest.raises(ConfigError, match="augment.*'sharpen'"):
        build(augment="color,sharpen")
    with pytest.raises(ConfigError, match="wgan-gp.*d_norm=none"):
        build(preset="classic", loss="wgan-gp")
    with pytest.raises(ConfigError, match="'beta2': expected auto or a number"):
        build(beta2="1.5")
    with pytest.raises(ConfigError, match="'beta1'"):
        build(beta1="high")
    with pytest.raises(ConfigError, match="preset"):
        resolve_config(schema(), {"preset": "fancy"})


def test_architectures_follow_the_preset():
    classic, default = build(preset="classic"), build()
    assert any(isinstance(m, nn.BatchNorm2d) for m in classic.D.modules())
    assert not gt.has_spectral_norm(classic.D) and classic.ema is None
    assert not any(isinstance(m, nn.BatchNorm2d) for m in default.D.modules())
    assert gt.has_spectral_norm(default.D) and default.ema is not None
    assert default.generator_module() is default.ema.module
    assert classic.generator_module() is classic.G


@pytest.mark.parametrize("preset", ["default", "classic"])
def test_presets_train_a_few_steps(preset):
    model = build(preset=preset)
    g0 = [p.detach().clone() for p in model.G.parameters()]
    for i in range(3):
        out = model.train_step(batch(seed=i))
    assert {"loss_d", "loss_g", "d_real", "d_fake", "d_acc_real", "d_acc_fake"} <= set(out)
    assert all(torch.isfinite(v) and v.dim() == 0 and not v.requires_grad for v in out.values())
    assert any(not torch.equal(a, b) for a, b in zip(g0, model.G.parameters()))
    samples = model.sample(model.make_latents(5))
    assert samples.shape == (5, 1, 32, 32) and samples.abs().max() <= 1.0
    logits = model.discriminate(batch())
    assert logits.shape == (4,)


def test_augmentation_reaches_both_real_and_fake():
    model = build(augment="translation,cutout")
    seen = []
    inner = model.augment

    def recording(x):
        seen.append((x.detach().clone(), x.requires_grad))
        return inner(x)

    model.augment = recording
    real = batch()
    model.train_step(real)
    assert len(seen) == 3                                   # D: real, fake; G: fake
    assert torch.equal(seen[0][0], real)
    assert not torch.equal(seen[1][0], real) and seen[1][1] is False   # detached fake for D
    assert seen[2][1] is True                               # G's fake keeps its gradient
    assert torch.equal(seen[1][0], seen[2][0])              # the same fakes


def test_d_pause_skips_discriminator_updates():
    model = build(preset="classic", d_pause="on", d_pause_below=10.0)
    model.pause.check_every = 1
    model.train_step(batch())                       # first step always updates D
    d_before = [p.detach().clone() for p in model.D.parameters()]
    out = model.train_step(batch(seed=1))           # loss_d < 10: D pauses
    assert out["d_paused"].item() == 1.0
    assert all(torch.equal(a, b) for a, b in zip(d_before, model.D.parameters()))
    off = build(preset="classic")
    assert "d_paused" not in off.train_step(batch())


def test_other_losses_and_tools_train():
    for over in ({"loss": "wgan-gp", "d_norm": "none"}, {"loss": "bce", "label_smoothing": 0.1},
                 {"instance_noise": 0.1, "instance_noise_steps": 2},
                 {"augment_adaptive": "on"}):
        model = build(**over)
        for i in range(2):
            out = model.train_step(batch(seed=i))
        assert all(torch.isfinite(v) for v in out.values()), over
    assert model.status()["augment_p"] >= 0.0
    noisy = build(instance_noise=0.1, instance_noise_steps=2)
    assert noisy.noise.current == 0.1
    noisy.train_step(batch())
    noisy.train_step(batch())
    assert noisy.noise.current == 0.0                # faded out after instance_noise_steps


def test_state_round_trip_includes_the_average():
    model = build(augment_adaptive="on")
    for i in range(2):
        model.train_step(batch(seed=i))
    state = model.state_dict()
    assert "ema" in state and "ada" in state
    other = build(augment_adaptive="on")
    other.load_state_dict(state)
    z = model.make_latents(3, torch.Generator().manual_seed(1))
    assert torch.allclose(model.sample(z), other.sample(z))
    assert other.ema.updates == 2


def test_compare_presets_command(tmp_path, image_folder, capsys):
    from ganstudio.cli import main
    out = tmp_path / "cmp"
    code = main(["compare-presets", "--data", str(image_folder), "--steps", "2", "--out", str(out),
                 "--samples", "8", "--features", "random", "--device", "cpu", "--quiet",
                 "--set", "resolution=32", "--set", "batch_size=4", "--set", "g_features=4",
                 "--set", "d_features=4"])
    assert code == 0
    summary = json.loads((out / "compare.json").read_text())
    assert [r["preset"] for r in summary["results"]] == ["classic", "default"]
    for r in summary["results"]:
        assert r["steps"] == 2 and r["diversity"] >= 0 and r["fid"] >= 0
        assert (out / r["preset"] / "run.json").is_file()
    printed = capsys.readouterr().out
    assert "classic" in printed and "default" in printed and "KID" in printed
    assert main(["compare-presets", "--data", str(tmp_path / "nope"), "--out", str(out)]) == 2
    assert main(["compare-presets", "--data", str(image_folder), "--out", str(out),
                 "--presets", "classic,shiny"]) == 2


@pytest.mark.parametrize("preset", ["default", "classic"])   # spectral norm / BatchNorm in D
def test_discriminator_features_have_gradients_and_leave_d_as_it_was(preset):
    model = build(preset=preset)
    model.train_step(batch())
    before = {k: v.clone() for k, v in model.D.state_dict().items()}
    x = batch(3, seed=1).requires_grad_(True)
    feats = model.discriminator_features(x)
    assert len(feats) == 3 and all(f.shape[0] == 3 for f in feats)      # 32 px: 3 blocks
    (grad,) = torch.autograd.grad(sum(f.square().mean() for f in feats), x)
    assert grad.abs().sum() > 0 and torch.isfinite(grad).all()
    after = model.D.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before) and model.D.training
    opts = model.optimizers()
    assert set(opts) == {"g", "d"} and opts["g"] is model.opt_g
    assert set(model.trained_networks()) == {"g", "d"}
