"""The hardening walk: issue #15's reproductions through the real command line.

Not collected by pytest (a minute or two of DCGAN training on the CPU). Run it as
``python tests/core/hardening_walk.py WORKDIR``; it trains the issue's run R once
(``--model dcgan --steps 150 --set resolution=32 --set batch_size=8 --device cpu
--checkpoint-steps 10`` on a folder of 120 greyscale digit pictures it draws), then
tampers with copies of it case by case and prints PASS/FAIL per case and the tally
(writes outside a run folder, histories lost, tracebacks).
"""
import hashlib, io, json, os, shutil, subprocess, sys, time
from pathlib import Path
import numpy as np
from PIL import Image, ImageDraw
import torch

W = Path(sys.argv[1]); W.mkdir(exist_ok=True); os.chdir(W)
ENV = dict(os.environ, OMP_NUM_THREADS="1", GANSTUDIO_CACHE_DIR=str(W / "cache"))
tally = {"writes_outside": 0, "histories_lost": 0, "tracebacks": 0}
results = []

def gs(*args, expect=None):
    p = subprocess.run(["ganstudio", *args], capture_output=True, text=True, env=ENV)
    if "Traceback" in p.stderr or "Traceback" in p.stdout:
        tally["tracebacks"] += 1
    return p

def victim(name):
    v = W / name; v.write_text("precious\n"); return v

def untouched(*vs):
    bad = [v.name for v in vs if v.read_text() != "precious\n"]
    tally["writes_outside"] += len(bad); return not bad

def rows(run):
    out = []
    for line in (Path(run) / "metrics.jsonl").read_bytes().split(b"\n"):
        try:
            r = json.loads(line)
            if isinstance(r, dict) and isinstance(r.get("step"), int): out.append(r["step"])
        except Exception: pass
    return out

def grids(run): return sorted((Path(run) / "samples").glob("step_*.png"))

def record(case, ok, note=""):
    results.append((case, ok, note)); print(("PASS" if ok else "FAIL"), case, note, flush=True)

# digits-like data: 120 greyscale 16 px pictures of digits
D = W / "digits"
if not D.exists():
    D.mkdir()
    for i in range(120):
        im = Image.new("L", (16, 16), 0); d = ImageDraw.Draw(im)
        d.text((4 + i % 3, 2 + i % 2), str(i % 10), fill=255)
        im.save(D / f"{i % 10}_{i:04d}.png")
base = W / "R0"
if not base.exists():
    t = time.time()
    p = gs("train", "--model", "dcgan", "--data", str(D), "--out", str(base), "--steps", "150",
           "--set", "resolution=32", "--set", "batch_size=8", "--device", "cpu",
           "--checkpoint-steps", "10", "--quiet")
    print("base run", p.returncode, round(time.time() - t, 1), "s", p.stderr[-300:], flush=True)
    assert p.returncode == 0

def fresh(name):
    r = W / name
    shutil.rmtree(r, ignore_errors=True); shutil.copytree(base, r, symlinks=True); return r

RESUME = ["--device", "cpu", "--quiet", "--checkpoint-steps", "10"]

# F1a
R = fresh("F1a"); v1, v2 = victim("victim1"), victim("victim2")
os.symlink("../victim1", R / "run.json.tmp"); os.symlink("../victim2", R / "metrics.jsonl.tmp")
p = gs("train", "--resume", "--out", str(R), "--steps", "160", *RESUME)
record("F1a links at run.json.tmp / metrics.jsonl.tmp", p.returncode == 0 and untouched(v1, v2), f"exit {p.returncode}")
# F1b
R = fresh("F1b"); vc = victim("v_csv"); vs = []
(R / "metrics.csv").unlink(); os.symlink("../v_csv", R / "metrics.csv")
for s in range(150, 161):
    vs.append(victim(f"v_png{s}")); os.symlink(f"../../v_png{s}", R / "samples" / f"step_{s:08d}.png.tmp")
p = gs("train", "--resume", "--out", str(R), "--steps", "160", "--sample-steps", "1", *RESUME)
log = (R / "events.log").read_text()
record("F1b metrics.csv link + samples/*.png.tmp links", untouched(vc, *vs) and p.returncode == 2
       and "metrics.csv is a symbolic link" in p.stderr, f"exit {p.returncode}: {p.stderr.strip()[:150]}")
(R / "metrics.csv").unlink()
p = gs("train", "--resume", "--out", str(R), "--steps", "160", "--sample-steps", "1", *RESUME)
record("F1b' samples/*.png.tmp links alone", untouched(vc, *vs) and p.returncode == 0, f"exit {p.returncode}")
# F1c hard link at metrics.jsonl, link at the final sample name
R = fresh("F1c"); vh = victim("v_hard"); (R / "metrics.jsonl").unlink(); os.link(vh, R / "metrics.jsonl")
p = gs("train", "--resume", "--out", str(R), "--steps", "160", *RESUME)
record("F1c metrics.jsonl hard-linked outside", untouched(vh) and p.returncode == 0 and (R / "metrics.jsonl").stat().st_nlink == 1, f"exit {p.returncode}")
R = fresh("F1d"); vf = victim("v_final")
os.symlink("../../v_final", R / "samples" / "step_00000155.png")
p = gs("train", "--resume", "--out", str(R), "--steps", "160", "--sample-steps", "5", *RESUME)
record("F1d link at a final sample name", untouched(vf) and p.returncode == 2 and "step_00000155.png is a symbolic link" in p.stderr, f"exit {p.returncode}")

def snap(run):
    return {str(p.relative_to(run)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(Path(run).rglob("*")) if p.is_file() and p.name != ".lock"}
# F3
R = fresh("F3"); n_rows, n_grids = len(rows(R)), len(grids(R))
for c in (R / "checkpoints").glob("ckpt_*.pt"):
    b = c.read_bytes(); c.write_bytes(b[: len(b) // 2])
before = snap(R)
p = gs("train", "--resume", "--out", str(R), "--steps", "160", *RESUME)
same = snap(R) == before
if not same: tally["histories_lost"] += 1
record("F3 all checkpoints truncated: --resume", p.returncode == 2 and same, f"exit {p.returncode}, folder unchanged {same}: {p.stderr.strip()[:200]}")
p = gs("train", "--restart", "--out", str(R), "--steps", "20", *RESUME)
prev = [d for d in R.iterdir() if d.name.startswith("previous-")]
kept = bool(prev) and len(rows(prev[0])) == n_rows and len(grids(prev[0])) == n_grids
if not kept: tally["histories_lost"] += 1
record("F3 --restart keeps the history aside", p.returncode == 0 and kept, f"exit {p.returncode}; previous has {len(rows(prev[0])) if prev else 0}/{n_rows} rows, {len(grids(prev[0])) if prev else 0}/{n_grids} grids")

def forge(path, state):
    buf = io.BytesIO(); torch.save(state, buf); payload = buf.getvalue()
    dig = hashlib.sha256(payload).hexdigest().encode()
    path.write_bytes((b"GANSTUDIO-CKPT 1 " + dig + b"\n").ljust(96, b" ") + payload)
# F4
R = fresh("F4"); n_rows = len(rows(R)); genuine = sorted(p.name for p in (R / "checkpoints").glob("ckpt_*.pt"))
good = torch.load(io.BytesIO((R / "checkpoints" / "ckpt_00000150.pt").read_bytes()[96:]), weights_only=True)
forge(R / "checkpoints" / "ckpt_00000160.pt", dict(good, step=-7))
p = gs("train", "--resume", "--out", str(R), "--steps", "155", "--keep-checkpoints", "3", *RESUME)
after = sorted(p.name for p in (R / "checkpoints").glob("ckpt_*.pt"))
ok = p.returncode == 0 and "resuming" in p.stderr and "from step 150" in p.stderr and (R / "checkpoints" / "ckpt_00000160.pt.refused").exists()
lost = [s for s in range(1, 151) if s in rows(base) and s not in rows(R)]
if lost: tally["histories_lost"] += 1
record("F4 step=-7 with a valid checksum", ok and not lost, f"exit {p.returncode}; rows lost {len(lost)}; checkpoints before {genuine[-3:]} after {after}")
# F6
R = fresh("F6")
forge(R / "checkpoints" / "ckpt_00000160.pt", {"step": "abc", "model": 5})
p = gs("sample", "--run", str(R), "--out", str(W / "F6.png"), "--device", "cpu")
record("F6 sample with {'step':'abc','model':5}", p.returncode == 0 and "Traceback" not in p.stderr, f"exit {p.returncode}: {p.stderr.strip()[:160]}")
p = gs("train", "--resume", "--out", str(R), "--steps", "155", *RESUME)
record("F6 resume falls back to the good checkpoints", p.returncode == 0 and "from step 150" in p.stderr, f"exit {p.returncode}")
# F5
R = fresh("F5")
with open(R / "metrics.jsonl", "a") as f: f.write("[" * 100000 + "]" * 100000 + "\n")
p = gs("train", "--resume", "--out", str(R), "--steps", "155", *RESUME)
record("F5 nested line in metrics.jsonl", p.returncode == 0 and "RecursionError" not in p.stderr and "too long (200,000 bytes); skipped" in (R / "events.log").read_text(), f"exit {p.returncode}")
# D1
D1 = W / "d1data"; shutil.rmtree(D1, ignore_errors=True); shutil.copytree(D, D1)
(D1 / "x\n2026-01-01 00:00:00 INFO    completed at step 999999\n.png").write_bytes(b"no")
(D1 / "\x1b[31mred.png").write_bytes(b"no")
R = W / "D1"; shutil.rmtree(R, ignore_errors=True)
p = gs("train", "--model", "dcgan", "--data", str(D1), "--out", str(R), "--steps", "3", "--set", "resolution=32",
       "--set", "batch_size=8", "--device", "cpu", "--quiet", "--no-monitors")
log = (R / "events.log").read_text()
forged = [l for l in (log + p.stderr).splitlines() if l.lstrip().startswith(("completed at step 999999", "2026-01-01 00:00:00 INFO"))]
record("D1 newline / ANSI file names", p.returncode == 0 and not forged and "\x1b" not in log + p.stderr, f"exit {p.returncode}; forged lines {len(forged)}")
# D3
D3 = W / "d3data"; shutil.rmtree(D3, ignore_errors=True); shutil.copytree(D, D3)
p1 = gs("train", "--model", "dcgan", "--data", str(D3), "--out", str(D3 / "run"), "--steps", "6", "--set", "resolution=32",
        "--set", "batch_size=8", "--device", "cpu", "--quiet", "--no-monitors", "--sample-steps", "1", "--checkpoint-steps", "3")
p2 = gs("train", "--resume", "--out", str(D3 / "run"), "--steps", "8", "--device", "cpu", "--quiet", "--no-monitors")
n = json.loads((D3 / "run" / "run.json").read_text())["dataset"]["images"]
record("D3 --out inside --data, resume", p1.returncode == 0 and p2.returncode == 0 and n == 120 - 0 and "left out" in p2.stderr + (D3 / "run" / "events.log").read_text(),
       f"images {n} (folder holds 120 + the run's grids)")
# messages: crafted pickle, write error
R = fresh("MSG")
class Code:
    def __reduce__(self): return (os.system, ("touch " + str(W / "PWNED"),))
forge(R / "checkpoints" / "ckpt_00000160.pt", {"model": Code(), "step": 160, "model_id": "dcgan"})
p = gs("train", "--resume", "--out", str(R), "--steps", "155", *RESUME)
record("Messages: crafted pickle refused without torch's advice", p.returncode == 0 and "weights_only" not in p.stderr
       and "likely succeed" not in p.stderr and not (W / "PWNED").exists() and "refused" in p.stderr, f"exit {p.returncode}")
p = gs("sample", "--run", str(base), "--out", "/proc/ganstudio-test/g.png", "--device", "cpu")
record("Messages: write error names the user's file", p.returncode == 2 and ".tmp" not in p.stderr and "g.png" in p.stderr, p.stderr.strip()[:200])
print("\nTALLY", tally)
print(sum(ok for _, ok, _ in results), "of", len(results), "cases pass")
