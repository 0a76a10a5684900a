"""On a CPU other programs use too, the engine trains with as many threads as cores
are free (core.cpu_share), and puts the thread count back afterwards."""
from __future__ import annotations

import torch

from ganstudio.core import cpu_share
from ganstudio.core.cpu_share import CpuShare


class Ticks:
    """A fake clock and /proc counters: ``advance(seconds, others_cores, own_cores)``."""

    def __init__(self):
        self.t, self.system, self.own = 0.0, 0, 0

    def advance(self, seconds, others, own):
        hz = cpu_share._CLK_TCK
        self.t += seconds
        self.own += int(own * seconds * hz)
        self.system += int((own + others) * seconds * hz)

    def share(self, max_threads=2, cores=2):
        return CpuShare(max_threads, interval_s=5.0, cores=cores, clock=lambda: self.t,
                        system_ticks=lambda: self.system, own_ticks=lambda: self.own)


def test_threads_follow_the_cores_other_programs_leave():
    t = Ticks()
    share = t.share()
    t.advance(0.5, others=1.0, own=1.0)
    assert share.poll() is None                  # the first look comes after a second
    t.advance(0.7, others=1.0, own=1.0)
    assert share.poll() == 1 and abs(share.others - 1.0) < 0.05
    t.advance(3, others=1.0, own=1.0)
    assert share.poll() is None                  # then every interval (5 s)
    t.advance(3, others=1.0, own=1.0)
    assert share.poll() is None                  # unchanged: nothing to do
    t.advance(6, others=0.0, own=2.0)            # the other program ended
    assert share.poll() == 2
    t.advance(6, others=0.4, own=1.6)            # a third of a core on: counted as taken
    assert share.poll() == 1
    t.advance(6, others=0.2, own=1.8)            # a little background work: not
    assert share.poll() == 2


def test_never_more_than_the_run_started_with_nor_fewer_than_one():
    t = Ticks()
    share = t.share(max_threads=4, cores=8)
    t.advance(6, others=0.0, own=4.0)
    assert share.poll() is None and share.threads == 4     # 8 free, but 4 at most
    t.advance(6, others=8.0, own=0.5)
    assert share.poll() == 1


def test_without_proc_nothing_changes():
    share = CpuShare(2, system_ticks=lambda: None, own_ticks=lambda: None)
    assert not share.available and share.poll() is None


def test_the_engine_lowers_its_threads_and_puts_them_back(tmp_path, monkeypatch):
    """A fake share that asks for 1 thread at the first poll: the engine applies it between
    steps, says so in events.log, and restores the count it started with."""
    from ganstudio.core.engine import Engine, EngineSettings
    from ganstudio.core.engine import loop
    from ganstudio.plugins import PluginManager
    from ganstudio.testing import tiny_images

    seen = []

    class OneThread(CpuShare):
        def __init__(self, max_threads, **kw):
            super().__init__(max_threads, cores=2, system_ticks=lambda: 0,
                             own_ticks=lambda: 0)
            self.asked = False

        def poll(self):
            seen.append(torch.get_num_threads())
            if self.asked:
                return None
            self.asked, self.others, self.threads = True, 1.0, 1
            return 1

    monkeypatch.setattr(loop, "CpuShare", OneThread)
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        pm = PluginManager(load_folder=False)
        spec = pm.get_model(pm.benchmark_references()[0].model_id)
        eng = Engine(spec, tmp_path / "run", images=tiny_images(16, 3, 32),
                     overrides={**spec.test_settings, "resolution": 32, "batch_size": 4},
                     settings=EngineSettings(total_steps=4, device="cpu", precision="fp32",
                                             monitors=False, sample_every_s=1e9,
                                             checkpoint_every_s=0))
        eng.prepare()
        eng.run_loop()
        assert seen[:2] == [2, 1]                # lowered after the first step
        assert torch.get_num_threads() == 2      # and put back at the end
        assert "1 CPU thread(s) (other programs use 1.0 of 2 cores)" in \
            (tmp_path / "run" / "events.log").read_text()
    finally:
        torch.set_num_threads(before)


def test_poll_now_measures_over_at_least_the_given_time():
    t = Ticks()
    share = t.share()
    slept = []

    def sleep(seconds):           # the other program keeps running while we wait
        slept.append(seconds)
        t.advance(seconds, others=1.0, own=0.0)

    t.advance(0.1, others=1.0, own=2.0)
    assert share.poll_now(0.3, sleep=sleep) == 1
    assert abs(slept[0] - 0.2) < 1e-9 and abs(share.others - 1.0) < 0.05
