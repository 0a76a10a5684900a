"""The benchmark: a tiny CPU run of every part (structure and positive numbers, never
timings), its building blocks, and the memory guarantees it reports on."""
from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganstudio.bench.engine_runs import ThroughputProbe
from ganstudio.bench.folder import make_jpeg_folder
from ganstudio.bench.startup import measure_startup
from ganstudio.cli import main
from ganstudio.core import events as ev
from ganstudio.core.devices import pick_device

HAS_QT = importlib.util.find_spec("PySide6") is not None


def test_generated_folder_is_jpegs_of_the_asked_size_and_is_reused(tmp_path):
    root, seconds = make_jpeg_folder(tmp_path / "f", 12, 24, seed=3)
    files = sorted((root / "images").glob("*.jpg"))
    assert len(files) == 12 and seconds > 0
    with Image.open(files[0]) as img:
        assert img.format == "JPEG" and img.size == (24, 24) and img.mode == "RGB"
    first = np.asarray(Image.open(files[0]))
    second = np.asarray(Image.open(files[1]))
    assert np.abs(first.astype(int) - second.astype(int)).mean() > 5  # not all alike
    assert make_jpeg_folder(tmp_path / "f", 12, 24, seed=3)[1] == 0.0   # reused as is
    _, again = make_jpeg_folder(tmp_path / "f", 10, 24, seed=3)        # other settings: rebuilt
    assert again > 0 and len(list((root / "images").glob("*.jpg"))) == 10


def test_throughput_probe_skips_warmup_and_counts_images():
    probe = ThroughputProbe()
    probe.points = [(0.0, 1), (1.0, 2), (2.0, 5), (4.0, 9)]
    assert probe.measure(warmup_steps=2, batch_size=10) == (70, 3.0)
    # a single point after warm-up: measure from the point before it
    assert probe.measure(warmup_steps=9, batch_size=10) == (40, 2.0)
    empty = ThroughputProbe()
    assert empty.measure(0, 10) == (0, 0.0)


def test_startup_line_is_parsed_from_the_child_process():
    script = "print('loading'); print('startup_seconds=0.625')"
    out = measure_startup(command=[sys.executable, "-c", script])
    assert out["startup_seconds"] == pytest.approx(0.625)
    assert out["process_seconds"] > 0
    silent = measure_startup(command=[sys.executable, "-c", "print('hello')"])
    assert "startup_seconds=" in silent["skipped"]


def test_bench_cli_tiny_cpu_run_reports_every_part(image_folder, tmp_path, capsys):
    report_path = tmp_path / "report.json"
    code = main(["bench", "--data", str(image_folder), "--device", "cpu", "--resolution", "32",
                 "--batch", "8", "--features", "8", "--steps", "3", "--warmup", "1",
                 "--workers", "2", "--style-size", "32", "--style-iterations", "3",
                 "--skip", "startup", "--json", str(report_path)])
    assert code == 0
    printed = capsys.readouterr().out
    assert "classic loop, 2 workers, batch 8:" in printed
    assert "engine fp32 b8:" in printed
    ratio_lines = [line for line in printed.splitlines() if "ratio" in line]
    assert ratio_lines and ratio_lines[0].startswith("ratio engine fp32 b8 / classic 2 workers")

    rep = json.loads(report_path.read_text())
    assert rep["device_type"] == "cpu"
    # both sides train the classic example's recipe when the model offers presets
    assert rep["settings"]["model_settings"].get("preset", "classic") == "classic"
    assert rep["dataset"]["images"] == 12 and rep["dataset"]["reopened_from_cache"] is True
    assert rep["dataset"]["prepare_s"] > 0 and rep["dataset"]["reopen_s"] > 0

    (loader,) = rep["loader"]        # the classic loop's DataLoader alone
    assert loader["workers"] == 2 and loader["dataset_size"] == 12
    assert loader["batches"] == 4 and loader["images"] == 4 + 8 + 4    # first batch: warm-up
    assert loader["images_per_s"] > 0
    assert "classic loader alone (no training), 2 workers:" in printed
    (classic,) = rep["classic"]
    assert classic["workers"] == 2 and classic["batch_size"] == 8
    assert classic["dataset_size"] == 12          # the same images as the engine, sub-folder too
    # 12 images in batches of 8: 8, 4, 8, 4 (the example keeps the last partial batch);
    # the first is warm-up
    assert classic["images"] == 4 + 8 + 4 and classic["images_per_s"] > 0

    # fp32, and the engine's default precision once more where it is not fp32 (bf16 on AMX)
    engine = rep["engine"][0]
    assert engine["outcome"] == "completed" and engine["batch_size"] == 8
    assert engine["precision"] == "fp32" and engine["images"] > 0 and engine["images_per_s"] > 0
    default_bf16 = pick_device("cpu").autocast_dtype is not None
    assert len(rep["engine"]) == (2 if default_bf16 else 1)
    if default_bf16:
        second = rep["engine"][1]
        assert second["label"] == "engine default (bf16) b8" and second["precision"] == "bf16"
        assert second["outcome"] == "completed" and second["images_per_s"] > 0
        assert "ratio engine default (bf16) b8 / classic 2 workers" in printed
    assert rep["ratios"]["classic 2 workers / its loader alone"] == pytest.approx(
        classic["images_per_s"] / loader["images_per_s"], rel=1e-2)
    key = "engine fp32 b8 / classic 2 workers"
    assert rep["ratios"][key] == pytest.approx(engine["images_per_s"] / classic["images_per_s"],
                                               rel=1e-2)

    if HAS_QT and importlib.util.find_spec("ganstudio.gui.worker") is not None:
        gui = rep["gui"]
        assert "error" not in gui, gui
        assert gui["thread_joined"] is True and gui["metrics_received"] >= 1
        assert gui["images_per_s"] > 0 and len(gui["headless_runs_images_per_s"]) == 2
        assert gui["ratio_vs_headless"] == pytest.approx(
            gui["images_per_s"] / (sum(gui["headless_runs_images_per_s"]) / 2))
        assert gui["heartbeat_ticks"] >= 1
        assert 0 <= gui["longest_stall_training_ms"] <= gui["longest_stall_ms"]
    else:
        assert "skipped" in rep["gui"]

    style = rep["style"]
    if "skipped" not in style:
        assert "error" not in style, style
        assert style["iterations"] == 3 and style["size"] == 32
        assert style["result_shape"][1] == 3 and max(style["result_shape"][2:]) == 32
        assert style["iterations_per_s"] > 0 and style["time_to_result_s"] > 0
    assert "startup" not in rep and "oom" not in rep   # skipped, and no GPU


@pytest.mark.parametrize("argv, message", [
    (["--skip", "classic,nonsense"], "unknown part(s) for --skip: nonsense"),
    (["--precision", "fp8"], "unknown precision 'fp8'"),
    (["--batch", "0"], "--batch must be at least 1"),
    (["--data", "/no/such/folder/at/all"], "benchmark data folder not found"),
])
def test_bench_user_errors_are_one_line(argv, message, capsys, tmp_path):
    code = main(["bench", "--device", "cpu", "--workdir", str(tmp_path / "w"), *argv])
    err = capsys.readouterr().err
    assert code == 2
    assert message in err and "Traceback" not in err


# -- the memory guarantees the benchmark reports on -------------------------------------------
def test_out_of_memory_becomes_a_message_with_a_smaller_batch(tiny_spec, tmp_path):
    from dataclasses import replace

    from ganstudio.core.engine import Engine, EngineSettings

    def factory(config, shape, device):
        model = tiny_spec.factory(config, shape, device)

        def train_step(real):
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        model.train_step = train_step
        return model

    spec = replace(tiny_spec, factory=factory)
    failed = []
    images = torch.randint(0, 256, (6, 3, 8, 8), dtype=torch.uint8)
    engine = Engine(spec, tmp_path / "run", overrides={"batch_size": 6},
                    settings=EngineSettings(total_steps=3, device="cpu"), images=images,
                    listeners=[lambda e: failed.append(e) if isinstance(e, ev.Failed) else None])
    result = engine.run_loop()
    assert isinstance(result, ev.Failed) and failed == [result]
    assert result.suggestion == "batch_size=3"
    assert result.kind == "out_of_memory" and result.settings == {"batch_size": 3}
    assert "ran out of memory" in result.message and "batch size 6" in result.message
    assert result.traceback == ""


def test_dataset_copy_stays_on_the_host_when_over_the_device_budget():
    from ganstudio.core.data import DeviceImages

    images = torch.randint(0, 256, (10, 3, 8, 8), dtype=torch.uint8)
    small = DeviceImages(images, torch.device("cpu"), max_device_bytes=images.numel() - 1)
    fits = DeviceImages(images, torch.device("cpu"), max_device_bytes=images.numel())
    assert small.on_device is False and fits.on_device is True
    batch = small.batch(4)
    assert batch.shape == (4, 3, 8, 8) and batch.dtype == torch.float32
    assert batch.min() >= -1 and batch.max() <= 1


def test_classic_loop_sees_the_given_folder_as_one_class(tmp_path):
    from ganstudio.bench.runner import _classic_root

    first, second = tmp_path / "first", tmp_path / "second"
    first.mkdir()
    second.mkdir()
    work = tmp_path / "work"
    root = _classic_root(first, work)
    assert [p.name for p in root.iterdir()] == ["images"]
    assert (root / "images").resolve() == first.resolve()
    # the same work folder used for another --data folder follows it
    assert (_classic_root(second, work) / "images").resolve() == second.resolve()


def test_dcgan_uses_channels_last_on_cpu_but_the_classic_loop_keeps_the_example_layout():
    from ganstudio.bench.classic import _networks
    from ganstudio.core.config import resolve_config
    from ganstudio.plugins import get_plugin_manager
    spec = get_plugin_manager().get_model("dcgan")
    cfg = resolve_config(spec.schema, {"preset": "classic", "resolution": 32, "channels": 3,
                                       "g_features": 8, "d_features": 8})
    model = spec.factory(cfg, (3, 32, 32), torch.device("cpu"))
    convs = [m.weight for m in model.D.modules() if isinstance(m, torch.nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last)
                         and not w.is_contiguous() for w in convs)
    from ganstudio.bench.reference import reference_model
    ref = reference_model(get_plugin_manager())
    assert ref.model_id == spec.id
    net_g, net_d = _networks(spec, ref.networks, cfg, (3, 32, 32), torch.device("cpu"))
    for net in (net_g, net_d):
        weights = [p for p in net.parameters() if p.dim() == 4]
        assert weights and all(w.is_contiguous() for w in weights)


def test_profile_step_reports_per_step_figures_on_the_cpu(capsys):
    from ganstudio.bench.profile_step import main as profile_main
    from ganstudio.bench.profile_step import profile_step
    r = profile_step(device="cpu", precision="fp32", resolution=32, batch_size=4, features=4,
                     warmup=1, steps=2, top=4)
    assert r["precision"] == "fp32" and r["steps"] == 2 and r["batch_size"] == 4
    assert r["wall_ms_per_step"] > 0 and r["host_ms_per_step"] > 0
    assert r["images_per_s"] == pytest.approx(4000.0 / r["wall_ms_per_step"])
    assert r["device_ms_per_step"] is None            # no GPU kernels on a CPU
    assert r["aten_operations_per_step"] > 50          # convolutions, norms, Adam, ...
    names = [row["name"] for row in r["top"]]
    assert len(names) == 4 and any("conv" in n for n in names)   # convolutions dominate
    assert profile_main(["--device", "cpu", "--precision", "fp32", "--resolution", "32",
                         "--batch", "4", "--features", "4", "--warmup", "1", "--steps", "1",
                         "--top", "2"]) == 0
    assert "cpu fp32 b4:" in capsys.readouterr().out
    assert profile_main(["--device", "cpu", "--precision", "fp8"]) == 2


def test_the_bench_command_line_stands_alone():
    """``python -m ganstudio.bench`` parses its options without loading ``ganstudio.cli``."""
    code = ("import sys; from ganstudio.bench.cli import main\n"
            "try:\n    main(['--help'])\nexcept SystemExit as e:\n    assert e.code == 0\n"
            "print(sorted(m for m in sys.modules if m.startswith('ganstudio.cli')))")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    assert "--skip PART[,PART...]" in r.stdout
    assert r.stdout.strip().splitlines()[-1] == "[]"


def test_the_benchmark_model_comes_from_a_plugin_reference():
    """The comparison's model is what a plugin offers (ganstudio_benchmark_references),
    with the classic recipe's settings and its own G and D; nothing in ganstudio/
    names it."""
    import torch
    from ganstudio.bench.reference import BenchmarkReference, reference_model
    from ganstudio.core.config import resolve_config
    from ganstudio.core.errors import UserError
    from ganstudio.plugins import PluginManager

    pm = PluginManager(load_folder=False)
    refs = pm.benchmark_references()
    assert refs and all(isinstance(r, BenchmarkReference) for r in refs)
    ref = reference_model(pm)
    spec = pm.get_model(ref.model_id)
    settings = ref.settings(resolution=32, batch_size=4, features=8, channels_last=True)
    config = resolve_config(spec.schema, settings)      # every setting is the model's own
    model = spec.factory(config, (3, 32, 32), torch.device("cpu"))
    g, d = ref.networks(model)
    assert isinstance(g, torch.nn.Module) and isinstance(d, torch.nn.Module)
    assert set(model.trained_networks().values()) == {g, d}
    with pytest.raises(UserError, match="no installed plugin offers one"):
        reference_model(PluginManager(load_entry_points=False, load_folder=False))
