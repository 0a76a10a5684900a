"""ganstudio.core.distributed: rank info, random streams, the one writer, and two real
gloo processes training a tiny GAN through DistributedDataParallel."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch

from ganstudio.core import distributed as dist
from ganstudio.core.engine.ranks import FollowerRun
from ganstudio.core.errors import UserError
from ganstudio.core.runs import RunFolder

REPO = Path(__file__).resolve().parents[2]


# -- rank info from torchrun's environment ------------------------------------------------------
def test_a_plain_process_is_rank_0_of_1():
    info = dist.rank_info({})
    assert (info.rank, info.world_size, info.distributed, info.is_writer) == (0, 1, False, True)


def test_rank_info_reads_torchruns_variables():
    env = {"RANK": "3", "WORLD_SIZE": "4", "LOCAL_RANK": "1", "LOCAL_WORLD_SIZE": "2",
           "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500"}
    info = dist.rank_info(env)
    assert (info.rank, info.world_size, info.local_rank, info.local_world_size) == (3, 4, 1, 2)
    assert info.distributed and not info.is_writer and info.label == "rank 3"
    assert dist.global_batch(16, info) == 64


@pytest.mark.parametrize("env, fragment", [
    ({"RANK": "2", "WORLD_SIZE": "2", "MASTER_ADDR": "h", "MASTER_PORT": "1"}, "RANK=2"),
    ({"RANK": "x", "WORLD_SIZE": "2"}, "RANK='x'"),
    ({"RANK": "0", "WORLD_SIZE": "2", "MASTER_PORT": "1"}, "MASTER_ADDR"),
    ({"RANK": "0"}, "WORLD_SIZE"),
])
def test_rank_info_refuses_values_that_do_not_fit(env, fragment):
    with pytest.raises(UserError, match=fragment.replace("(", r"\(")):
        dist.rank_info(env)


def test_backend_and_device_per_rank():
    assert dist.backend_for(torch.device("cpu")) == "gloo"
    assert dist.backend_for(torch.device("cuda", 1)) == "nccl"
    two = dist.RankInfo(1, 2, 1, 2)
    assert dist.device_for_rank(torch.device("cpu"), two) == torch.device("cpu")
    with pytest.raises(UserError, match="MPS"):
        dist.device_for_rank(torch.device("mps"), two)


def test_each_rank_and_each_resume_gets_its_own_stream():
    assert dist.rank_seed(7, 0, 0) == 7                      # one process: unchanged
    seeds = {dist.rank_seed(7, r, s) for r in range(4) for s in (0, 100)}
    assert len(seeds) == 8
    assert dist.rank_seed(7, 1, 100) == dist.rank_seed(7, 1, 100)   # deterministic
    a = torch.Generator().manual_seed(dist.rank_seed(7, 0, 0))
    b = torch.Generator().manual_seed(dist.rank_seed(7, 1, 0))
    assert not torch.equal(torch.randint(0, 1000, (8,), generator=a),
                           torch.randint(0, 1000, (8,), generator=b))


def test_a_model_without_ddp_is_refused_for_several_processes(tiny_spec):
    with pytest.raises(UserError, match="cannot train on several processes.*2"):
        dist.check_capability(tiny_spec, dist.RankInfo(0, 2, 0, 2))
    dist.check_capability(tiny_spec, dist.RankInfo())        # one process is fine


# -- the one writer ------------------------------------------------------------------------------
def test_a_follower_writes_only_its_warnings_prefixed(tmp_path):
    writer = RunFolder(tmp_path / "run")
    writer.create({"model_id": "m", "config": {"a": 1}})
    before = writer.info_path.read_text()
    follower = FollowerRun(tmp_path / "run", dist.RankInfo(1, 2, 1, 2))
    follower.create({"model_id": "other", "config": {}})
    follower.write_info({"model_id": "other", "config": {}})
    follower.append_metrics([{"step": 1, "loss": 1.0}])
    follower.log("checkpoint ckpt_00000001.pt")            # info: rank 0 says these
    follower.log("the device is slow\nsecond line", "WARNING")
    follower.announce("rank 1 of 2 joined")
    with follower.lock(), writer.lock():                    # no lock taken by a follower
        pass
    assert writer.info_path.read_text() == before
    assert follower.read_info()["model_id"] == "m"          # it still reads the run
    assert not writer.metrics_path.exists()
    log = writer.events_path.read_text().splitlines()
    assert len(log) == 3
    assert log[0].endswith("WARNING rank 1: the device is slow")
    assert log[1].endswith("rank 1: second line")
    assert log[2].endswith("INFO    rank 1: rank 1 of 2 joined")


# -- two gloo processes --------------------------------------------------------------------------
#: Worker run by each rank: a tiny GAN (linear G and D, no batch norm) whose step takes
#: its real images and latents as given, so one distributed step can be compared with
#: one single-process step on the whole batch.
WORKER = textwrap.dedent('''
    import json, sys, torch
    import torch.nn as nn
    import torch.nn.functional as F
    from ganstudio.core import distributed as dist
    from ganstudio.core.model import GANModel

    class Tiny(GANModel):
        def __init__(self):
            super().__init__({"batch_size": 4}, (1, 4, 4), torch.device("cpu"))
            self.G = nn.Sequential(nn.Linear(3, 16), nn.Tanh())
            self.D = nn.Sequential(nn.Linear(16, 8), nn.LeakyReLU(0.2), nn.Linear(8, 1))
            # plain SGD: the update is the gradient itself (Adam's first step is
            # about lr * sign(gradient) and would hide a wrong gradient average)
            self.opt_g = torch.optim.SGD(self.G.parameters(), lr=0.5)
            self.opt_d = torch.optim.SGD(self.D.parameters(), lr=0.5)

        def trained_networks(self):
            return {"g": self.G, "d": self.D}

        def step(self, real, z):
            G, D = self.network("g"), self.network("d")
            fake = G(z)
            self.opt_d.zero_grad(set_to_none=True)
            out_r, out_f = D(real).view(-1), D(fake.detach()).view(-1)
            loss_d = (F.binary_cross_entropy_with_logits(out_r, torch.ones_like(out_r))
                      + F.binary_cross_entropy_with_logits(out_f, torch.zeros_like(out_f)))
            loss_d.backward()
            self.opt_d.step()
            self.D.requires_grad_(False)            # as DCGAN does: D frozen for G's step
            self.opt_g.zero_grad(set_to_none=True)
            out_g = D(fake).view(-1)
            loss_g = F.binary_cross_entropy_with_logits(out_g, torch.ones_like(out_g))
            loss_g.backward()
            self.opt_g.step()
            self.D.requires_grad_(True)
            return torch.stack([loss_d.detach(), loss_g.detach()])

    def batch(seed, n):
        g = torch.Generator().manual_seed(seed)
        return torch.rand(n, 16, generator=g) * 2 - 1, torch.randn(n, 3, generator=g)

    def params(model):
        return [p.detach().clone() for n in model.trained_networks().values()
                for p in n.parameters()]

    if __name__ == "__main__":
        out_path, B = sys.argv[1], 4
        info = dist.rank_info()
        torch.manual_seed(dist.rank_seed(0, info.rank))      # different starts per rank
        model = Tiny()
        ranks = dist.Ranks.start(info, torch.device("cpu"), timeout_s=60)
        ranks.wrap(model, "tiny")                # broadcasts rank 0's weights
        start = params(model)
        # (a) one step on this rank's half of a fixed batch of 2B
        real, z = batch(123, 2 * B)
        share = slice(info.rank * B, (info.rank + 1) * B)
        losses = model.step(real[share], z[share])
        after_one = params(model)
        mean = ranks.average(losses)
        # (b) three more steps on data only this rank sees
        for k in range(3):
            model.step(*batch(1000 * (info.rank + 1) + k, B))
        flags = ranks.agree([info.rank == 1, False, info.rank == 0])
        diff = ranks.max_difference(params(model))
        torch.save({"start": start, "after_one": after_one, "final": params(model),
                    "losses": losses, "mean": mean, "flags": flags, "diff": diff}, out_path)
        ranks.barrier()
        ranks.close()
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _load_worker(tmp_path: Path):
    import importlib.util
    path = tmp_path / "ddp_worker.py"
    path.write_text(WORKER)
    spec = importlib.util.spec_from_file_location("ddp_worker", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return path, module


@pytest.fixture(scope="module")
def two_ranks(tmp_path_factory):
    """Run the worker as rank 0 and rank 1 of a gloo group (two real processes)."""
    tmp = tmp_path_factory.mktemp("ddp")
    path, module = _load_worker(tmp)
    port = _free_port()
    procs = []
    for rank in range(2):
        env = {**os.environ, "RANK": str(rank), "WORLD_SIZE": "2", "LOCAL_RANK": str(rank),
               "LOCAL_WORLD_SIZE": "2", "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port),
               "OMP_NUM_THREADS": "1", "PYTHONPATH": str(REPO)}
        procs.append(subprocess.Popen([sys.executable, str(path), str(tmp / f"rank{rank}.pt")],
                                      env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      text=True))
    for p in procs:
        out, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    results = [torch.load(tmp / f"rank{r}.pt") for r in range(2)]
    return module, results


def test_parameters_stay_identical_on_both_ranks(two_ranks):
    _module, (r0, r1) = two_ranks
    for a, b in zip(r0["start"], r1["start"]):      # wrapping copied rank 0's weights
        assert torch.equal(a, b)
    for a, b in zip(r0["final"], r1["final"]):      # each rank saw other data, same weights
        assert torch.equal(a, b)
    assert any(not torch.equal(a, b) for a, b in zip(r0["start"], r0["final"]))
    assert r0["diff"] == r1["diff"] == 0.0


def test_logged_losses_are_averaged_and_flags_agreed(two_ranks):
    _module, (r0, r1) = two_ranks
    assert not torch.allclose(r0["losses"], r1["losses"])  # each rank's own half
    expected = (r0["losses"] + r1["losses"]) / 2
    assert torch.allclose(r0["mean"], expected) and torch.allclose(r1["mean"], expected)
    assert r0["flags"] == r1["flags"] == [True, False, True]


def test_one_distributed_step_equals_one_step_on_the_whole_batch(two_ranks):
    """Per-rank batch B on 2 ranks == batch 2B in one process (no batch norm)."""
    module, (r0, _r1) = two_ranks
    model = module.Tiny()
    with torch.no_grad():
        for p, w in zip([p for n in model.trained_networks().values() for p in n.parameters()],
                        r0["start"]):
            p.copy_(w)
    real, z = module.batch(123, 8)
    model.step(real, z)
    for single, distributed in zip(module.params(model), r0["after_one"]):
        assert torch.allclose(single, distributed, rtol=1e-5, atol=1e-6)
    assert any(not torch.equal(a, b) for a, b in zip(r0["start"], r0["after_one"]))


# -- the conformance kit's ddp check -------------------------------------------------------------
#: Two tiny models: one calls its networks through self.network() (as a ddp model must),
#: the other calls them directly, so each process trains on its own.
CHECK_PLUGIN = '''
import torch
import torch.nn as nn
import ganstudio
from ganstudio.core.config import common_gan_fields
from ganstudio.core.model import GAN, GANModel, ModelSpec

__version__ = "0.0.1"
GANSTUDIO_PLUGIN_API = 1


class Lin(GANModel):
    through_wrapper = True

    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        c, h, w = self.image_shape
        self.G, self.D = nn.Linear(4, c * h * w), nn.Linear(c * h * w, 1)
        self.opt_g = torch.optim.SGD(self.G.parameters(), lr=0.1)
        self.opt_d = torch.optim.SGD(self.D.parameters(), lr=0.1)

    def trained_networks(self):
        return {"g": self.G, "d": self.D}

    def train_step(self, real):
        G, D = ((self.network("g"), self.network("d")) if self.through_wrapper
                else (self.G, self.D))
        z = torch.randn(real.shape[0], 4)
        self.opt_d.zero_grad()
        loss_d = D(G(z).detach()).mean() - D(real.flatten(1)).mean()
        loss_d.backward()
        self.opt_d.step()
        self.opt_g.zero_grad()
        loss_g = -D(G(z)).mean()
        loss_g.backward()
        self.opt_g.step()
        return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}


class Direct(Lin):
    through_wrapper = False


def spec(id, factory):
    return ModelSpec(id=id, name=id, kind=GAN, factory=factory,
                     schema=common_gan_fields(resolution=8, resolutions=(8,), batch_size=4),
                     capabilities=frozenset({"ddp"}))


@ganstudio.hookimpl
def ganstudio_register_models():
    return [spec("lin_wrapped", Lin), spec("lin_direct", Direct)]
'''


def test_ddp_check_passes_a_wrapped_model_and_catches_a_direct_call(plugins_dir):
    from ganstudio.core.ddp_check import check_ddp
    (plugins_dir / "check_plugin.py").write_text(CHECK_PLUGIN)
    good = check_ddp("lin_wrapped", steps=3)
    assert good.ok and good.max_difference == 0.0, good.detail
    bad = check_ddp("lin_direct", steps=3)
    assert not bad.ok and bad.max_difference > 0
    assert "self.network(name)" in bad.detail


def test_a_lost_peer_is_said_in_one_short_sentence():
    ranks = dist.Ranks(dist.RankInfo(0, 2, 0, 2), torch.device("cpu"))
    err = RuntimeError("[/src/third_party/gloo/gloo/transport/tcp/pair.cc:545] Read error "
                       "[127.0.0.1]:48344: Connection reset by peer. This is typically caused "
                       "by a remote worker hanging. Good luck!\nmore")
    assert dist.is_collective_failure(err)
    message = str(ranks.lost_contact(err, "during step 7"))
    assert message == ("rank 0 lost contact with the other ranks during step 7 (one of them "
                       "stopped, failed or was killed): RuntimeError: Read error "
                       "[127.0.0.1]:48344: Connection reset by peer")
    assert not dist.is_collective_failure(ValueError("bad shape"))
