"""How a run is driven (not what is trained: that is the model config), and the
mailbox through which other threads command a running engine."""
from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Any


@dataclass
class EngineSettings:
    total_steps: int = 10_000
    log_every_s: float = 0.1
    log_every_steps: int = 0          # >0: also log every N steps (tests: exact lines)
    sample_every_s: float = 5.0
    sample_every_steps: int = 0
    checkpoint_every_s: float = 120.0
    checkpoint_every_steps: int = 0
    keep_checkpoints: int = 3
    n_samples: int = 64
    on_nan: str = "pause"             # "pause" (studio) or "stop" (CLI)
    device: str = "auto"
    precision: str = "auto"           # auto | fp32 | bf16
    # the collapse / imbalance alarm and KID / FID (GANs only; ganstudio.core.alarm, .quality)
    monitors: bool = True             # False: neither runs, no images are held out
    alarm_every_s: float = 20.0       # at least this far apart ...
    alarm_every_steps: int = 0        # >0: every N steps instead (deterministic)
    quality_every_s: float = 120.0    # 0 and quality_every_steps 0: never
    quality_every_steps: int = 0
    quality_samples: int = 500
    quality_features: str = "auto"    # auto (Inception if on disk, else random) | inception | random
    monitor_share: float = 0.05       # ... and time-based monitors cost at most this share
    # on a CPU: as many threads as the other programs leave cores free (core.cpu_share);
    # off when OMP_NUM_THREADS says how many
    share_cpu: bool = True


class Commands:
    """Thread-safe mailbox checked by the engine between steps."""

    def __init__(self) -> None:
        self.cond = threading.Condition()
        self.paused = False
        self.stop = False
        self.checkpoint = False
        self.rollback: float | None = None

    def set(self, **flags: Any) -> None:
        with self.cond:
            for k, v in flags.items():
                setattr(self, k, v)
            self.cond.notify_all()
