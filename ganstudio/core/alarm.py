"""The collapse and imbalance alarm: cheap signals that need no pretrained network.

Every few seconds the engine asks :class:`BalanceAlarm` to look at the model:

1. **Diversity** (``diversity`` in metrics): the mean pairwise distance of
   the fixed-noise samples, divided by the same figure for real images, in
   the feature space of :class:`~ganstudio.core.quality.RandomFeatures`.
   Near 1 = as varied as the data; near 0 = every sample looks the same
   (mode collapse, or a generator stuck on one flat image).
2. **D's accuracy on real vs fake** (``d_check_real``, ``d_check_fake``,
   ``d_auc``; measured on clean images, unlike a model's own ``d_acc_*``
   training figures which see augmented ones): how often D scores training images above 0 and samples below
   0, and the probability that a random real image outscores a random
   sample. When D is right every time, G's gradient carries almost nothing:
   the imbalance the GAN literature warns about.
3. **D's overfitting gap** (``d_overfit``): the probability that D scores
   a training image above a *held-out* image it has never trained on (0.5 =
   no memorisation; ADA's overfitting heuristic, Karras et al., 2020).

A warning fires after ``patience`` consecutive bad checks, once, and re-arms
when the signal recovers. D's logits come from the model's
``discriminate(images)`` when its spec declares capability ``d_logits``
(the caller passes it in); without it only diversity is watched.

Each warning carries advice as data (:func:`advise`): the next setting worth
changing that this run has not tried yet - its current (effective) value
differs, and it was not suggested before - or, when nothing is left, that the
folder may be too small or too varied. The faces word it.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, NamedTuple

import torch

from .quality import FeatureExtractor, RandomFeatures, mean_pairwise_distance


@dataclass
class AlarmSettings:
    collapse_ratio: float = 0.35      # diversity below this fraction of the data's = collapse
    rising: float = 1.1               # ... unless it grew this much since the last check
    d_win_accuracy: float = 0.97      # D right this often on both real and fake ...
    d_win_auc: float = 0.995          # ... and separating them this cleanly = imbalance
    overfit_auc: float = 0.8          # D prefers training over held-out images this often
    patience: int = 2                 # consecutive bad checks before warning
    # no verdicts before this step: for the first few hundred steps every sample is much
    # the same noise, which is the start of learning, not a collapse
    start_step: int = 500
    n_images: int = 64                # images per check (samples, real, held-out)


class AlarmWarning(NamedTuple):
    """``kind``: "collapse" or "imbalance"; ``problem``: "collapse", "d_wins" or
    "overfit"; ``message``: the facts, in plain words, without advice."""
    kind: str
    message: str
    problem: str


#: What to try for each problem, in order: (setting, value) pairs, or ("lr", network)
#: for "halve the learning rate that sets this optimizer" (from the spec's
#: declared learning rates). Pairs whose setting the model lacks are passed over.
AUGMENT = "color,translation,cutout"
REMEDIES: dict[str, list[tuple[str, Any]]] = {
    "collapse": [("preset", "default"), ("augment", AUGMENT), ("lr", "g")],
    "d_wins": [("preset", "default"), ("augment", AUGMENT), ("d_pause", "on"), ("lr", "d"),
               ("label_smoothing", 0.1)],
    "overfit": [("augment", AUGMENT), ("augment_adaptive", "on")],
}


def advise(problem: str, config: dict[str, Any], effective: dict[str, Any], spec: Any,
           suggested: set[str]) -> tuple[dict[str, Any], str]:
    """The next remedy for ``problem`` not yet tried in this run: ``({setting: value}, "")``,
    or ``({}, "add_images")`` when every one is in use or was suggested already.

    ``config`` is the run's settings, ``effective`` the model's view of them (presets
    resolved), ``spec`` the ModelSpec (schema and declared learning rates), and
    ``suggested`` the settings advised earlier in this run (updated here)."""
    from .errors import ConfigError

    for key, value in REMEDIES.get(problem, []):
        if key == "lr":
            key = next((k for k, names in spec.lr_targets().items() if names == (value,)),
                       next((k for k, names in spec.lr_targets().items() if value in names),
                            ""))
            current = config.get(key)
            if not key or not isinstance(current, (int, float)):
                continue
            value = float(current) / 2
        field = spec.field(key) if key else None
        if field is None or key in suggested:
            continue
        try:
            value = field.validate(value)
        except ConfigError:
            continue
        in_use = {str(config.get(key, "")).lower(), str(effective.get(key, "")).lower()}
        if str(value).lower() in in_use:
            continue
        suggested.add(key)
        return {key: value}, ""
    return {}, "add_images"


def split_holdout(images: torch.Tensor, seed: int = 0, *, fraction: float = 0.05,
                  max_held: int = 64, min_total: int = 320
                  ) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Set aside a few training images D never sees, for the overfitting gap.

    Deterministic in ``seed`` (a resumed run gets the same split). Datasets
    under ``min_total`` images are left whole: every image counts there.
    """
    n = int(images.shape[0])
    held_n = min(int(max_held), int(n * fraction))
    if n < min_total or held_n < 16:
        return images, None
    g = torch.Generator().manual_seed(int(seed) + 7919)
    perm = torch.randperm(n, generator=g)
    held_idx, train_idx = perm[:held_n].sort().values, perm[held_n:].sort().values
    return images.index_select(0, train_idx), images.index_select(0, held_idx)


def _auc(pos: torch.Tensor, neg: torch.Tensor) -> float:
    """P(pos > neg) over all pairs, ties counting one half (the Mann-Whitney AUC)."""
    pos, neg = pos.float().view(-1, 1), neg.float().view(1, -1)
    return float(((pos > neg).float() + 0.5 * (pos == neg).float()).mean())


def _pct(x: float) -> str:
    return f"{100 * x:.0f}%"


class BalanceAlarm:
    """Watches one model; :meth:`check` returns metric values and warnings.

    ``real`` and ``held_out`` are float images in [-1, 1] (``held_out`` may
    be None). Warnings are :class:`AlarmWarning` (kind ``"collapse"`` or
    ``"imbalance"``); :func:`advise` says what to change.
    """

    def __init__(self, real: torch.Tensor, held_out: torch.Tensor | None = None, *,
                 extractor: FeatureExtractor | None = None,
                 settings: AlarmSettings | None = None):
        self.settings = s = settings or AlarmSettings()
        self.extractor = extractor or RandomFeatures(real.device)
        self.real = real[: s.n_images]
        self.held_out = held_out[: s.n_images] if held_out is not None else None
        self.real_diversity = mean_pairwise_distance(self.extractor.features(self.real))
        self._bad: dict[str, int] = {}
        self._fired: set[str] = set()

    def _verdict(self, key: str, bad: bool) -> bool:
        """True exactly when ``key`` has been bad ``patience`` times in a row (fires once)."""
        if not bad:
            self._bad[key] = 0
            self._fired.discard(key)
            return False
        self._bad[key] = self._bad.get(key, 0) + 1
        if self._bad[key] >= self.settings.patience and key not in self._fired:
            self._fired.add(key)
            return True
        return False

    @torch.no_grad()
    def check(self, model: Any, latents: torch.Tensor, step: int,
              discriminate: Callable[[torch.Tensor], torch.Tensor] | None = None
              ) -> tuple[dict[str, float], list[AlarmWarning]]:
        """Sample from ``model`` and judge; ``discriminate``: D's logits, or None."""
        s = self.settings
        fake = model.sample(latents[: s.n_images]).float()
        values: dict[str, float] = {}
        warnings: list[AlarmWarning] = []
        div = mean_pairwise_distance(self.extractor.features(fake))
        ratio = div / self.real_diversity if self.real_diversity > 0 else 0.0
        values["diversity"] = round(ratio, 4)
        judge = step >= s.start_step
        # Early samples (and an averaged generator's) all look alike while diversity
        # climbs: that is learning, not collapse. Only low diversity that is not
        # growing counts as a bad check.
        previous = getattr(self, "_last_ratio", None)
        growing = previous is not None and ratio > previous * s.rising
        self._last_ratio = ratio
        if self._verdict("collapse", judge and ratio < s.collapse_ratio and not growing):
            warnings.append(AlarmWarning("collapse", (
                f"samples look alike (mode collapse): the fixed-noise samples are only "
                f"{_pct(ratio)} as varied as your images"), "collapse"))

        if discriminate is not None:
            real_logits = discriminate(self.real).float()
            fake_logits = discriminate(fake).float()
            acc_real = float((real_logits > 0).float().mean())
            acc_fake = float((fake_logits < 0).float().mean())
            auc = _auc(real_logits, fake_logits)
            values.update(d_check_real=round(acc_real, 4), d_check_fake=round(acc_fake, 4),
                          d_auc=round(auc, 4))
            d_wins = (acc_real >= s.d_win_accuracy and acc_fake >= s.d_win_accuracy
                      and auc >= s.d_win_auc)
            if self._verdict("d_wins", judge and d_wins):
                warnings.append(AlarmWarning("imbalance", (
                    f"the discriminator wins: it tells your images from generated ones "
                    f"{_pct(min(acc_real, acc_fake))} of the time, so the generator learns "
                    "little (samples stay noise or stop improving)"), "d_wins"))
            if self.held_out is not None:
                held_logits = discriminate(self.held_out).float()
                gap = _auc(real_logits, held_logits)
                values["d_overfit"] = round(gap, 4)
                if self._verdict("overfit", judge and gap >= s.overfit_auc):
                    warnings.append(AlarmWarning("imbalance", (
                        f"the discriminator is memorising your training images: it scores "
                        f"them above unseen ones {_pct(gap)} of the time (50% = no memory)"),
                        "overfit"))
        return values, warnings


class EngineMonitors:
    """What the engine runs every few seconds: the alarm and (less often) KID / FID.

    Built lazily at the first check so a run that never reaches one pays
    nothing. ``note(message)`` receives one-off notes (e.g. which feature
    extractor KID/FID use).
    """

    def __init__(self, data: Any, held_out: torch.Tensor | None, *, device: torch.device,
                 quality_samples: int = 500, quality_features: str = "auto",
                 seed: int = 0, note: Callable[[str], None] | None = None):
        self.data = data
        self.held_out_u8 = held_out
        self.device = device
        self.quality_samples = int(quality_samples)
        self.quality_features = quality_features
        self.seed = int(seed)
        self.note = note or (lambda m: None)
        self.alarm: BalanceAlarm | None = None
        self.meter = None
        self._random = None
        self._latents: torch.Tensor | None = None
        if held_out is not None:
            self.note(f"{held_out.shape[0]} of the training images are held out (never shown "
                      "to D) to measure its overfitting (d_overfit)")

    def _extractor(self) -> RandomFeatures:
        if self._random is None:
            self._random = RandomFeatures(self.device)
        return self._random

    def check_alarm(self, model: Any, latents: torch.Tensor, step: int,
                    discriminate: Callable[[torch.Tensor], torch.Tensor] | None = None
                    ) -> tuple[dict[str, float], list[AlarmWarning]]:
        if self.alarm is None:
            held = None
            if self.held_out_u8 is not None:
                held = self.held_out_u8.to(self.device).float().div(127.5).sub(1.0)
            real = self.data.real_sample(min(len(self.data), 64))
            self.alarm = BalanceAlarm(real, held, extractor=self._extractor())
            n = self.alarm.settings.n_images
            if latents is None or latents.shape[0] < n:   # too few fixed latents to judge
                g = torch.Generator().manual_seed(self.seed + 1)
                self._latents = model.make_latents(n, g)
            else:
                self._latents = latents[:n]
        return self.alarm.check(model, self._latents, step, discriminate)

    @torch.no_grad()
    def measure_quality(self, model: Any) -> dict[str, float]:
        from .quality import QualityMeter, make_extractor
        if self.meter is None:
            kind = self.quality_features
            extractor = (self._extractor() if kind == "random" else
                         make_extractor(kind, self.device, on_note=self.note))
            if isinstance(extractor, RandomFeatures):
                extractor = self._extractor()
            n = min(len(self.data), self.quality_samples)
            self.meter = QualityMeter(self.data.real_sample(n), extractor,
                                      n_samples=self.quality_samples)
        seed = self.seed + 424242

        def sample_fn(n: int) -> torch.Tensor:
            g = torch.Generator().manual_seed(seed)        # same latents every time
            chunks = []
            for i in range(0, n, 128):
                z = model.make_latents(min(128, n - i), g)
                chunks.append(model.sample(z).float())
            return torch.cat(chunks)

        return self.meter.measure(sample_fn)
