"""The classic training loop: the yardstick the engine is measured against.

Written here to behave like the well-known PyTorch DCGAN example
(``examples/dcgan/main.py``), the way most people first train a GAN:

* torchvision ``ImageFolder`` with Resize, CenterCrop, ToTensor, Normalize;
* a ``DataLoader`` with ``shuffle=True`` and ``num_workers`` worker processes
  (the example's default is 2), no pinned memory, workers restarted each epoch;
* per step: D on a real batch, D on a fake batch, G through D, each loss
  backward separately, and the host reads ``D(x)``, ``D(G(z))`` twice and
  both losses with ``.item()`` (a device sync each: the example prints them
  every step);
* Adam (lr 2e-4, betas 0.5 / 0.999) in its default (non-fused) form;
* every 100 steps, real and fixed-noise fake grids saved as PNG.

The networks are the very ones the studio trains: built by the model factory of
the model a plugin offers as the benchmark's reference
(:mod:`ganstudio.bench.reference`; the built-in DCGAN plugin), so both sides run
identical architectures.
The only difference in the maths is that the discriminator here returns
logits and the loss is ``BCEWithLogitsLoss`` (the example ends D with a
Sigmoid and uses ``BCELoss``; the two are the same function).
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch
import torch.nn as nn


@dataclass
class ClassicResult:
    workers: int
    batch_size: int
    steps: int
    warmup_steps: int
    images: int
    seconds: float
    images_per_s: float
    first_step_s: float     # includes starting the loader workers and the first decode
    dataset_size: int = 0   # images ImageFolder found

    def to_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def _number(value: Any, default: float) -> float:
    try:
        return float(value)
    except (TypeError, ValueError):
        return default


def _networks(spec: Any, networks: Callable[[Any], tuple[Any, Any]], config: dict,
              shape: tuple[int, int, int], device: torch.device
              ) -> tuple[nn.Module, nn.Module]:
    """The model's own G and D, as its plugin's benchmark reference reaches them."""
    model = spec.factory(config, shape, device)
    net_g, net_d = networks(model)
    if not isinstance(net_g, nn.Module) or not isinstance(net_d, nn.Module):
        raise RuntimeError(f"model '{spec.id}': its benchmark reference must give two "
                           "networks (G, D)")
    # The example's default layout: the plugin switches to channels-last on a CPU.
    net_g.to(memory_format=torch.contiguous_format)
    net_d.to(memory_format=torch.contiguous_format)
    return net_g, net_d


def _example_dataset(folder: str | os.PathLike, res: int):
    """torchvision ImageFolder with the example's transforms."""
    import torchvision.datasets as dset
    import torchvision.transforms as transforms
    return dset.ImageFolder(root=str(folder), transform=transforms.Compose([
        transforms.Resize(res),
        transforms.CenterCrop(res),
        transforms.ToTensor(),
        transforms.Normalize((0.5,) * 3, (0.5,) * 3),
    ]))


def measure_loader(folder: str | os.PathLike, resolution: int, batch_size: int, *,
                   workers: int = 2, batches: int = 40) -> dict[str, Any]:
    """The classic loop's data pipeline alone: images/s its DataLoader delivers, no training.

    When the classic loop's images/s is close to this, the loop is bound by its loader
    (decoding and resizing JPEGs every epoch), not by the device.
    """
    dataset = _example_dataset(folder, int(resolution))
    loader = torch.utils.data.DataLoader(dataset, batch_size=int(batch_size), shuffle=True,
                                         num_workers=int(workers))
    wanted = max(2, int(batches))
    got = images = 0
    t0 = time.perf_counter()
    t_start = None
    while got < wanted:
        for data in loader:       # workers restart each epoch, as in the loop itself
            got += 1
            if t_start is None:   # the first batch pays for starting the workers
                t_start = time.perf_counter()
            else:
                images += int(data[0].shape[0])
            if got >= wanted:
                break
    seconds = time.perf_counter() - (t_start or t0)
    return {"workers": int(workers), "batches": got, "images": images, "seconds": seconds,
            "images_per_s": images / seconds if seconds > 0 else 0.0,
            "first_batch_s": (t_start or t0) - t0, "dataset_size": len(dataset)}


def run_classic(folder: str | os.PathLike, spec: Any, config: dict, device: torch.device,
                networks: Callable[[Any], tuple[Any, Any]], *,
                workers: int = 2, steps: int = 100, warmup_steps: int = 5,
                sample_dir: str | os.PathLike | None = None) -> ClassicResult:
    """Train ``steps`` steps the classic way; time the steps after ``warmup_steps``.

    ``folder`` must hold class sub-folders (ImageFolder's layout). The time
    covers everything the classic loop does per step, worker restarts at
    each epoch included.
    """
    import torchvision.utils as vutils

    res = int(config["resolution"])
    nc = int(config["channels"])
    bs = int(config["batch_size"])
    dataset = _example_dataset(folder, res)
    if nc == 1:
        raise ValueError("the classic loop runs colour images (channels=3)")
    loader = torch.utils.data.DataLoader(dataset, batch_size=bs, shuffle=True,
                                         num_workers=int(workers))
    torch.manual_seed(int(config.get("seed", 0)))
    net_g, net_d = _networks(spec, networks, config, (nc, res, res), device)
    latent = int(config.get("latent_dim", 100))
    criterion = nn.BCEWithLogitsLoss()
    fixed_noise = torch.randn(64, latent, 1, 1, device=device)
    real_label, fake_label = 1.0, 0.0
    # The example's optimiser settings (--lr 0.0002 --beta1 0.5), unless the config says
    # otherwise with a number (a model may leave them at "auto" for its preset).
    betas = (_number(config.get("beta1"), 0.5), _number(config.get("beta2"), 0.999))
    opt_d = torch.optim.Adam(net_d.parameters(), lr=_number(config.get("lr_d"), 2e-4),
                             betas=betas)
    opt_g = torch.optim.Adam(net_g.parameters(), lr=_number(config.get("lr_g"), 2e-4),
                             betas=betas)
    own_tmp = None
    if sample_dir is None:
        own_tmp = tempfile.TemporaryDirectory(prefix="ganstudio-classic-")
        sample_dir = own_tmp.name
    out_dir = Path(sample_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    log_lines: list[str] = []

    total = warmup_steps + steps
    step = 0
    images = 0
    t_begin = time.perf_counter()
    t_start = t_begin if warmup_steps == 0 else None
    first_step_s = 0.0
    try:
        while step < total:
            for i, data in enumerate(loader, 0):
                # (1) update D: maximise log(D(x)) + log(1 - D(G(z)))
                net_d.zero_grad()
                real = data[0].to(device)
                n = real.size(0)
                label = torch.full((n,), real_label, dtype=real.dtype, device=device)
                output = net_d(real).view(-1)
                err_d_real = criterion(output, label)
                err_d_real.backward()
                d_x = torch.sigmoid(output).mean().item()          # host sync

                noise = torch.randn(n, latent, 1, 1, device=device)
                fake = net_g(noise)
                label.fill_(fake_label)
                output = net_d(fake.detach()).view(-1)
                err_d_fake = criterion(output, label)
                err_d_fake.backward()
                d_g_z1 = torch.sigmoid(output).mean().item()       # host sync
                err_d = err_d_real + err_d_fake
                opt_d.step()

                # (2) update G: maximise log(D(G(z)))
                net_g.zero_grad()
                label.fill_(real_label)
                output = net_d(fake).view(-1)
                err_g = criterion(output, label)
                err_g.backward()
                d_g_z2 = torch.sigmoid(output).mean().item()       # host sync
                opt_g.step()

                # the example prints this line every step (two more syncs)
                log_lines.append(f"[{step}][{i}/{len(loader)}] Loss_D: {err_d.item():.4f} "
                                 f"Loss_G: {err_g.item():.4f} D(x): {d_x:.4f} "
                                 f"D(G(z)): {d_g_z1:.4f} / {d_g_z2:.4f}")
                if len(log_lines) > 200:
                    del log_lines[:100]
                if i % 100 == 0:
                    vutils.save_image(real, out_dir / "real_samples.png", normalize=True)
                    with torch.no_grad():
                        fake_grid = net_g(fixed_noise)
                    vutils.save_image(fake_grid.detach(), out_dir / "fake_samples.png",
                                      normalize=True)

                step += 1
                if step == 1:
                    first_step_s = time.perf_counter() - t_begin
                if t_start is not None:
                    images += n
                if step == warmup_steps:
                    t_start = time.perf_counter()
                if step >= total:
                    break
        seconds = time.perf_counter() - (t_start or t_begin)
    finally:
        if own_tmp is not None:
            own_tmp.cleanup()
    return ClassicResult(int(workers), bs, steps, warmup_steps, images, seconds,
                         images / max(seconds, 1e-9), first_step_s, len(dataset))
