"""The explorer's Qt-free core: seeds, truncation, loops, projection, memorisation, best."""
from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import explore_support as es
from ganstudio.core import latents as L
from ganstudio.core.errors import CheckpointError, UserError


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A short real run (checkpoints at 20, 40, 60) and its plugin manager."""
    base = tmp_path_factory.mktemp("explore_run")
    es.write_training_images(base / "images", 12)
    pm = es.plugin_manager()
    run = es.train_run(base / "run", base / "images", pm, steps=60, checkpoint_every=20)
    return run, pm


@pytest.fixture(scope="module")
def explorer(trained):
    run, pm = trained
    return L.load_explorer(run, pm)


# -- seeds ----------------------------------------------------------------------------------------
def test_parse_seeds():
    assert L.parse_seeds("0-3,10") == [0, 1, 2, 3, 10]
    assert L.parse_seeds(" 7 ") == [7]
    for bad in ("a", "5-2", "", "1-99999999999"):
        with pytest.raises(UserError):
            L.parse_seeds(bad)


def test_seed_gives_same_image_every_time_and_alone_as_in_a_batch(explorer):
    batch = explorer.seed_images([3, 17, 42, 5])
    again = explorer.seed_images([3, 17, 42, 5])
    alone = explorer.seed_images([42])
    assert torch.equal(batch, again)
    # BatchNorm in the generator: only eval mode makes sample i independent of its batch
    assert torch.allclose(batch[2], alone[0], atol=1e-6)
    assert (batch[0] - batch[1]).abs().max() > 1e-3          # different seeds differ
    assert batch.min() >= -1 and batch.max() <= 1
    assert batch.shape == (4, 3, 8, 8)


def test_uniform_seeds_stay_in_range_and_reject_truncation():
    z = L.seed_latents(range(50), 8, "uniform")
    assert z.min() >= -1 and z.max() <= 1 and z.std() > 0.4
    with pytest.raises(L.LatentSpaceError):
        L.truncate(z, 0.7, "uniform")


def test_truncation_pulls_toward_the_mean_image(explorer):
    seeds = list(range(16))
    full = explorer.seed_images(seeds, psi=1.0)
    half = explorer.seed_images(seeds, psi=0.5)
    zero = explorer.seed_images(seeds, psi=0.0)
    assert torch.allclose(zero, zero[:1].expand_as(zero), atol=1e-6)   # psi 0: one mean image
    spread = lambda x: float((x - x.mean(0)).pow(2).mean())   # noqa: E731
    assert spread(full) > spread(half) > spread(zero)


def test_slerp_keeps_norm_and_hits_the_ends():
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(64, generator=g), torch.randn(64, generator=g)
    b = b / b.norm() * a.norm()
    assert torch.allclose(L.slerp(a, b, 0.0), a, atol=1e-5)
    assert torch.allclose(L.slerp(a, b, 1.0), b, atol=1e-5)
    mid = L.slerp(a, b, 0.5)
    assert abs(float(mid.norm() - a.norm())) < 1e-4
    assert float(L.lerp(a, b, 0.5).norm()) < float(mid.norm()) - 0.5    # lerp cuts the corner


# -- loops ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("ease", [False, True])
def test_loop_frame_after_the_last_is_the_first(ease):
    keys = L.seed_latents([3, 17, 42], 16)
    frames = 30
    z = L.loop_latents(keys, frames, ease=ease)
    assert z.shape == (30, 16)
    after_last = L.loop_point(keys, frames / frames, ease=ease)
    assert torch.allclose(after_last, z[0], atol=1e-6)
    assert torch.allclose(z[0], keys[0], atol=1e-6)
    if not ease:   # constant speed: the wrap-around step is no jump
        steps = (torch.cat([z, z[:1]])[1:] - z).norm(dim=1)
        assert float(steps.max()) < 1.6 * float(steps.median())


def test_loop_gif_is_seamless_and_written_under_its_name(explorer, tmp_path):
    import imageio.v2 as imageio
    from ganstudio.core.loops import render_loop
    keys = explorer.seeds([3, 17, 42])
    seen = []
    result = render_loop(explorer, keys, tmp_path / "loop.gif", seconds=1, fps=12, size=16,
                         progress=lambda d, t: seen.append((d, t)))
    assert result.path == tmp_path / "loop.gif" and result.frames == 12
    assert seen[-1] == (12, 12)
    frames = imageio.mimread(result.path)
    assert len(frames) == 12 and frames[0].shape[:2] == (16, 16)
    assert [p.name for p in tmp_path.iterdir()] == ["loop.gif"]       # no temp file left
    # frame 0 shows seed 3's image (the loop starts and therefore ends there)
    first = explorer.seed_images([3])
    want = ((first[0] + 1) * 127.5).round().permute(1, 2, 0).numpy()
    got = np.asarray(frames[0])[::2, ::2, :3].astype(float)
    assert np.abs(got - want).mean() < 12     # GIF palette quantisation


def test_loop_mp4_and_cancel(explorer, tmp_path):
    from ganstudio.core.loops import render_loop
    keys = explorer.seeds([1, 2])
    ok = render_loop(explorer, keys, tmp_path / "loop.mp4", seconds=0.5, fps=8, size=16)
    assert ok.path.is_file() and ok.path.stat().st_size > 100
    stop = render_loop(explorer, keys, tmp_path / "cancelled.mp4", seconds=2, fps=8,
                       cancelled=lambda: True)
    assert stop.path is None
    assert sorted(p.name for p in tmp_path.iterdir()) == ["loop.mp4"]


def test_loop_refuses_bad_paths(explorer, tmp_path):
    from ganstudio.core.loops import render_loop
    keys = explorer.seeds([1, 2])
    with pytest.raises(UserError, match=r"\.mp4 or \.gif"):
        render_loop(explorer, keys, tmp_path / "loop.avi")
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(UserError, match="cannot write"):
        render_loop(explorer, keys, blocker / "loop.gif")


# -- projection -----------------------------------------------------------------------------------
def test_projection_of_a_training_image_beats_many_random_latents(trained, explorer):
    from ganstudio.core.memorisation import training_images
    from ganstudio.core.projection import project, random_baseline
    run, _pm = trained
    train = training_images(run)
    for i in (0, 4, 9):
        target = train[i:i + 1]
        previews = []
        result = project(explorer, target, steps=120, starts=4,
                         progress=lambda s, n, img, err: previews.append((s, img.shape, err)))
        baseline = random_baseline(explorer, target, n=512)
        assert result.error < baseline, (i, result.error, baseline)
        assert previews and previews[-1][0] == 120 and previews[-1][1] == (1, 3, 8, 8)
        # the latent reproduces the reported image
        assert torch.allclose(explorer.images(result.z), result.image, atol=1e-5)


def test_projection_finds_an_image_the_generator_can_make(explorer):
    from ganstudio.core.projection import project, random_baseline
    target = explorer.seed_images([999])
    result = project(explorer, target, steps=120, starts=4)
    assert result.error < 0.25 * random_baseline(explorer, target, n=512)
    assert result.history == []           # no progress callback, no previews drawn


def test_projection_stops_when_cancelled(explorer):
    from ganstudio.core.projection import project
    calls = {"n": 0}

    def cancelled():
        calls["n"] += 1
        return calls["n"] > 5

    r = project(explorer, torch.zeros(1, 3, 8, 8), steps=500, starts=2, cancelled=cancelled)
    assert r.cancelled and r.steps == 5 and r.z.shape == (1, 32)


def test_unreadable_picture_is_named(tmp_path):
    from ganstudio.core.projection import load_picture
    bad = tmp_path / "photo.png"
    bad.write_bytes(b"not a picture")
    with pytest.raises(UserError, match="photo.png"):
        load_picture(bad, 3, 8)
    with pytest.raises(UserError, match="not found"):
        load_picture(tmp_path / "missing.jpg", 3, 8)


def test_latent_file_round_trip_and_keys(tmp_path):
    z = L.seed_latents([5], 8)
    p = L.save_latent(tmp_path / "z.npy", z)
    keys, labels = L.parse_keys(f"3,{p},4-5", 8)
    assert keys.shape == (4, 8) and labels == ["seed 3", "z.npy", "seed 4", "seed 5"]
    assert torch.equal(keys[1], z[0])
    with pytest.raises(UserError, match="size 16"):
        L.load_latent(p, 16)


# -- memorisation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("feature", ["pixels", "random"])
def test_nearest_check_catches_a_planted_training_image(trained, feature):
    from ganstudio.core.explore_state import read_state
    from ganstudio.core.memorisation import run_nearest_check, training_images
    run, pm = trained
    planted = training_images(run)[7:8]
    result, samples, train = run_nearest_check(run, pm, n=40, feature=feature,
                                               extra_samples=planted)
    assert result.n_samples == 41
    assert 40 in result.flagged()                  # the planted copy is caught
    assert int(result.nearest[40]) == 7
    assert float(result.distances[40]) < 1e-4
    assert result.closer < 41
    log = (run / "events.log").read_text()
    assert f"{result.closer} of 41 samples closer to a training image" in log
    assert read_state(run)["memorisation"]["closer"] == result.closer


def test_nearest_grid_pairs(trained):
    from ganstudio.core.memorisation import nearest_check, pairs_grid, training_images
    run, _pm = trained
    train = training_images(run)
    res = nearest_check(train[:3].clone(), train)
    grid = pairs_grid(train[:3], train, res, n=3)
    assert grid.dtype == np.uint8 and grid.ndim == 3 and grid.shape[2] == 3


# -- best checkpoint and retention ----------------------------------------------------------------
def test_kid_per_checkpoint_marks_the_best_and_rotation_keeps_it(trained, tmp_path):
    import shutil
    from ganstudio.core.best import score_checkpoints
    from ganstudio.core.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
    from ganstudio.core.explore_state import read_state, resolve_checkpoint
    src, pm = trained
    run = tmp_path / "run"
    shutil.copytree(src, run)
    seen = []
    scores = score_checkpoints(run, pm, n_samples=32, progress=lambda d, n, s: seen.append(s))
    assert sorted(scores.kid) == [20, 40, 60] and seen == [20, 40, 60]
    assert scores.best_step == min(scores.kid, key=scores.kid.get)
    state = read_state(run)
    assert state["best_step"] == scores.best_step and state["kid_features"] == "random"
    assert resolve_checkpoint(run, "best").name == f"ckpt_{scores.best_step:08d}.pt"
    # rotation: two more checkpoints with keep_last=1 keep the best one as well
    payload = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])
    for step in (80, 100):
        save_checkpoint(payload, run / "checkpoints", step, keep_last=1)
    steps = [int(p.name[5:-3]) for p in list_checkpoints(run / "checkpoints")]
    assert steps == sorted({scores.best_step, 100})


def test_pinned_checkpoint_survives_rotation(trained, tmp_path):
    import shutil
    from ganstudio.core.checkpoints import list_checkpoints, load_checkpoint, save_checkpoint
    from ganstudio.core.explore_state import set_checkpoint_pinned, set_seed_pinned, pinned_seeds
    src, _pm = trained
    run = tmp_path / "run"
    shutil.copytree(src, run)
    set_checkpoint_pinned(run, 20)
    set_seed_pinned(run, 42)
    set_seed_pinned(run, 7)
    set_seed_pinned(run, 42, False)
    assert pinned_seeds(run) == [7]
    payload = load_checkpoint(list_checkpoints(run / "checkpoints")[-1])
    save_checkpoint(payload, run / "checkpoints", 80, keep_last=2)
    steps = [int(p.name[5:-3]) for p in list_checkpoints(run / "checkpoints")]
    assert steps == [20, 60, 80]
    assert json.loads((run / "explore.json").read_text())["pinned_checkpoints"] == [20]


def test_damaged_explore_json_reads_as_empty(tmp_path):
    from ganstudio.core.explore_state import read_state
    (tmp_path / "explore.json").write_text("{not json")
    assert read_state(tmp_path)["pins"] == []


# -- errors ---------------------------------------------------------------------------------------
def test_run_without_checkpoint_and_model_without_latent(tmp_path, image_folder):
    from ganstudio.core.runs import RunFolder
    pm = es.plugin_manager()
    run = RunFolder(tmp_path / "empty")
    run.create({"model_id": "explgan", "config": {}, "plugin": "x"})
    with pytest.raises(CheckpointError, match="no checkpoint"):
        L.load_explorer(run.path, pm)
    nolat = es.train_run(tmp_path / "nolat", image_folder, pm, model="explgan-nolatent",
                         steps=2)
    with pytest.raises(L.LatentSpaceError, match="declares no latent space"):
        L.load_explorer(nolat, pm)
    with pytest.raises(UserError, match="not best, last or a step"):
        L.load_explorer(nolat, pm, checkpoint="newest")
    with pytest.raises(CheckpointError, match="no checkpoint of step 7"):
        L.load_explorer(nolat, pm, checkpoint=7)


def test_latent_size_comes_from_the_setting_the_spec_names(tmp_path, image_folder):
    pm = es.plugin_manager()
    run = es.train_run(tmp_path / "run", image_folder, pm, steps=2, latent_dim=12)
    explorer = L.load_explorer(run, pm)
    assert explorer.dim == 12 and explorer.seeds([1, 2]).shape == (2, 12)
    assert explorer.seed_images([1]).shape == (1, 3, 8, 8)
