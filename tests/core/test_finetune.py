"""Fine-tuning: a new run starts from an earlier run's network weights (``init_from``).

A tiny GAN declared here (one linear layer each) keeps the test independent of
any built-in model; tests/plugins/test_fewshot_finetune.py runs the few-shot model.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn as nn
from PIL import Image

from ganstudio.core import finetune
from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.errors import UserError
from ganstudio.core.model import GAN, GANModel, LatentSpace, ModelSpec


class TinyGAN(GANModel):
    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        c, h, w = self.image_shape
        self.latent_dim = int(config["latent_dim"])
        self.G = nn.Sequential(nn.Linear(self.latent_dim, c * h * w), nn.Tanh())
        self.D = nn.Linear(c * h * w, 1)
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=float(config["lr_g"]))
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=float(config["lr_d"]))
        self.loaded_weights = 0

    def _gen(self, z):
        return self.G(z).view(z.shape[0], *self.image_shape)

    def train_step(self, real):
        fake = self._gen(torch.randn(real.shape[0], self.latent_dim))
        self.opt_d.zero_grad()
        loss_d = (torch.relu(1 - self.D(real.flatten(1))).mean()
                  + torch.relu(1 + self.D(fake.detach().flatten(1))).mean())
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        loss_g = -self.D(fake.flatten(1)).mean()
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}

    @torch.no_grad()
    def sample(self, z):
        return self._gen(z)

    def state_dict(self):
        return {"G": self.G.state_dict(), "D": self.D.state_dict(),
                "opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}

    def load_state_dict(self, state):
        self.load_weights(state)
        self.opt_g.load_state_dict(state["opt_g"])
        self.opt_d.load_state_dict(state["opt_d"])

    def load_weights(self, state):
        self.G.load_state_dict(state["G"])
        self.D.load_state_dict(state["D"])
        self.loaded_weights += 1

    def generator_module(self):
        return self.G


def _spec(model_id: str = "tiny", capabilities=frozenset({"finetune"})) -> ModelSpec:
    schema = common_gan_fields(resolution=16, resolutions=(16, 32), batch_size=4) + [
        Field("latent_dim", "int", 8, "z size", min=1, max=64),
        Field("lr_g", "float", 1e-2, "G rate", min=1e-6, max=1.0),
        Field("lr_d", "float", 1e-2, "D rate", min=1e-6, max=1.0),
    ]
    return ModelSpec(id=model_id, name=model_id, kind=GAN, schema=schema, factory=TinyGAN,
                     latent=LatentSpace(8), learning_rates=("lr_g", "lr_d"),
                     capabilities=frozenset(capabilities))


def _images(n: int = 12, size: int = 16) -> torch.Tensor:
    g = torch.Generator().manual_seed(0)
    return torch.randint(0, 256, (n, 3, size, size), generator=g, dtype=torch.uint8)


def _engine(spec, run: Path, steps: int, *, images=None, **kw) -> Engine:
    settings = EngineSettings(total_steps=steps, log_every_steps=1, log_every_s=1e9,
                              sample_every_steps=steps, sample_every_s=1e9,
                              checkpoint_every_steps=0, checkpoint_every_s=0, n_samples=4,
                              monitors=False, device="cpu", precision="fp32")
    return Engine(spec, run, settings=settings,
                  images=_images() if images is None else images, **kw)


def _train(spec, run: Path, steps: int, **kw) -> Engine:
    eng = _engine(spec, run, steps, **kw)
    eng.prepare()
    end = eng.run_loop()
    assert end.__class__.__name__ == "Finished", end
    return eng


def _grid(run: Path, step: int) -> np.ndarray:
    return np.asarray(Image.open(run / "samples" / f"step_{step:08d}.png"))


@pytest.fixture()
def source(tmp_path) -> Path:
    run = tmp_path / "source"
    _train(_spec(), run, 3, overrides={"latent_dim": 6, "seed": 5})
    return run


def test_the_first_grid_is_the_source_runs_grid(source, tmp_path):
    new = tmp_path / "new"
    eng = _engine(_spec(), new, 2, init_from=str(source),
                  images=_images(8).flip(-1))            # another folder
    eng.prepare()
    # the source's settings are the defaults: same latent size and seed, same fixed noise
    assert eng.config["latent_dim"] == 6 and eng.config["seed"] == 5
    assert eng.step == 0 and eng.model.loaded_weights == 1
    assert eng.model.opt_g.state_dict()["state"] == {}        # no optimizer state taken
    end = eng.run_loop()
    assert end.__class__.__name__ == "Finished"
    assert np.array_equal(_grid(new, 0), _grid(source, 3))
    assert not np.array_equal(_grid(new, 2), _grid(source, 3))   # and it trains on
    info = json.loads((new / "run.json").read_text())
    assert info["init_from"] == {"run": str(source), "checkpoint": "ckpt_00000003.pt",
                                 "step": 3, "model_id": "tiny"}
    assert (f"fine-tuning: started from {source} (ckpt_00000003.pt, step 3): its network "
            "weights; fresh optimizers, step 0") in (new / "events.log").read_text()


def test_settings_given_win_over_the_sources(source, tmp_path):
    eng = _engine(_spec(), tmp_path / "new", 1, init_from=str(source),
                  overrides={"lr_g": 1e-3})
    eng.prepare()
    assert eng.config["lr_g"] == 1e-3 and eng.config["latent_dim"] == 6
    assert eng.model.opt_g.param_groups[0]["lr"] == 1e-3


def test_checkpoint_by_step_or_name(tmp_path):
    src = tmp_path / "src"
    eng = _engine(_spec(), src, 4)
    eng.settings.checkpoint_every_steps = 2
    eng.settings.keep_checkpoints = 5
    eng.prepare()
    eng.run_loop()
    for ref, step in ((f"{src}:2", 2), (f"{src}:ckpt_00000002.pt", 2), (f"{src}:latest", 4),
                      (str(src), 4)):
        assert finetune.resolve(ref, _spec()).step == step
    with pytest.raises(UserError, match=r"checkpoint '9' not found .* steps 2, 4"):
        finetune.resolve(f"{src}:9", _spec())


def test_incompatible_runs_are_refused(source, tmp_path):
    # another shape: the message names the tensor and the setting that differs
    eng = _engine(_spec(), tmp_path / "wider", 1, init_from=str(source),
                  overrides={"latent_dim": 7})
    with pytest.raises(UserError) as e:
        eng.prepare()
    text = str(e.value)
    assert "do not fit" in text and "G.0.weight is (768, 6) there, (768, 7) here" in text
    assert "latent_dim 6 there, 7 here" in text
    assert not (tmp_path / "wider" / "run.json").exists()
    # another model
    with pytest.raises(UserError, match="is a 'tiny' run; a 'other' run can only start"):
        _engine(_spec("other"), tmp_path / "o", 1, init_from=str(source)).prepare()
    # a model that cannot take weights
    with pytest.raises(UserError, match="does not declare the 'finetune' capability"):
        _engine(_spec(capabilities=()), tmp_path / "n", 1, init_from=str(source)).prepare()
    # not a run
    with pytest.raises(UserError, match="run folder not found"):
        _engine(_spec(), tmp_path / "m", 1, init_from=str(tmp_path / "missing")).prepare()
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(UserError, match="no run.json"):
        _engine(_spec(), tmp_path / "e", 1, init_from=str(empty)).prepare()


def test_a_run_without_checkpoints_is_refused(tmp_path):
    run = tmp_path / "fresh"
    eng = _engine(_spec(), run, 1)
    eng.prepare()          # run.json written, no step trained yet
    with pytest.raises(UserError, match="no usable checkpoint"):
        finetune.resolve(str(run), _spec())


def test_resuming_a_finetuned_run_does_not_reload_the_source(source, tmp_path):
    new = tmp_path / "new"
    _train(_spec(), new, 2, init_from=str(source))
    import shutil
    shutil.rmtree(source)
    eng = _engine(_spec(), new, 4, init_from=str(source), resume=True)
    eng.prepare()
    assert eng.step == 2 and eng.model.loaded_weights == 1   # only through load_state_dict
    eng.run_loop()
    info = json.loads((new / "run.json").read_text())
    assert info["init_from"]["step"] == 3


def test_starting_a_finetuned_run_over_forgets_its_source_unless_given_again(source, tmp_path):
    new = tmp_path / "new"
    _train(_spec(), new, 2, init_from=str(source))
    _train(_spec(), new, 2, restart=True)                 # fresh weights from step 0
    assert "init_from" not in json.loads((new / "run.json").read_text())
    _train(_spec(), new, 2, restart=True, init_from=str(source))
    assert json.loads((new / "run.json").read_text())["init_from"]["step"] == 3


def test_split_reference(tmp_path):
    odd = tmp_path / "a:b"
    odd.mkdir()
    assert finetune.split_reference(str(odd)) == (odd, None)
    assert finetune.split_reference(f"{tmp_path}/run:200") == (tmp_path / "run", "200")
    assert finetune.split_reference("runs/cats") == (Path("runs/cats"), None)
    with pytest.raises(UserError):
        finetune.split_reference("  ")


def test_a_crafted_source_checkpoint_is_refused_not_loaded(tmp_path):
    """A source run may come from someone else: its checkpoints' contents are checked as
    a resume checks them (the checksum only proves the file is whole)."""
    from ganstudio.core.checkpoints import save_checkpoint
    src = tmp_path / "src"
    eng = _engine(_spec(), src, 4)
    eng.prepare()
    eng.run_loop()
    good = finetune.resolve(str(src), _spec())
    save_checkpoint({"step": 900, "model_id": "tiny", "model": good.state},
                    src / "checkpoints", 900, keep_last=10)      # beyond the run's records
    with pytest.raises(UserError, match=r"its step \(900\) lies beyond this run's records"):
        finetune.resolve(f"{src}:900", _spec())
    assert finetune.resolve(str(src), _spec()).step == 4          # latest: passed over
    save_checkpoint({"step": 3, "model_id": "tiny", "model": "not a state"},
                    src / "checkpoints", 3, keep_last=10)
    with pytest.raises(UserError, match="its model state is missing or not a dictionary"):
        finetune.resolve(f"{src}:3", _spec())
