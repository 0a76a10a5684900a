"""KID / FID and the feature extractors (the download-free fallback and local Inception)."""
from __future__ import annotations

import pytest
import torch

from ganstudio.core import quality as q
from ganstudio.core.errors import UserError


def _blobs(n: int, seed: int, bright: float = 0.0, c: int = 3, res: int = 16) -> torch.Tensor:
    """Images of one random bright square on a dark ground; ``bright`` shifts the style."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, c, res, res), -0.8)
    for i in range(n):
        s = int(torch.randint(3, res // 2, (1,), generator=g))
        y0, x0 = (int(v) for v in torch.randint(0, res - s, (2,), generator=g))
        x[i, :, y0:y0 + s, x0:x0 + s] = 0.6 + bright
    return (x + 0.05 * torch.randn(x.shape, generator=g)).clamp(-1, 1)


def test_kid_and_fid_identical_vs_different_sets():
    g = torch.Generator().manual_seed(0)
    a = torch.randn(300, 16, generator=g)
    b = torch.randn(300, 16, generator=g)                  # same distribution
    c = torch.randn(300, 16, generator=g) * 1.5 + 1.0      # another one
    assert q.fid(a, a) == pytest.approx(0.0, abs=1e-6)
    far = q.kid(a, c)
    # unbiased: identical or same-distribution sets score near 0 (a set against itself
    # slightly below 0), a different distribution far above
    assert abs(q.kid(a, a)) < 0.01 * far
    assert abs(q.kid(a, b)) < 0.01 * far
    assert far > 1.0
    assert q.fid(a, c) > 10 * q.fid(a, b)
    # FID of two Gaussians with known moments: |mu|^2 + tr(C1 + C2 - 2 (C1 C2)^1/2) = 16 + 16*0.25
    assert q.fid(a, c) == pytest.approx(16 * 1.0 + 16 * 0.25, rel=0.25)


def test_random_features_are_fixed_and_separate_image_sets():
    ext1, ext2 = q.RandomFeatures(), q.RandomFeatures()
    real = _blobs(60, seed=1)
    f1 = ext1.features(real)
    assert f1.shape == (60, 768)
    assert torch.equal(f1, ext2.features(real))            # same weights on every machine
    gray = real[:4, :1]                                    # grayscale goes through as RGB
    assert torch.allclose(ext1.features(gray), ext1.features(gray.expand(-1, 3, -1, -1)))
    same = ext1.features(_blobs(60, seed=2))
    other = ext1.features(_blobs(60, seed=3, bright=-1.2))  # dark squares: a different set
    collapsed = ext1.features(_blobs(1, seed=4).expand(60, -1, -1, -1))
    assert q.kid(f1, other) > 5 * abs(q.kid(f1, same))
    assert q.kid(f1, collapsed) > 5 * abs(q.kid(f1, same))
    assert q.mean_pairwise_distance(collapsed) == pytest.approx(0.0, abs=1e-4)
    assert q.mean_pairwise_distance(same) > 0


def test_quality_meter_measures_fixed_samples():
    real = _blobs(32, seed=5)
    meter = q.QualityMeter(real, q.RandomFeatures(), n_samples=32)
    good = meter.measure(lambda n: _blobs(n, seed=6))
    bad = meter.measure(lambda n: torch.zeros(n, 3, 16, 16))
    assert set(good) == {"kid", "fid"}
    assert bad["kid"] > good["kid"] and bad["fid"] > good["fid"]


def test_auto_falls_back_with_a_note_and_inception_explains(monkeypatch, tmp_path):
    monkeypatch.delenv(q.INCEPTION_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    notes = []
    ext = q.make_extractor("auto", on_note=notes.append)
    assert isinstance(ext, q.RandomFeatures)
    assert len(notes) == 1 and q.INCEPTION_ENV in notes[0] and "random-feature" in notes[0]
    with pytest.raises(UserError, match="Inception-v3 weights not found"):
        q.make_extractor("inception")
    bad = tmp_path / "inception.pth"
    bad.write_bytes(b"not a checkpoint")
    monkeypatch.setenv(q.INCEPTION_ENV, str(bad))
    with pytest.raises(UserError, match="cannot read Inception weights .*inception.pth"):
        q.make_extractor("inception")
    with pytest.raises(UserError, match="unknown feature extractor"):
        q.make_extractor("clip")


def test_inception_weights_from_a_local_file(monkeypatch, tmp_path):
    from torchvision.models import inception_v3
    torch.manual_seed(0)
    net = inception_v3(weights=None, aux_logits=True, init_weights=False)
    path = tmp_path / "hub" / "checkpoints" / "inception_v3_google-0cc3c7bd.pth"
    path.parent.mkdir(parents=True)
    torch.save(net.state_dict(), path)
    monkeypatch.delenv(q.INCEPTION_ENV, raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))         # found in torch's own cache
    ext = q.make_extractor("auto")
    assert isinstance(ext, q.InceptionFeatures) and ext.suffix == "_inception"
    feats = ext.features(_blobs(1, seed=0, res=8))
    assert feats.shape == (1, 2048) and torch.isfinite(feats).all()
    # a file that is a checkpoint, but not of Inception: named, and auto falls back
    wrong = tmp_path / "wrong.pth"
    torch.save({"conv.weight": torch.zeros(1)}, wrong)
    monkeypatch.setenv(q.INCEPTION_ENV, str(wrong))
    with pytest.raises(UserError, match="wrong.pth does not hold torchvision Inception-v3"):
        q.make_extractor("inception")
    notes = []
    assert isinstance(q.make_extractor("auto", on_note=notes.append), q.RandomFeatures)
    assert "wrong.pth" in notes[0]
