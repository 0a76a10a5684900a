"""The few-shot GAN plugin: network shapes at every resolution, the decoders, a short
run, exact resume, FreezeD, the optional perceptual term and weight loading."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from ganstudio import testing as kit
from ganstudio.core.config import resolve_config
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.plugins import PluginManager

from ganstudio_fewshot import MODEL_ID, TEST_SETTINGS, losses
from ganstudio_fewshot.model import FewShotGAN, schema
from ganstudio_fewshot.networks import (RESOLUTIONS, Discriminator, Generator, g_width,
                                        quarter, resize)

TINY = {"resolution": 64, **TEST_SETTINGS}


@pytest.fixture(scope="module")
def spec():
    return PluginManager(load_folder=False).get_model(MODEL_ID)


@pytest.fixture(scope="module")
def images() -> torch.Tensor:
    return kit.tiny_images(16, 3, 64, seed=3)


def _model(**over) -> FewShotGAN:
    torch.manual_seed(0)
    return FewShotGAN(resolve_config(schema(), {**TINY, **over}), (3, 64, 64), "cpu")


def _as_batch(images: torch.Tensor, n: int = 4) -> torch.Tensor:
    return images[:n].float() / 127.5 - 1.0


def test_spec_declares_its_capabilities(spec):
    assert spec.latent is not None and spec.latent.dim == 256
    assert spec.latent.distribution == "gaussian"
    assert set(spec.learning_rates) == {"lr_g", "lr_d"}
    assert spec.has("finetune") and spec.has("d_features") and spec.has("onnx")
    assert not spec.has("capturable")
    assert spec.field("resolution").default == 256
    assert list(spec.field("resolution").choices) == [64, 128, 256, 512, 1024]
    assert spec.field("freeze_d") is not None
    assert "GPU" in spec.help and "CPU" in spec.help


@pytest.mark.parametrize("res", RESOLUTIONS)
def test_network_shapes_at_every_resolution(res):
    torch.manual_seed(0)
    g, d = Generator(res, 3, 2).eval(), Discriminator(res, 3, 2).eval()
    with torch.no_grad():
        z = torch.randn(1, 256)
        img = g(z)
        assert img.shape == (1, 3, res, res)
        assert img.abs().max() <= 1.0
        logits, whole, part = d(img, reconstruct=3)
    assert logits.shape == (1, 1, 5, 5)
    size = min(128, res)
    assert whole.shape == part.shape == (1, 3, size, size)
    maps = d.features(img)
    assert maps[16].shape[-1] == 16 and maps[8].shape[-1] == 8
    # widths follow the resolution: a 1024 px map is narrower than the 4 px one
    assert g_width(4, 64) == 1024 and g_width(64, 64) == 128 and g_width(1024, 64) == 8
    # one skip-layer excitation for each output stage from 64 px up (gated by r/16)
    assert sorted(int(k) for k in g.sle) == [r for r in (64, 128, 256, 512, 1024) if r <= res]


def test_grayscale_and_quarter_helpers():
    g, d = Generator(64, 1, 2).eval(), Discriminator(64, 1, 2).eval()
    with torch.no_grad():
        img = g(torch.randn(2, 256))
        assert img.shape == (2, 1, 64, 64)
        assert d(img).shape == (2, 1, 5, 5)
    x = torch.arange(16.0).view(1, 1, 4, 4)
    assert quarter(x, 0).flatten().tolist() == [0, 1, 4, 5]
    assert quarter(x, 3).flatten().tolist() == [10, 11, 14, 15]
    assert resize(x, 2).flatten().tolist() == [2.5, 4.5, 10.5, 12.5]


def test_decoders_learn_to_reconstruct_a_fixed_image(images):
    """Only the reconstruction loss, on one fixed image: it must fall clearly."""
    torch.manual_seed(1)
    d = Discriminator(64, 3, 4)
    loss_fn = losses.ReconstructionLoss()
    real = _as_batch(images, 2)
    opt = torch.optim.Adam(d.parameters(), lr=2e-3, betas=(0.5, 0.999))
    values = []
    for step in range(12):
        q = step % 4
        _logits, whole, part = d(real, reconstruct=q)
        loss = loss_fn(whole, real) + loss_fn(part, resize(quarter(real, q), 64))
        opt.zero_grad()
        loss.backward()
        opt.step()
        values.append(float(loss.detach()))
    first, last = sum(values[:3]) / 3, sum(values[-3:]) / 3
    assert last < 0.7 * first, values


def test_structure_loss_is_zero_for_equal_images_and_grows_with_damage(images):
    x = _as_batch(images, 2)
    assert float(losses.multiscale_structure_loss(x, x)) == pytest.approx(0.0, abs=1e-5)
    slight = losses.multiscale_structure_loss(x, x + 0.05 * torch.randn_like(x))
    heavy = losses.multiscale_structure_loss(x, x + 0.5 * torch.randn_like(x))
    assert 0.0 < float(slight) < float(heavy)


def _engine(spec, run: Path, images, steps: int, **kw) -> Engine:
    settings = EngineSettings(total_steps=steps, log_every_steps=1, log_every_s=1e9,
                              sample_every_steps=steps, sample_every_s=1e9,
                              checkpoint_every_steps=0, checkpoint_every_s=0, n_samples=4,
                              monitors=False, device="cpu", precision="fp32")
    return Engine(spec, run, overrides=dict(TINY, **kw.pop("overrides", {})),
                  settings=settings, images=images, **kw)


def _metrics(run: Path) -> list[dict]:
    rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    return [{k: v for k, v in r.items() if k not in ("time", "img_per_s")} for r in rows]


def test_a_short_run_lowers_the_reconstruction_loss(spec, images, tmp_path):
    eng = _engine(spec, tmp_path / "run", images, 30)
    eng.prepare()
    end = eng.run_loop()
    assert end.__class__.__name__ == "Finished", end
    rec = [r["loss_rec"] for r in _metrics(tmp_path / "run")]
    assert len(rec) == 30
    # noisy step to step (a random quarter, random augmentation): compare tens of steps
    assert sum(rec[-10:]) / 10 < 0.85 * sum(rec[:10]) / 10, rec


def test_resume_is_exact(spec, images, tmp_path):
    whole = _engine(spec, tmp_path / "a", images, 6)
    whole.prepare()
    whole.run_loop()
    half = _engine(spec, tmp_path / "b", images, 3)
    half.prepare()
    half.run_loop()
    rest = _engine(spec, tmp_path / "b", images, 6, resume=True)
    rest.prepare()
    assert rest.resumed_from is not None and rest.step == 3
    rest.run_loop()
    assert _metrics(tmp_path / "a") == _metrics(tmp_path / "b")
    z = whole.fixed_noise
    assert torch.equal(whole.model.sample(z), rest.model.sample(z))


def test_freeze_d_keeps_the_first_blocks_fixed(images):
    m = _model(freeze_d=2)
    blocks = m.D.blocks
    before = [[p.detach().clone() for p in b.parameters()] for b in blocks]
    m.train_step(_as_batch(images))
    changed = [any(not torch.equal(p, q) for p, q in zip(b.parameters(), old))
               for b, old in zip(blocks, before)]
    assert changed[:2] == [False, False]
    assert all(changed[2:])
    assert m.frozen == 2
    n_opt = sum(p.numel() for g in m.opt_d.param_groups for p in g["params"])
    n_frozen = sum(p.numel() for b in blocks[:2] for p in b.parameters())
    assert n_opt == sum(p.numel() for p in m.D.parameters()) - n_frozen


def test_load_weights_takes_networks_but_not_optimizers(images):
    src = _model()
    for _ in range(2):
        src.train_step(_as_batch(images))
    dst = _model(lr_g=1e-4)
    dst.load_weights(src.state_dict())
    z = torch.randn(3, 256)
    assert torch.equal(src.sample(z), dst.sample(z))
    assert dst.opt_g.state_dict()["state"] == {}          # fresh optimizer
    assert dst.opt_g.param_groups[0]["lr"] == 1e-4
    wider = _model(g_features=6)
    with pytest.raises(RuntimeError, match="size mismatch"):
        wider.load_weights(src.state_dict())


def test_discriminator_features_leave_d_untouched(images):
    m = _model()
    x = _as_batch(images)
    buffers = [b.clone() for b in m.D.buffers()]
    feats = m.discriminator_features(x)
    assert [f.shape[-1] for f in feats] == [32, 16, 8]
    assert all(torch.equal(a, b) for a, b in zip(buffers, m.D.buffers()))
    assert m.D.training
    assert m.discriminate(x).shape == (4,)
    # per image (projection compares one picture at a time), and differentiable
    alone = m.discriminator_features(x[1:2])
    assert all(torch.allclose(a[0], b[1], atol=1e-5) for a, b in zip(alone, feats))
    y = x.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(sum(f.sum() for f in m.discriminator_features(y)), [y])
    assert grad.abs().sum() > 0


def _vgg_file(path: Path, seed: int = 0) -> Path:
    g = torch.Generator().manual_seed(seed)
    state = {}
    for i, (c_out, c_in) in losses._VGG_CONVS.items():
        state[f"features.{i}.weight"] = torch.randn(c_out, c_in, 3, 3, generator=g) * 0.05
        state[f"features.{i}.bias"] = torch.zeros(c_out)
    torch.save(state, path)
    return path


def test_perceptual_term_only_with_a_local_vgg_file(images, tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert _model().perceptual is False                       # nothing on this machine
    path = _vgg_file(tmp_path / "vgg.pth")
    m = _model(vgg_weights=str(path))
    assert m.perceptual is True
    x = _as_batch(images, 2)
    plain = losses.ReconstructionLoss()(x.flip(-1), x)
    assert float(m.recon_loss(x.flip(-1), x)) > float(plain)
    out = m.train_step(_as_batch(images))
    assert torch.isfinite(out["loss_rec"])
    # the hub cache is where the style models' file lives: found there too
    hub = tmp_path / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    _vgg_file(hub / losses.VGG19_FILE)
    assert _model().perceptual is True
    assert _model(perceptual="off").perceptual is False


def test_bad_vgg_files_are_named(tmp_path):
    missing = tmp_path / "nope.pth"
    with pytest.raises(UserError, match="nope.pth"):
        _model(vgg_weights=str(missing))
    wrong = tmp_path / "wrong.pth"
    torch.save({"features.0.weight": torch.zeros(8, 3, 3, 3)}, wrong)
    with pytest.raises(UserError, match="wrong.pth.*not a VGG-19"):
        _model(vgg_weights=str(wrong))


def test_generator_exports_to_onnx(tmp_path):
    """The declared ``onnx`` capability holds: the averaged G (with its fixed noise maps)
    exports and onnxruntime agrees with torch."""
    from ganstudio.core.onnx_export import export_generator_onnx
    m = _model()
    report = export_generator_onnx(m.generator_module(), 256, tmp_path / "g.onnx")
    assert report.path.is_file()
    assert report.max_abs_diff < 1e-3


def test_speedcheck_reports_images_per_second(tmp_path, capsys):
    from ganstudio_fewshot import speedcheck
    out = tmp_path / "speed.json"
    code = speedcheck.main(["--device", "cpu", "--resolutions", "64", "--precisions", "fp32",
                            "--batch", "2", "--seconds", "0", "--set", "g_features=2",
                            "--set", "d_features=2", "--out", str(out)])
    assert code == 0
    (row,) = json.loads(out.read_text())
    assert row["resolution"] == 64 and row["steps"] == 2 and row["img_per_s"] > 0
    assert json.loads(capsys.readouterr().out) == row


def test_the_alarm_and_kid_run_on_it(spec, tmp_path):
    """The engine's monitors use D through discriminate() and the samples for KID."""
    settings = EngineSettings(total_steps=4, log_every_steps=1, log_every_s=1e9,
                              sample_every_steps=4, sample_every_s=1e9, checkpoint_every_s=0,
                              n_samples=4, monitors=True, alarm_every_steps=2,
                              quality_every_steps=4, quality_samples=16,
                              quality_features="random", device="cpu", precision="fp32")
    eng = Engine(spec, tmp_path / "run", overrides=TINY, settings=settings,
                 images=kit.tiny_images(40, 3, 64, seed=4))
    eng.prepare()
    assert eng.run_loop().__class__.__name__ == "Finished"
    rows = _metrics(tmp_path / "run")
    keys = set().union(*rows)
    assert {"d_auc", "diversity", "kid"} <= keys, keys
    assert "failed" not in (tmp_path / "run" / "events.log").read_text()


def test_a_short_run_lowers_kid(spec, tmp_path):
    """It learns: the engine's KID (random features, the same fixed latents each time)
    falls over 60 steps at 64 px on 64 images (measured: 1.205 at step 10, 0.849 at 60)."""
    settings = EngineSettings(total_steps=60, log_every_steps=10, log_every_s=1e9,
                              sample_every_steps=60, sample_every_s=1e9,
                              checkpoint_every_steps=0, checkpoint_every_s=0, n_samples=4,
                              monitors=True, alarm_every_steps=0, quality_every_steps=10,
                              quality_samples=64, quality_features="random", device="cpu",
                              precision="fp32")
    torch.manual_seed(0)
    eng = Engine(spec, tmp_path / "run", settings=settings,
                 overrides={"resolution": 64, "g_features": 8, "d_features": 8,
                            "batch_size": 8},
                 images=kit.tiny_images(64, 3, 64, seed=3))
    eng.prepare()
    assert eng.run_loop().__class__.__name__ == "Finished"
    kid = [r["kid"] for r in _metrics(tmp_path / "run") if "kid" in r]
    assert len(kid) == 6
    assert kid[-1] < 0.85 * kid[0], kid
    assert min(kid[-2:]) < min(kid[:2]), kid
