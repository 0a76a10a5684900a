"""Generate the bundled demo dataset: procedural shapes on soft gradients, 64x64 PNG.

Every image is made here from random numbers (seeded, so the set is the same
on every machine); nothing is copied from anywhere. Run from the repository:

    python resources/make_demo_dataset.py            # writes resources/demo/
    python resources/make_demo_dataset.py --n 200 --out DIR
"""
from __future__ import annotations

import argparse
import math
from pathlib import Path

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

SIZE = 64
SUPER = 4  # draw at 4x and downsample: smooth edges


def _palette(rng: np.random.Generator) -> tuple[tuple[int, int, int], ...]:
    hue = rng.uniform(0, 1)

    def hsv(h, s, v):
        i = int(h * 6) % 6
        f = h * 6 - int(h * 6)
        p, q, t = v * (1 - s), v * (1 - f * s), v * (1 - (1 - f) * s)
        r, g, b = [(v, t, p), (q, v, p), (p, v, t), (p, q, v), (t, p, v), (v, p, q)][i]
        return int(r * 255), int(g * 255), int(b * 255)

    return (hsv(hue, 0.35, 0.25), hsv((hue + 0.08) % 1, 0.45, 0.45),
            hsv((hue + 0.5) % 1, 0.75, 0.95), hsv((hue + 0.58) % 1, 0.6, 0.8))


def _background(rng: np.random.Generator, c0, c1) -> Image.Image:
    s = SIZE * SUPER
    angle = rng.uniform(0, 2 * math.pi)
    yy, xx = np.mgrid[0:s, 0:s] / s
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(t.max() - t.min(), 1e-6)
    a, b = np.array(c0, float), np.array(c1, float)
    img = a[None, None] * (1 - t[..., None]) + b[None, None] * t[..., None]
    return Image.fromarray(img.astype(np.uint8), "RGB")


def _star(cx, cy, r_out, r_in, points, rot):
    pts = []
    for k in range(points * 2):
        r = r_out if k % 2 == 0 else r_in
        a = rot + k * math.pi / points
        pts.append((cx + r * math.cos(a), cy + r * math.sin(a)))
    return pts


def make_image(rng: np.random.Generator) -> Image.Image:
    c0, c1, fg, accent = _palette(rng)
    img = _background(rng, c0, c1)
    d = ImageDraw.Draw(img)
    s = SIZE * SUPER
    cx, cy = rng.uniform(0.35, 0.65, 2) * s
    r = rng.uniform(0.18, 0.32) * s
    kind = rng.integers(0, 4)
    if kind == 0:  # disc with a ring
        d.ellipse([cx - r, cy - r, cx + r, cy + r], fill=fg)
        w = int(r * 0.18)
        d.ellipse([cx - r * 0.6, cy - r * 0.6, cx + r * 0.6, cy + r * 0.6], outline=accent, width=w)
    elif kind == 1:  # star
        d.polygon(_star(cx, cy, r * 1.15, r * rng.uniform(0.4, 0.6), int(rng.integers(5, 8)),
                        rng.uniform(0, math.pi)), fill=fg)
    elif kind == 2:  # rotated square with an inner square
        rot = rng.uniform(0, math.pi / 2)
        sq = [(cx + r * 1.1 * math.cos(rot + k * math.pi / 2),
               cy + r * 1.1 * math.sin(rot + k * math.pi / 2)) for k in range(4)]
        d.polygon(sq, fill=fg)
        inner = [(cx + (x - cx) * 0.45, cy + (y - cy) * 0.45) for x, y in sq]
        d.polygon(inner, fill=accent)
    else:  # flower: petals round a centre
        petals = int(rng.integers(5, 9))
        pr = r * 0.45
        for k in range(petals):
            a = k * 2 * math.pi / petals
            px, py = cx + r * 0.65 * math.cos(a), cy + r * 0.65 * math.sin(a)
            d.ellipse([px - pr, py - pr, px + pr, py + pr], fill=fg)
        d.ellipse([cx - pr, cy - pr, cx + pr, cy + pr], fill=accent)
    img = img.filter(ImageFilter.GaussianBlur(SUPER * 0.4))
    img = img.resize((SIZE, SIZE), Image.Resampling.LANCZOS)
    # a little film grain keeps the set from being too easy
    arr = np.asarray(img, dtype=np.float32) + rng.normal(0, 3.0, (SIZE, SIZE, 3))
    return Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "RGB")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=200)
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "demo"))
    p.add_argument("--seed", type=int, default=2016)
    a = p.parse_args(argv)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(a.seed)
    for i in range(a.n):
        make_image(rng).save(out / f"shape_{i:04d}.png", optimize=True)
    print(f"wrote {a.n} images to {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
