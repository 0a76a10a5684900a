"""Training on a CPU that other programs use too: as many threads as cores are free.

PyTorch splits each operation over its intra-op threads, and every thread
waits for the slowest at the end. When another program keeps one of the cores
busy, one of those threads keeps losing its core and all the others wait: on
a 2-core machine a small DCGAN step then takes about 2.6 times as long with 2
threads as with 1 (``python -m ganstudio.bench.busy_cpu`` measures it).

:class:`CpuShare` watches how much CPU the *other* processes use (Linux
``/proc/stat`` less this process's own time from ``/proc/self/stat``), over a
few seconds, and gives the thread count that leaves them their cores: never
more than the count the run started with, never fewer than one. The engine
applies it between steps on a CPU device, unless the user chose the threads
(``OMP_NUM_THREADS``). Elsewhere (no ``/proc``) it changes nothing.
"""
from __future__ import annotations

import os
import time
from typing import Callable

_CLK_TCK = os.sysconf("SC_CLK_TCK") if hasattr(os, "sysconf") else 100


def _system_busy_ticks() -> int | None:
    """Busy clock ticks of all CPUs together (user, nice, system, irq, softirq, steal)."""
    try:
        with open("/proc/stat", "rb") as f:
            fields = f.readline().split()
    except OSError:
        return None
    if not fields or fields[0] != b"cpu" or len(fields) < 8:
        return None
    values = [int(v) for v in fields[1:]]
    user, nice, system, _idle, _iowait, irq, softirq = values[:7]
    steal = values[7] if len(values) > 7 else 0
    return user + nice + system + irq + softirq + steal


def _own_ticks() -> int | None:
    """Clock ticks this process (all its threads) has run (utime + stime)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
    except OSError:
        return None
    fields = stat[stat.rfind(b")") + 2:].split()
    try:
        return int(fields[11]) + int(fields[12])
    except (IndexError, ValueError):
        return None


def usable_cores() -> int:
    """The cores this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


class CpuShare:
    """The thread count that leaves other programs the cores they are using.

    ``max_threads``: the most (the count the run started with). ``interval_s``:
    how long a measurement spans. :meth:`poll` returns a new thread count when one
    is due and differs from the current one, else None.
    """

    def __init__(self, max_threads: int, *, interval_s: float = 5.0,
                 cores: int | None = None, clock: Callable[[], float] = time.monotonic,
                 system_ticks: Callable[[], int | None] = _system_busy_ticks,
                 own_ticks: Callable[[], int | None] = _own_ticks):
        self.max_threads = max(1, int(max_threads))
        self.threads = self.max_threads
        self.interval_s = float(interval_s)
        self.cores = int(cores or usable_cores())
        self._clock, self._system, self._own = clock, system_ticks, own_ticks
        self.others = 0.0                     # cores the other processes used, last measured
        self._looked = False
        self._start = self._sample()

    def _sample(self) -> tuple[float, int, int] | None:
        system, own = self._system(), self._own()
        if system is None or own is None:
            return None
        return self._clock(), system, own

    @property
    def available(self) -> bool:
        return self._start is not None

    def poll(self) -> int | None:
        # the first look comes after a second: a run that starts beside a busy program
        # should not spend its first interval at the slow pace
        wait = self.interval_s if self._looked else min(1.0, self.interval_s)
        if self._start is None or self._clock() - self._start[0] < wait:
            return None
        self._looked = True
        return self._measure()

    def poll_now(self, min_seconds: float = 0.3,
                 sleep: Callable[[float], None] = time.sleep) -> int | None:
        """Measure now, over at least ``min_seconds`` since the last measurement (waiting
        for the rest): the run-time estimate's single look before it times steps."""
        if self._start is None:
            return None
        rest = min_seconds - (self._clock() - self._start[0])
        if rest > 0:
            sleep(rest)
        return self._measure()

    def _measure(self) -> int | None:
        t0, system0, own0 = self._start
        now = self._clock()
        sample = self._sample()
        if sample is None:
            return None
        self._start = sample
        _, system1, own1 = sample
        seconds = (now - t0) * _CLK_TCK
        self.others = max(0.0, ((system1 - system0) - (own1 - own0)) / seconds)
        wanted = self.threads_for(self.others)
        if wanted == self.threads:
            return None
        self.threads = wanted
        return wanted

    def threads_for(self, others: float) -> int:
        """Threads when other programs use ``others`` cores (a core counts as taken from
        a third of it on: a thread that loses its core a third of the time already
        makes every other one wait)."""
        free = self.cores - int(others + 2 / 3)
        return max(1, min(self.max_threads, free))
