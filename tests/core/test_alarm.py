"""The collapse / imbalance alarm: fires on a collapsed generator and a winning or memorising
discriminator, stays quiet on real data; the engine runs it and logs its values."""
from __future__ import annotations

import json

import pytest
import torch

from ganstudio.core import events as ev
from ganstudio.core.alarm import AlarmSettings, BalanceAlarm, split_holdout
from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.model import GAN, GANModel, ModelSpec


def shapes(n: int, seed: int, res: int = 16) -> torch.Tensor:
    """Varied real-looking images in [-1, 1]: a bright rectangle of random size and place."""
    g = torch.Generator().manual_seed(seed)
    x = torch.full((n, 1, res, res), -1.0)
    for i in range(n):
        h, w = (int(v) for v in torch.randint(3, res - 2, (2,), generator=g))
        y0, x0 = int(torch.randint(0, res - h, (1,), generator=g)), int(torch.randint(0, res - w, (1,), generator=g))
        x[i, :, y0:y0 + h, x0:x0 + w] = 1.0
    return x


class FakeModel:
    """Samples from a bank of images; D logits from a rule. No training."""

    latent_dim = 4
    config = {"lr_d": 2e-4}

    def __init__(self, bank: torch.Tensor, d_rule=None):
        self.bank = bank
        if d_rule is not None:          # a model without D logits offers no discriminate()
            self.discriminate = d_rule

    def make_latents(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator)

    def sample(self, z):
        return self.bank[torch.arange(z.shape[0]) % self.bank.shape[0]]


SETTINGS = AlarmSettings(patience=2, start_step=10, n_images=48)


def run_checks(alarm, model, steps=(10, 20, 30)):
    z = torch.randn(48, 4)
    found = []
    for step in steps:
        values, warnings = alarm.check(model, z, step)
        found += warnings
    return values, found


def test_collapsed_generator_fires_once_and_real_data_stays_quiet():
    real = shapes(48, seed=0)
    alarm = BalanceAlarm(real, settings=SETTINGS)
    one_image = shapes(1, seed=9).expand(48, -1, -1, -1) + 0.01 * torch.randn(48, 1, 16, 16)
    values, warnings = run_checks(alarm, FakeModel(one_image))
    assert values["diversity"] < 0.1
    assert [k for k, _ in warnings] == ["collapse"]                 # once, after patience
    assert "mode collapse" in warnings[0][1] and "preset=default" in warnings[0][1]

    quiet = BalanceAlarm(real, settings=SETTINGS)
    values, warnings = run_checks(quiet, FakeModel(shapes(48, seed=1)))
    assert warnings == []
    assert 0.7 < values["diversity"] < 1.4


def test_no_verdict_before_start_step_and_rearms_after_recovery():
    real = shapes(48, seed=0)
    alarm = BalanceAlarm(real, settings=SETTINGS)
    collapsed = FakeModel(shapes(1, seed=3).expand(48, -1, -1, -1))
    _, early = run_checks(alarm, collapsed, steps=(1, 2, 3, 4))
    assert early == []
    _, w1 = run_checks(alarm, collapsed, steps=(10, 11))
    _, healthy = run_checks(alarm, FakeModel(shapes(48, seed=2)), steps=(12,))
    _, w2 = run_checks(alarm, collapsed, steps=(13, 14))
    assert len(w1) == 1 and healthy == [] and len(w2) == 1


def test_winning_discriminator_is_an_imbalance():
    real = shapes(48, seed=0)
    fakes = shapes(48, seed=5) * 0.5            # a separate set the rule can tell apart
    is_real = lambda x: torch.tensor([any(torch.equal(img, r) for r in real) for img in x])
    wins = lambda x: torch.where(is_real(x), 8.0, -8.0)
    alarm = BalanceAlarm(real, settings=SETTINGS)
    values, warnings = run_checks(alarm, FakeModel(fakes, wins))
    assert values["d_check_real"] == 1.0 and values["d_check_fake"] == 1.0
    assert values["d_auc"] == 1.0
    kinds = [k for k, _ in warnings]
    assert kinds == ["imbalance"]
    assert "discriminator wins" in warnings[0][1] and "lr_d=0.0001" in warnings[0][1]

    g = torch.Generator().manual_seed(0)
    confused = lambda x: torch.randn(x.shape[0], generator=g)
    quiet = BalanceAlarm(real, settings=SETTINGS)
    values, warnings = run_checks(quiet, FakeModel(fakes, confused))
    assert warnings == [] and 0.3 < values["d_auc"] < 0.7


def test_memorising_discriminator_is_caught_with_held_out_images():
    real, held = shapes(48, seed=0), shapes(32, seed=7)
    memorised = lambda x: torch.tensor([3.0 if any(torch.equal(img, r) for r in real) else -0.5
                                        for img in x])
    alarm = BalanceAlarm(real, held, settings=SETTINGS)
    values, warnings = run_checks(alarm, FakeModel(shapes(48, seed=8), memorised))
    assert values["d_overfit"] > 0.95            # (a few random rectangles repeat)
    assert any(k == "imbalance" and "memorising" in m for k, m in warnings)

    fair = lambda x: x.mean(dim=(1, 2, 3))      # scores by brightness: no memory of the set
    quiet = BalanceAlarm(real, held, settings=SETTINGS)
    values, warnings = run_checks(quiet, FakeModel(shapes(48, seed=8), fair))
    assert 0.3 < values["d_overfit"] < 0.7
    assert not any("memorising" in m for _, m in warnings)


def test_split_holdout_is_deterministic_and_disjoint():
    images = torch.arange(1000).view(1000, 1, 1, 1)
    train, held = split_holdout(images, seed=3)
    assert held is not None and held.shape[0] == 50 and train.shape[0] == 950
    assert set(held.view(-1).tolist()).isdisjoint(train.view(-1).tolist())
    train2, held2 = split_holdout(images, seed=3)
    assert torch.equal(held, held2)
    small, none = split_holdout(images[:100], seed=3)
    assert none is None and small.shape[0] == 100     # small sets stay whole


class Collapsed(GANModel):
    """Trains nothing; every sample is the same image."""

    def train_step(self, real):
        return {"loss_d": real.mean() * 0 + 1.0, "loss_g": real.mean() * 0 + 2.0}

    @torch.no_grad()
    def sample(self, z):
        return torch.zeros(z.shape[0], *self.image_shape).to(self.device) + 0.3

    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass

    def generator_module(self):
        return torch.nn.Identity()


def test_engine_emits_collapse_warning_and_logs_values(tmp_path):
    assert AlarmSettings().start_step == 100 and AlarmSettings().patience == 2
    spec = ModelSpec("collapsed", "Collapsed", GAN,
                     common_gan_fields(resolution=16, resolutions=(16,), channels=1,
                                       batch_size=4), Collapsed)
    images = ((shapes(40, seed=0) + 1) * 127.5).to(torch.uint8)
    seen = []
    settings = EngineSettings(total_steps=150, device="cpu", precision="fp32", log_every_s=1e9,
                              sample_every_s=1e9, checkpoint_every_s=0, n_samples=4,
                              alarm_every_steps=50, quality_every_steps=75, quality_samples=16)
    engine = Engine(spec, tmp_path / "run", images=images, settings=settings,
                    listeners=[seen.append])
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    warnings = [e for e in seen if isinstance(e, ev.Warning)]
    assert [w.kind for w in warnings] == ["collapse"]
    assert warnings[0].step == 150                # judged from step 100; bad twice in a row
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    alarm_lines = [l for l in lines if "diversity" in l]
    assert [l["step"] for l in alarm_lines] == [50, 100, 150]
    assert all(l["diversity"] < 0.05 for l in alarm_lines)
    assert [l["step"] for l in lines if "kid" in l] == [75, 150]
    assert all(l["kid"] > 0 for l in lines if "kid" in l)
    assert "mode collapse" in (tmp_path / "run" / "events.log").read_text()


def test_low_but_growing_diversity_is_learning_not_collapse():
    """Early samples look alike while diversity climbs: no warning until it stops growing."""
    real = shapes(48, seed=0)
    alarm = BalanceAlarm(real, settings=SETTINGS)
    z = torch.randn(48, 4)
    base = shapes(1, seed=9).expand(48, -1, -1, -1)
    varied = shapes(48, seed=5)
    found, ratios = [], []
    for i, step in enumerate((10, 20, 30, 40)):
        mix = (0.02, 0.04, 0.08, 0.16)[i]   # samples drift apart: diversity keeps rising
        values, warnings = alarm.check(FakeModel(base + mix * (varied - base)), z, step)
        ratios.append(values["diversity"])
        found += warnings
    assert all(b > a * 1.1 for a, b in zip(ratios, ratios[1:]))
    assert ratios[-1] < SETTINGS.collapse_ratio     # still low: only the growth keeps it quiet
    assert found == []
    stuck = base + 0.15 * (varied - base)           # growth stops at a low diversity
    for step in (50, 60):
        found += alarm.check(FakeModel(stuck), z, step)[1]
    assert [k for k, _ in found] == ["collapse"]
