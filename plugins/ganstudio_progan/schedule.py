"""The growth schedule of a progressive GAN, counted in real images shown to D.

Phases, in order: stabilise at 4x4; then for each doubling up to the target
resolution a fade-in (the new block's weight ``alpha`` rises linearly from 0
to 1) and a stabilise phase. After the last phase training simply continues
at the target resolution with ``alpha = 1``.

Everything here is integer arithmetic on the host: the schedule never reads
anything from the GPU.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from ganstudio.core.errors import ConfigError

from .networks import level_count, resolution_at


def parse_batch_sizes(text: str, setting: str = "batch_sizes") -> dict[int, int]:
    """``"4:64,8:64,16:32"`` -> ``{4: 64, 8: 64, 16: 32}``; ConfigError on bad input."""
    out: dict[int, int] = {}
    for part in str(text).replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            res_s, bs_s = part.split(":")
            res, bs = int(res_s), int(bs_s)
        except ValueError:
            raise ConfigError(f"setting '{setting}': '{part}' is not resolution:batch "
                              f"(example: 4:64,8:64,16:32)") from None
        if res < 4 or res & (res - 1):
            raise ConfigError(f"setting '{setting}': {res} is not a power-of-two resolution "
                              "of at least 4")
        if bs < 1:
            raise ConfigError(f"setting '{setting}': the batch for {res} px must be at least 1")
        out[res] = bs
    return out


def batch_for(resolution: int, table: dict[int, int], cap: int) -> int:
    """The batch for ``resolution``: its entry, else the nearest lower listed resolution's,
    else the nearest higher one's, else ``cap``; never above ``cap``."""
    if resolution in table:
        bs = table[resolution]
    else:
        lower = [r for r in table if r < resolution]
        higher = [r for r in table if r > resolution]
        bs = table[max(lower)] if lower else table[min(higher)] if higher else cap
    return max(1, min(bs, cap))


@dataclass(frozen=True)
class Phase:
    index: int
    level: int
    fading: bool
    start: int      # images shown when it begins
    images: int     # its length in images
    batch: int

    @property
    def resolution(self) -> int:
        return resolution_at(self.level)

    @property
    def end(self) -> int:
        return self.start + self.images


@dataclass(frozen=True)
class Position:
    phase: Phase
    alpha: float
    into: int           # images shown within the phase
    left_phase: int
    left_total: int

    @property
    def progress(self) -> float:
        return min(1.0, self.into / self.phase.images) if self.phase.images else 1.0


class Schedule:
    def __init__(self, target_resolution: int, fade_images: int, stable_images: int,
                 batch_sizes: dict[int, int], batch_cap: int):
        self.max_level = level_count(target_resolution)
        phases: list[Phase] = []
        start = 0

        def add(level: int, fading: bool, images: int) -> None:
            nonlocal start
            if images <= 0:
                return
            bs = batch_for(resolution_at(level), batch_sizes, batch_cap)
            phases.append(Phase(len(phases), level, fading, start, int(images), bs))
            start += int(images)

        add(0, False, stable_images)
        for level in range(1, self.max_level + 1):
            add(level, True, fade_images)
            add(level, False, stable_images)
        if not phases:
            raise ConfigError("the growth schedule is empty: give stable_images > 0")
        self.phases = phases
        self.total_images = start

    def at(self, shown: int) -> Position:
        """Where training stands after ``shown`` real images."""
        phase = self.phases[-1]
        for p in self.phases:
            if shown < p.end:
                phase = p
                break
        into = min(max(shown - phase.start, 0), phase.images)
        alpha = into / phase.images if phase.fading else 1.0
        return Position(phase, float(alpha), into, phase.images - into,
                        max(self.total_images - shown, 0))

    def steps(self) -> int:
        """Training steps (``--steps``) needed to finish the whole schedule.

        A step's batch is the one of the phase it starts in; a step that crosses
        into the next phase counts toward it (what the model does)."""
        shown, steps = 0, 0
        for p in self.phases:
            if shown >= p.end:
                continue
            n = math.ceil((p.end - shown) / p.batch)
            steps += n
            shown += n * p.batch
        return steps

    def describe(self) -> list[str]:
        return [f"phase {p.index}: {'fade-in to' if p.fading else 'stabilise at'} "
                f"{p.resolution} px, {p.images:,} images, batch {p.batch}" for p in self.phases]
