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
        self.d_rule = d_rule            # D's logits (capability d_logits), or None

    def make_latents(self, n, generator=None):
        return torch.randn(n, self.latent_dim, generator=generator)

    def sample(self, z):
        return self.bank[torch.arange(z.shape[0]) % self.bank.shape[0]]


SETTINGS = AlarmSettings(patience=2, start_step=10, n_images=48)


def run_checks(alarm, model, steps=(10, 20, 30)):
    z = torch.randn(48, 4)
    found = []
    for step in steps:
        values, warnings = alarm.check(model, z, step, model.d_rule)
        found += warnings
    return values, found


def test_collapsed_generator_fires_once_and_real_data_stays_quiet():
    real = shapes(48, seed=0)
    alarm = BalanceAlarm(real, settings=SETTINGS)
    one_image = shapes(1, seed=9).expand(48, -1, -1, -1) + 0.01 * torch.randn(48, 1, 16, 16)
    values, warnings = run_checks(alarm, FakeModel(one_image))
    assert values["diversity"] < 0.1
    assert [w.kind for w in warnings] == ["collapse"]               # once, after patience
    assert "mode collapse" in warnings[0].message and warnings[0].problem == "collapse"

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
    kinds = [w.kind for w in warnings]
    assert kinds == ["imbalance"]
    assert "discriminator wins" in warnings[0].message and warnings[0].problem == "d_wins"

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
    assert any(w.kind == "imbalance" and w.problem == "overfit" and "memorising" in w.message
               for w in warnings)

    fair = lambda x: x.mean(dim=(1, 2, 3))      # scores by brightness: no memory of the set
    quiet = BalanceAlarm(real, held, settings=SETTINGS)
    values, warnings = run_checks(quiet, FakeModel(shapes(48, seed=8), fair))
    assert 0.3 < values["d_overfit"] < 0.7
    assert not any("memorising" in w.message for w in warnings)


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
    assert AlarmSettings().start_step == 500 and AlarmSettings().patience == 2
    spec = ModelSpec("collapsed", "Collapsed", GAN,
                     common_gan_fields(resolution=16, resolutions=(16,), channels=1,
                                       batch_size=4), Collapsed)
    images = ((shapes(40, seed=0) + 1) * 127.5).to(torch.uint8)
    seen = []
    settings = EngineSettings(total_steps=600, device="cpu", precision="fp32", log_every_s=1e9,
                              sample_every_s=1e9, checkpoint_every_s=0, n_samples=4,
                              alarm_every_steps=100, quality_every_steps=300,
                              quality_samples=16)
    engine = Engine(spec, tmp_path / "run", images=images, settings=settings,
                    listeners=[seen.append])
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    warnings = [e for e in seen if isinstance(e, ev.Warning)]
    assert [w.kind for w in warnings] == ["collapse"]
    assert warnings[0].step == 600                # judged from step 500; bad twice in a row
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    alarm_lines = [l for l in lines if "diversity" in l]
    assert [l["step"] for l in alarm_lines] == [100, 200, 300, 400, 500, 600]
    assert all(l["diversity"] < 0.05 for l in alarm_lines)
    assert [l["step"] for l in lines if "kid" in l] == [300, 600]
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
    assert [w.kind for w in found] == ["collapse"]


# -- advice as data: what this run has not tried yet ---------------------------------------------
def _dcgan_spec():
    from ganstudio.plugins import PluginManager
    return PluginManager(load_folder=False).get_model("dcgan")


def test_advice_skips_what_the_run_already_uses():
    from ganstudio.core.alarm import advise
    from ganstudio.core.config import resolve_config
    spec = _dcgan_spec()
    default = resolve_config(spec.schema)                 # preset=default, augment=auto
    effective = dict(default, augment="color,translation,cutout", d_pause="off")
    tried: set[str] = set()
    # the preset is already default and its augmentation is on: halve G's learning rate
    assert advise("collapse", default, effective, spec, tried) == ({"lr_g": 1e-4}, "")
    # nothing left for collapse in this run: the data itself may be the problem
    assert advise("collapse", default, effective, spec, tried) == ({}, "add_images")
    classic = resolve_config(spec.schema, {"preset": "classic"})
    tried = set()
    assert advise("collapse", classic, dict(classic, augment="off"), spec, tried) == \
        ({"preset": "default"}, "")
    assert advise("d_wins", classic, dict(classic, augment="off"), spec, tried) == \
        ({"augment": "color,translation,cutout"}, "")
    assert advise("d_wins", classic, dict(classic, augment="off"), spec, tried) == \
        ({"d_pause": "on"}, "")
    assert advise("d_wins", classic, dict(classic, augment="off"), spec, tried) == \
        ({"lr_d": 1e-4}, "")


def test_engine_warning_of_a_model_without_remedies_says_the_data_may_be_the_problem(tmp_path):
    spec = ModelSpec("collapsed", "Collapsed", GAN,
                     common_gan_fields(resolution=16, resolutions=(16,), channels=1,
                                       batch_size=4), Collapsed)
    images = ((shapes(40, seed=0) + 1) * 127.5).to(torch.uint8)
    seen = []
    settings = EngineSettings(total_steps=600, device="cpu", precision="fp32", log_every_s=1e9,
                              sample_every_s=1e9, checkpoint_every_s=0, n_samples=4,
                              alarm_every_steps=100, quality_every_s=0)
    engine = Engine(spec, tmp_path / "run", images=images, settings=settings,
                    listeners=[seen.append])
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    (warning,) = [e for e in seen if isinstance(e, ev.Warning)]
    assert warning.kind == "collapse" and warning.settings == {}
    assert warning.action == "add_images" and "preset" not in warning.message


class SlowSampler(Collapsed):
    """Sampling costs 40 ms (as a large generator's does on a CPU); a step almost nothing."""

    @torch.no_grad()
    def sample(self, z):
        import time
        time.sleep(0.04)
        return super().sample(z)


def test_time_based_monitors_wait_for_their_measured_cost(tmp_path):
    """Asked to check every millisecond, the alarm runs once in 4 s of training: the next
    check waits for the first one's measured cost / its share of the time."""
    spec = ModelSpec("slow", "Slow", GAN,
                     common_gan_fields(resolution=16, resolutions=(16,), channels=1,
                                       batch_size=4), SlowSampler)
    images = ((shapes(40, seed=0) + 1) * 127.5).to(torch.uint8)
    settings = EngineSettings(total_steps=10**9, device="cpu", precision="fp32",
                              log_every_s=0.5, sample_every_s=1e9, checkpoint_every_s=0,
                              n_samples=4, alarm_every_s=0.001, quality_every_s=0)
    engine = Engine(spec, tmp_path / "run", images=images, settings=settings)
    engine.listeners.append(lambda e: engine.stop() if isinstance(e, ev.Metrics)
                            and e.time >= 4.0 else None)
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    rows = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = rows[-1]["step"]
    checks = [r for r in rows if "diversity" in r]
    clock = engine.monitors.clock
    cost, end = clock.last[0]
    assert cost >= 0.04 and clock.spent_s == cost            # it ran once, sleep included
    assert len(checks) == 1 and steps > 100                  # not at every step
    assert clock.next_at[0] - end >= cost / 0.025 - 1e-9     # 2.5 % of the time for the alarm


def test_monitor_clock_keeps_monitors_within_their_share_over_a_long_run():
    """The same rule over an hour of simulated training, with check costs from 0.2 to
    3 s: the monitors take at most 5 % of the time."""
    import random
    from ganstudio.core.engine.schedule import MonitorClock
    rnd = random.Random(0)
    settings = EngineSettings(alarm_every_s=1.0, quality_every_s=2.0)
    clock = MonitorClock(settings, now=0.0, first_cost_s=0.5)
    now, step, spent, biggest = 0.0, 0, 0.0, 0.0
    while now < 3600:
        now += 0.05                                          # one training step
        step += 1
        for i, due in enumerate(clock.due(step, now)):
            if due:
                cost = rnd.uniform(0.2, 3.0) * (1 + 4 * i)   # KID/FID costs more
                now += cost
                spent += cost
                biggest = max(biggest, cost)
                clock.ran(i, cost, now)
    assert spent == pytest.approx(clock.spent_s)
    # each check is followed by a wait of 40x its cost; only the last wait may be unfinished
    assert 0.03 < spent / now and spent <= 0.05 * now + biggest
    assert spent / now < 0.052


class CollapsedWithD(Collapsed):
    """The same, with D's logits: every image judged real."""

    def discriminate(self, images):
        return torch.ones(images.shape[0])


@pytest.mark.parametrize("declared", [True, False])
def test_the_engine_uses_d_logits_only_when_the_spec_declares_them(tmp_path, declared):
    spec = ModelSpec("collapsed-d", "Collapsed with D", GAN,
                     common_gan_fields(resolution=16, resolutions=(16,), channels=1,
                                       batch_size=4), CollapsedWithD,
                     capabilities=frozenset({"d_logits"} if declared else set()))
    images = ((shapes(40, seed=0) + 1) * 127.5).to(torch.uint8)
    settings = EngineSettings(total_steps=4, device="cpu", precision="fp32", log_every_s=1e9,
                              sample_every_s=1e9, checkpoint_every_s=0, n_samples=4,
                              alarm_every_steps=2, quality_every_steps=0)
    engine = Engine(spec, tmp_path / "run", images=images, settings=settings)
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    lines = [json.loads(l) for l in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    checked = [l for l in lines if "diversity" in l]
    assert checked, "the alarm ran"
    if declared:
        assert all(l["d_check_real"] == 1.0 and l["d_check_fake"] == 0.0 for l in checked)
    else:
        assert not any("d_auc" in l for l in checked)


class BestAtStep20(Collapsed):
    """Samples closest to the training images at step 20, noisier before and after."""

    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        self.calls = 0

    def train_step(self, real):
        self.calls += 1
        return super().train_step(real)

    @torch.no_grad()
    def sample(self, z):
        mix = min(1.0, abs(self.calls - 20) / 10)
        clean = shapes(z.shape[0], seed=1)
        noise = torch.rand(clean.shape, generator=torch.Generator().manual_seed(2)) * 2 - 1
        return (1 - mix) * clean + mix * noise

    def state_dict(self):
        return {"calls": torch.tensor(self.calls)}

    def load_state_dict(self, state):
        self.calls = int(state["calls"])


def test_the_live_kid_keeps_the_best_checkpoint(tmp_path):
    from ganstudio.core.checkpoints import read_keep_list
    from ganstudio.core.explore_state import read_state
    spec = ModelSpec("best20", "Best at 20", GAN,
                     common_gan_fields(resolution=16, resolutions=(16,), channels=1,
                                       batch_size=4), BestAtStep20)
    images = ((shapes(40, seed=0) + 1) * 127.5).to(torch.uint8)
    settings = EngineSettings(total_steps=40, device="cpu", precision="fp32", log_every_s=1e9,
                              sample_every_s=1e9, checkpoint_every_s=0, checkpoint_every_steps=5,
                              keep_checkpoints=1, n_samples=4, alarm_every_steps=0,
                              quality_every_steps=10, quality_samples=32,
                              quality_features="random")
    run = tmp_path / "run"
    engine = Engine(spec, run, images=images, settings=settings)
    engine.prepare()
    assert isinstance(engine.run_loop(), ev.Finished)
    lines = [json.loads(l) for l in (run / "metrics.jsonl").read_text().splitlines()]
    kid = {l["step"]: l["kid"] for l in lines if "kid" in l}
    assert sorted(kid) == [10, 20, 30, 40] and min(kid, key=kid.get) == 20
    state = read_state(run)
    assert state["best_step"] == 20 and state["kid_features"] == "random"
    assert set(state["kid"]) == {"10", "20"}       # each a new lowest when measured
    assert read_keep_list(run / "checkpoints") == {20}
    kept = sorted(p.name for p in (run / "checkpoints").glob("ckpt_*.pt"))
    assert kept == ["ckpt_00000020.pt", "ckpt_00000040.pt"]   # rotation keeps 1 + the best
    assert "KID" in (run / "events.log").read_text() and "kept as the run's best" in \
        (run / "events.log").read_text()
