"""Shared GAN tools: DiffAugment, adaptive strength, EMA, losses, spectral norm, D pause."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn as nn

from ganstudio.core import gan_tools as gt
from ganstudio.core.errors import ConfigError


def _images(n=6, c=3, h=16, w=16, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, c, h, w, generator=g) * 2 - 1


def test_policy_parsing():
    assert gt.parse_augment_policy("color, translation,cutout") == ("color", "translation", "cutout")
    assert gt.parse_augment_policy("off") == ()
    assert gt.parse_augment_policy("") == ()
    with pytest.raises(ConfigError, match="augment.*'blur'"):
        gt.parse_augment_policy("color,blur")


def test_diffaugment_is_differentiable_and_changes_images():
    torch.manual_seed(0)
    x = _images().requires_grad_(True)
    aug = gt.DiffAugment("color,translation,cutout")
    y = aug(x)
    assert y.shape == x.shape
    assert not torch.allclose(y, x)
    (y * torch.randn_like(y)).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


def test_translation_is_a_shift_with_zero_fill():
    torch.manual_seed(3)
    x = torch.arange(1, 1 + 2 * 16 * 16, dtype=torch.float32).view(2, 1, 16, 16)
    y = gt.aug_translation(x, ratio=0.125)
    for i in range(2):
        matched = False
        for dy in range(-2, 3):
            for dx in range(-2, 3):
                expect = torch.zeros(16, 16)
                src = x[i, 0]
                ys, xs = torch.meshgrid(torch.arange(16), torch.arange(16), indexing="ij")
                sy, sx = ys + dy, xs + dx
                ok = (sy >= 0) & (sy < 16) & (sx >= 0) & (sx < 16)
                expect[ok] = src[sy[ok], sx[ok]]
                if torch.equal(expect, y[i, 0]):
                    matched = True
        assert matched, f"image {i} is not a shift of the input within 2 px"


def test_cutout_zeroes_one_square_at_most_half_the_side():
    torch.manual_seed(1)
    x = torch.ones(8, 1, 16, 16)
    y = gt.aug_cutout(x, ratio=0.5)
    zeros = (y == 0).float().flatten(1).sum(1)
    assert (zeros <= 64).all() and (zeros > 0).all()
    assert set(torch.unique(y).tolist()) <= {0.0, 1.0}


def test_strength_zero_is_identity_and_per_image_probability():
    x = _images(n=200, h=8, w=8)
    assert torch.equal(gt.DiffAugment("color,translation,cutout", 0.0)(x), x)
    torch.manual_seed(0)
    y = gt.aug_color(x, p=0.5)
    changed = (y - x).flatten(1).abs().amax(1) > 1e-6
    assert 60 < int(changed.sum()) < 140        # about half of the 200 images


def test_adaptive_strength_follows_the_overfitting_signal():
    ada = gt.AdaptiveStrength(torch.device("cpu"), target=0.6, interval=2, speed_images=100)
    for _ in range(4):
        ada.observe(torch.full((10,), 3.0))        # D sure of every real image: r_t = 1
    assert float(ada.p) == pytest.approx(0.4)      # 2 updates x 20 images / 100
    for _ in range(20):
        ada.observe(torch.full((10,), -1.0))       # r_t = -1 < target: decrease
    assert float(ada.p) == 0.0
    state = ada.state_dict()
    other = gt.AdaptiveStrength(torch.device("cpu"))
    other.load_state_dict(state)
    assert float(other.p) == float(ada.p)


def test_ema_update_math():
    live = nn.Linear(2, 1, bias=False)
    with torch.no_grad():
        live.weight.copy_(torch.tensor([[1.0, 2.0]]))
    ema = gt.EMA(live, decay=0.9, warmup=False)
    with torch.no_grad():
        live.weight.copy_(torch.tensor([[3.0, -2.0]]))
    ema.update(live)
    assert torch.allclose(ema.module.weight, torch.tensor([[0.9 * 1 + 0.1 * 3, 0.9 * 2 + 0.1 * -2]]))
    assert not ema.module.weight.requires_grad
    # warm-up: the first update uses decay min(0.9, 1/10) = 0.1
    warm = gt.EMA(live, decay=0.9, warmup=True)
    before = warm.module.weight.clone()
    with torch.no_grad():
        live.weight.copy_(torch.tensor([[0.0, 0.0]]))
    warm.update(live)
    assert torch.allclose(warm.module.weight, 0.1 * before)
    assert warm.current_decay() == pytest.approx(2 / 11)


def test_ema_copies_buffers_and_round_trips():
    live = nn.BatchNorm1d(3)
    ema = gt.EMA(live, decay=0.99)
    live.running_mean.fill_(5.0)
    ema.update(live)
    assert torch.equal(ema.module.running_mean, torch.full((3,), 5.0))
    other = gt.EMA(nn.BatchNorm1d(3), decay=0.99)
    other.load_state_dict(ema.state_dict())
    assert other.updates == 1 and torch.equal(other.module.running_mean, ema.module.running_mean)


def test_loss_values():
    real = torch.tensor([2.0, 0.5])
    fake = torch.tensor([-2.0, 0.0])
    assert gt.d_loss("hinge", real, fake).item() == pytest.approx((0 + 0.5) / 2 + (0 + 1) / 2)
    assert gt.g_loss("hinge", fake).item() == pytest.approx(1.0)
    assert gt.d_loss("wgan-gp", real, fake).item() == pytest.approx(-1.0 - 1.25)
    sp = lambda v: math.log1p(math.exp(v))  # softplus
    bce = (sp(-2.0) + sp(-0.5)) / 2 + (sp(-2.0) + sp(0.0)) / 2
    assert gt.d_loss("bce", real, fake).item() == pytest.approx(bce, rel=1e-5)
    # one-sided smoothing: real target 0.9 raises the loss on confident reals only
    assert gt.d_loss("bce", real, fake, label_smoothing=0.1).item() > bce
    assert gt.g_loss("bce", fake).item() == pytest.approx((sp(2.0) + sp(0.0)) / 2, rel=1e-5)
    with pytest.raises(ConfigError):
        gt.check_loss("least-squares")


def test_gradient_penalty_of_a_linear_critic():
    D = nn.Linear(12, 1, bias=False)
    with torch.no_grad():
        D.weight.fill_(0.5)                        # ||w|| = 0.5 * sqrt(12)
    critic = lambda x: D(x.flatten(1)).view(-1)
    real, fake = _images(4, 3, 2, 2), _images(4, 3, 2, 2, seed=1)
    gp = gt.gradient_penalty(critic, real, fake, weight=10.0)
    assert gp.item() == pytest.approx(10 * (0.5 * math.sqrt(12) - 1) ** 2, rel=1e-5)
    gp.backward()
    assert D.weight.grad is not None and D.weight.grad.abs().sum() > 0


def test_spectral_norm_bounds_the_largest_singular_value():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(8, 8), nn.ReLU(), nn.Linear(8, 1))
    with torch.no_grad():
        net[0].weight.mul_(10)
    gt.apply_spectral_norm(net)
    assert gt.has_spectral_norm(net)
    for _ in range(30):                            # power iterations run in training forwards
        net(torch.randn(4, 8))
    sigma = torch.linalg.matrix_norm(net[0].weight.detach(), ord=2).item()
    assert sigma == pytest.approx(1.0, abs=0.05)


def test_d_pause_rule():
    rule = gt.DPause(0.3, check_every=1, smoothing=0.0, max_pause=3)
    assert rule.should_update_d()                  # nothing observed yet
    rule.observe(torch.tensor(0.1))                # D's loss under the threshold
    assert rule.should_update_d() is False
    assert rule.should_update_d() is False
    rule.observe(torch.tensor(1.0))                # D is struggling again
    assert rule.should_update_d() is True
    rule.observe(torch.tensor(0.05))
    decisions = [rule.should_update_d() for _ in range(5)]
    assert decisions[:3] == [False, False, False] and decisions[3] is True  # max_pause
    assert not gt.DPause(0.0).enabled and gt.DPause(0.0).should_update_d()


def test_instance_noise_anneals():
    noise = gt.InstanceNoise(0.5, anneal_steps=4)
    x = torch.zeros(1000)
    assert noise(x).std().item() == pytest.approx(0.5, rel=0.1)
    for _ in range(2):
        noise.advance()
    assert noise.current == pytest.approx(0.25)
    for _ in range(2):
        noise.advance()
    assert torch.equal(noise(x), x)
