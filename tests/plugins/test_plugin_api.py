"""The plugin API as a plugin author meets it: the guide's example, the messages for
common mistakes (in ``ganstudio plugins`` and ``--check``), the conformance kit's
verdicts on broken models, and the metrics hooks with the built-in csvlog writer."""
from __future__ import annotations

import ast
import csv
import json
import re
import textwrap
import types
from pathlib import Path

import pytest
import torch

from ganstudio import testing as kit
from ganstudio.cli import main
from ganstudio.core import events as ev
from ganstudio.core.config import Field, common_gan_fields
from ganstudio.core.engine import Engine, EngineSettings
from ganstudio.core.model import GAN, IMAGE_TO_IMAGE, ImageJob, ModelSpec
from ganstudio.plugins import PluginManager


def module_from_source(name: str, source: str) -> types.ModuleType:
    module = types.ModuleType(name)
    module.__file__ = f"<{name}>"
    exec(compile(source, module.__file__, "exec"), module.__dict__)
    return module


ROOT = Path(__file__).resolve().parents[2]
GUIDE = ROOT / "plugins" / "PLUGINS.md"


def _tiny_plugin_source() -> str:
    """The shared test-only plugin's source (TINY_PLUGIN_SOURCE in tests/conftest.py)."""
    tree = ast.parse((ROOT / "tests" / "conftest.py").read_text(encoding="utf-8"))
    for node in tree.body:
        if isinstance(node, ast.Assign) and getattr(node.targets[0], "id", "") == \
                "TINY_PLUGIN_SOURCE":
            return textwrap.dedent(node.value.args[0].value)
    raise AssertionError("tests/conftest.py no longer defines TINY_PLUGIN_SOURCE")


TINY_PLUGIN_SOURCE = _tiny_plugin_source()


def load_tiny_plugin_module() -> types.ModuleType:
    return module_from_source("tiny_for_kit", TINY_PLUGIN_SOURCE)


def guide_example(marker: str) -> str:
    """The fenced python block that follows ``<!-- example: MARKER -->`` in the guide."""
    text = GUIDE.read_text(encoding="utf-8")
    m = re.search(rf"<!-- example: {re.escape(marker)} -->\s*```python\n(.*?)```", text, re.S)
    assert m, f"the guide has no '{marker}' example"
    return m.group(1)


def statuses(results) -> dict[str, str]:
    return {r.name: r.status for r in results}


# -- the guide's single-file plugin, as a new author would use it -------------------------------
def test_single_file_plugin_from_the_guide_loads_and_passes_the_kit(plugins_dir, tmp_path,
                                                                   capsys):
    (plugins_dir / "hello_gan.py").write_text(guide_example("single-file plugin"))
    rc = main(["plugins"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "hello_gan 0.1.0 [folder] ok" in out
    assert "model hello-gan (gan): Hello GAN" in out

    pm = PluginManager(load_entry_points=False)
    spec = pm.get_model("hello-gan")  # registered through ganstudio_register_models
    results = kit.check_model(spec, workdir=tmp_path, module=pm.plugins["hello_gan"].module)
    assert statuses(results) == {"schema": "pass", "build": "pass", "steps": "pass",
                                 "samples": "pass", "state": "pass", "declared": "pass",
                                 "resume": "pass", "bf16": "pass", "latent": "pass"}, \
        kit.format_report("hello-gan", results)

    rc = main(["plugins", "--check", "hello_gan"])
    out = capsys.readouterr().out
    assert rc == 0
    assert "PASS  load     folder plugin 'hello_gan' 0.1.0: plugin API 1, 1 model" in out
    assert out.strip().endswith("passed: 10 passed, 0 passed with notes, 0 skipped, 0 failed")


# -- common breakages: each reads clearly in `plugins` and in `--check` -------------------------
GOOD = guide_example("single-file plugin")
_LR_LINE = next(i for i, ln in enumerate(GOOD.splitlines(), 1) if 'Field("lr"' in ln)

BREAKAGES = {
    "newapi": (GOOD.replace("GANSTUDIO_PLUGIN_API = 1", "GANSTUDIO_PLUGIN_API = 2"),
               "written for plugin API 2, but this studio speaks 1; update the plugin or "
               "GAN Studio"),
    "noapi": (GOOD.replace("GANSTUDIO_PLUGIN_API = 1", ""),
              "does not declare GANSTUDIO_PLUGIN_API (this studio speaks version 1)"),
    "badarg": (GOOD + "\n\n@ganstudio.hookimpl\ndef ganstudio_metrics(run_dir, stp):\n    pass\n",
               "invalid hooks: ganstudio_metrics(run_dir, stp): argument(s) 'stp' are not "
               "provided by the hook ganstudio_metrics; it offers run_dir, step, time, values"),
    "typo": (GOOD.replace("def ganstudio_register_models", "def ganstudio_register_model"),
             "invalid hooks: 'ganstudio_register_model' is not a GAN Studio hook (did you mean "
             "'ganstudio_register_models'?)"),
    "notalist": (GOOD.replace("    return [ModelSpec(", "    return ModelSpec(")
                 .replace('learning_rates={"lr": ("g", "d")})]', 'learning_rates={"lr": ("g", "d")})'),
                 "ganstudio_register_models failed: TypeError: ganstudio_register_models must "
                 "return a list, got ModelSpec"),
    "dictspec": (GOOD.replace("    return [ModelSpec(", "    return [dict(")
                 .replace("version=__version__)]", "version=__version__)]"),
                 "must return ModelSpec objects, got dict (build each with "
                 "ganstudio.core.model.ModelSpec)"),
    "noreturn": (GOOD.replace("    return [ModelSpec(", "    [ModelSpec("),
                 "ganstudio_register_models failed: TypeError: ganstudio_register_models "
                 "returned None; return a list of ModelSpec"),
    "noargs": (GOOD.replace("def ganstudio_register_models():",
                            "def ganstudio_register_models(config):"),
               "invalid hooks: ganstudio_register_models(config): argument(s) 'config' are not "
               "provided by the hook ganstudio_register_models; it takes no arguments"),
    "boom": ("import ganstudio\nGANSTUDIO_PLUGIN_API = 1\n\nRATIO = 1 / 0\n",
             "failed to import: ZeroDivisionError: division by zero (boom.py, line 4)"),
    "strapi": (GOOD.replace("GANSTUDIO_PLUGIN_API = 1", 'GANSTUDIO_PLUGIN_API = "1"'),
               "GANSTUDIO_PLUGIN_API must be a whole number, got '1' (str); write "
               "GANSTUDIO_PLUGIN_API = 1"),
    # the default's own bounds: named as the default, with the plugin's line (not config.py's)
    "baddefault": (GOOD.replace('"float", 2e-4, "Learning rate', '"float", 5.0, "Learning rate'),
                   "ganstudio_register_models failed: ConfigError: the default 5.0 of setting "
                   "'lr' is invalid: 5.0 is above the maximum 1.0 (baddefault.py, line "
                   f"{_LR_LINE})"),
}


@pytest.mark.parametrize("name", sorted(BREAKAGES))
def test_common_mistakes_read_clearly(name, plugins_dir, capsys):
    source, expected = BREAKAGES[name]
    (plugins_dir / f"{name}.py").write_text(source)
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    i = next(k for k, line in enumerate(lines)
             if re.fullmatch(rf"{name}( 0\.1\.0)? \[folder\] error", line))
    assert lines[i + 1].startswith("    error: ")
    assert expected in lines[i + 1], lines[i + 1]  # the whole reason on one line
    # the same reason, as the failing first check of `--check`
    assert main(["plugins", "--check", name]) == 1
    out = capsys.readouterr().out
    assert f"FAIL  load     " in out and expected in out
    assert "FAILED: 0 passed, 0 passed with notes, 0 skipped, 1 failed" in out


def test_an_error_in_a_package_names_its_folder(tmp_path, monkeypatch):
    from ganstudio.plugins import _plugin_error
    pkg = tmp_path / "ganstudio_pkgerr"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("import ganstudio\n\nX = 1 / 0\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    with pytest.raises(ZeroDivisionError) as info:
        __import__("ganstudio_pkgerr")
    assert _plugin_error(info.value) == ("ZeroDivisionError: division by zero "
                                         "(ganstudio_pkgerr/__init__.py, line 3)")


def test_check_of_an_unknown_name_is_a_user_error(capsys):
    assert main(["plugins", "--check", "nosuchplugin"]) == 2
    err = capsys.readouterr().err
    assert "no plugin or model named 'nosuchplugin'" in err and "dcgan" in err


def test_check_accepts_a_model_id(capsys):
    rc = main(["plugins", "--check", "msggan", "--no-ddp"])  # a model of the progan plugin
    out = capsys.readouterr().out
    assert rc == 0, out
    assert "model msggan" in out and "model progan" not in out


# -- the kit's verdicts on broken models --------------------------------------------------------
def _tiny(**replacements: str) -> types.ModuleType:
    source = TINY_PLUGIN_SOURCE
    for old, new in replacements.items():
        assert old in source, old
        source = source.replace(old, new)
    return module_from_source("broken_tiny", source)


_STEP_RETURN = 'return {"loss_d": loss_d.detach(), "loss_g": loss_g.detach()}'
_SAMPLE = "return self._g(z.to(self.device)).float()"
MUTATIONS = {
    "item": ({_STEP_RETURN: 'return {"loss_d": loss_d.item(), "loss_g": loss_g.detach()}'},
             "steps", "train_step value 'loss_d' is a float, not a tensor (return "
                      "loss.detach(), not loss.item()"),
    "attached": ({_STEP_RETURN: 'return {"loss_d": loss_d, "loss_g": loss_g.detach()}'},
                 "steps", "train_step value 'loss_d' is still attached to the graph"),
    "vector": ({_STEP_RETURN: 'return {"loss_d": loss_d.detach().view(1), '
                              '"loss_g": loss_g.detach()}'},
               "steps", "train_step value 'loss_d' has shape (1,); return a 0-dim scalar"),
    "notadict": ({_STEP_RETURN: "return loss_d.detach()"}, "steps",
                 "train_step must return a dict of named scalar tensors, got a tensor"),
    "range": ({_SAMPLE: "return 5 * self._g(z.to(self.device)).float()"}, "samples",
              "images must lie in [-1, 1]"),
    "noisy": ({_SAMPLE: "return (self._g(z.to(self.device)) + 0.01 * torch.randn(1)).clamp(-1, 1)"},
              "samples", "sample(z) differs between two calls with the same latents"),
    "channels": ({_SAMPLE: "return self._g(z.to(self.device)).float()[:, :1]"}, "samples",
                 "sample(z) returned 1 channels; the config asks for 3"),
    # the engine renders a sample grid during the steps: the kit names sample(z), not the engine
    "flat": ({_SAMPLE: "return self._g(z.to(self.device)).float().flatten(1)"}, "steps",
             "the engine stopped while rendering the sample grid: sample(z) must return "
             "(N, C, H, W), got shape (2, "),
    "pickle": ({'"opt_d": self.opt_d.state_dict()}':
                '"opt_d": self.opt_d.state_dict(), "extra": types.SimpleNamespace(a=1)}',
                "import torch\n": "import torch\nimport types\n"},
               "state", "state_dict() holds objects that checkpoints refuse to load"),
    "no_optimizer_state": ({'"opt_g": self.opt_g.state_dict(), "opt_d": self.opt_d.state_dict()}':
                            "}",
                            "self.opt_g.load_state_dict(state[\"opt_g\"])": "pass",
                            "self.opt_d.load_state_dict(state[\"opt_d\"])": "pass"},
                           "resume", "after resuming but"),
    # a generator of its own that state_dict() leaves out (NumPy's global one is saved by
    # the engine: see test_numpy_global_noise_resumes_exactly)
    "private_noise": ({"z = torch.randn(n, self.latent_dim, device=self.device)":
                       "import numpy as np\n"
                       "        self._rng = getattr(self, '_rng', np.random.default_rng(0))\n"
                       "        z = torch.from_numpy(self._rng.standard_normal("
                       "(n, self.latent_dim))).float()"},
                      "resume", "draw noise from torch's generators"),
    "nohelp": ({'"Learning rate of G and D."': '""'}, "schema",
               "setting 'lr' has no help text"),
    # an op without a bf16 kernel: fine in fp32, a failure under the default autocast
    "no_bf16": ({_STEP_RETURN: 'if torch.is_autocast_enabled("cpu"):\n'
                               '            raise RuntimeError("\\"slow_op\\" not implemented '
                               'for \'BFloat16\'")\n        ' + _STEP_RETURN},
                "bf16", "under bf16 autocast (the default precision on CUDA GPUs and on CPUs "
                        "with AMX) the engine stopped"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_kit_names_what_is_broken(name, tmp_path):
    replacements, failing, expected = MUTATIONS[name]
    module = _tiny(**replacements)
    pm = PluginManager(load_entry_points=False, load_folder=False, extra=[("broken", module)])
    assert pm.plugins["broken"].status == "ok", pm.plugins["broken"].error
    results = kit.check_model(pm.get_model("tinygan"), workdir=tmp_path, module=module)
    by_name = {r.name: r for r in results}
    report = kit.format_report("tinygan", results)
    assert by_name[failing].status == "fail", report
    assert expected in by_name[failing].detail, report
    order = ["schema", "build", "steps", "samples", "state", "declared", "resume", "bf16"]
    for earlier in order[:order.index(failing)]:
        assert by_name[earlier].status in ("pass", "warn"), report


def test_the_unbroken_tiny_model_passes_every_check(tmp_path):
    module = load_tiny_plugin_module()
    pm = PluginManager(load_entry_points=False, load_folder=False, extra=[("tiny", module)])
    results = kit.check_model(pm.get_model("tinygan"), workdir=tmp_path, module=module)
    assert [r.status for r in results] == ["pass"] * 8, kit.format_report("tinygan", results)
    # the kit ran 4 real engine steps with one metrics line each, and a 2+2 resumed run
    rows = [json.loads(x) for x in (tmp_path / "run_b" / "metrics.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [1, 2, 3, 4]
    assert (tmp_path / "run_b" / "checkpoints").is_dir()


def test_kit_settings_come_from_the_plugin_and_the_caller(tmp_path):
    module = load_tiny_plugin_module()
    spec = PluginManager(load_entry_points=False, load_folder=False,
                         extra=[("tiny", module)]).get_model("tinygan")
    assert kit.tiny_overrides(spec) == {"resolution": 8, "batch_size": 4}
    module.GANSTUDIO_TEST_SETTINGS = {"tinygan": {"latent_dim": 3, "batch_size": 2}}
    assert kit.tiny_overrides(spec, module=module, overrides={"lr": 0.01}) == {
        "resolution": 8, "batch_size": 2, "latent_dim": 3, "lr": 0.01}
    module.GANSTUDIO_TEST_SETTINGS = {"tinygan": {"latent_dim": 0}}  # below its min of 1
    results = kit.check_model(spec, workdir=tmp_path, module=module)
    assert statuses(results)["build"] == "fail"
    assert "setting 'latent_dim': 0 is below the minimum 1" in results[1].detail


def test_schema_check_notes_unbounded_numbers_and_refuses_a_missing_gan_field():
    schema = common_gan_fields() + [Field("gain", "float", 1.0, "Output gain.", min=0.0)]
    spec = ModelSpec(id="m", name="M", kind=GAN, schema=schema, factory=None, help="h")
    assert kit.check_schema(spec) == ["setting 'gain' has no max (the form's spin box needs "
                                      "a range)"]
    no_batch = [f for f in common_gan_fields() if f.name != "batch_size"]
    spec = ModelSpec(id="m", name="M", kind=GAN, schema=no_batch, factory=None, help="h")
    with pytest.raises(kit.ConformanceError, match="a GAN needs the setting 'batch_size'"):
        kit.check_schema(spec)


# -- image-to-image jobs ------------------------------------------------------------------------
class PaintJob(ImageJob):
    """Learns an image that matches a content picture (a stand-in for style transfer)."""

    def __init__(self, config, image_shape, device):
        super().__init__(config, image_shape, device)
        from PIL import Image
        if self.config.get("weights") == "":
            from ganstudio.core.errors import UserError
            if self.config.get("needs_weights"):
                raise UserError("no weights file given (setting 'weights')")
        img = torch.from_numpy(__import__("numpy").asarray(
            Image.open(self.config["content"]).convert("RGB"), dtype="float32"))
        self.target = (img.permute(2, 0, 1)[None] / 127.5 - 1).to(self.device)
        self.canvas = torch.zeros_like(self.target, requires_grad=True)
        self.opt = torch.optim.Adam([self.canvas], lr=0.1)

    def train_step(self, real=None):
        self.opt.zero_grad()
        loss = (torch.tanh(self.canvas) - self.target).pow(2).mean()
        loss.backward()
        self.opt.step()
        return {"loss": loss.detach()}

    @torch.no_grad()
    def preview(self):
        return torch.tanh(self.canvas).detach().clone()

    def state_dict(self):
        return {"canvas": self.canvas.detach().clone(), "opt": self.opt.state_dict()}

    def load_state_dict(self, state):
        with torch.no_grad():
            self.canvas.copy_(state["canvas"])
        self.opt.load_state_dict(state["opt"])


def _paint_spec(needs_weights: bool) -> ModelSpec:
    schema = [Field("content", "path", "", "Picture to paint."),
              Field("weights", "path", "", "Weights file of the feature network."),
              Field("needs_weights", "bool", needs_weights, "Refuse to start without weights.")]
    return ModelSpec(id="paint", name="Paint", kind=IMAGE_TO_IMAGE, schema=schema,
                     factory=PaintJob, help="Test job.")


def test_numpy_global_noise_resumes_exactly(tmp_path):
    """Outside code drawing from NumPy's global generator needs no change: the engine
    keeps that state in its checkpoints."""
    module = _tiny(**{"z = torch.randn(n, self.latent_dim, device=self.device)":
                      "import numpy as np\n"
                      "        z = torch.from_numpy(np.random.randn(n, self.latent_dim)).float()"})
    pm = PluginManager(load_entry_points=False, load_folder=False, extra=[("numpy", module)])
    results = kit.check_model(pm.get_model("tinygan"), workdir=tmp_path, module=module)
    assert statuses(results)["resume"] == "pass", kit.format_report("tinygan", results)


def test_a_model_without_declared_optimizers_passes_with_a_note(tmp_path):
    module = _tiny(**{'learning_rates=("lr",))]': ")]",
                      "    def optimizers(self):": "    def _unused(self):"})
    pm = PluginManager(load_entry_points=False, load_folder=False, extra=[("noopt", module)])
    results = kit.check_model(pm.get_model("tinygan"), workdir=tmp_path, module=module)
    declared = next(r for r in results if r.name == "declared")
    assert declared.status == "warn" and "roll back cannot lower" in declared.detail


def test_learning_rates_naming_a_missing_optimizer_fail_the_declared_check(tmp_path):
    module = _tiny(**{'learning_rates=("lr",))]': 'learning_rates={"lr": ("g", "x")})]'})
    pm = PluginManager(load_entry_points=False, load_folder=False, extra=[("badlr", module)])
    results = kit.check_model(pm.get_model("tinygan"), workdir=tmp_path, module=module)
    declared = next(r for r in results if r.name == "declared")
    assert declared.status == "fail" and "optimizer(s) x" in declared.detail


@pytest.mark.parametrize("logits, passes", [
    ("torch.zeros(x.shape[0])", True),
    ("torch.zeros(1)", False),                        # one number for the whole batch
    ("torch.full((x.shape[0],), float('nan'))", False),
])
def test_declared_d_logits_are_checked(tmp_path, logits, passes):
    module = _tiny(**{'learning_rates=("lr",))]':
                      'learning_rates=("lr",), capabilities=frozenset({"d_logits"}))]',
                      "    def optimizers(self):":
                      f"    def discriminate(self, x):\n        return {logits}\n\n"
                      "    def optimizers(self):"})
    pm = PluginManager(load_entry_points=False, load_folder=False, extra=[("dlogits", module)])
    results = kit.check_model(pm.get_model("tinygan"), workdir=tmp_path, module=module)
    declared = next(r for r in results if r.name == "declared")
    assert (declared.status == "pass") is passes, declared.detail
    if not passes:
        assert "capability 'd_logits'" in declared.detail


def test_image2image_job_gets_generated_inputs_and_passes(tmp_path):
    results = kit.check_model(_paint_spec(False), workdir=tmp_path)
    assert [r.status for r in results] == ["pass"] * 7, kit.format_report("paint", results)
    assert "preview gives (1, 3, 16, 16)" in results[3].detail
    assert (tmp_path / "inputs" / "content.png").is_file()
    assert not (tmp_path / "inputs" / "weights.png").exists()  # weights are never invented


def test_image2image_job_that_needs_weights_is_skipped_with_the_reason(tmp_path):
    results = kit.check_model(_paint_spec(True), workdir=tmp_path)
    assert statuses(results) == {"schema": "pass", "build": "skip", "steps": "skip",
                                 "samples": "skip", "state": "skip", "declared": "skip",
                                 "resume": "skip"}
    assert "no weights file given (setting 'weights')" in results[1].detail
    assert "ModelSpec.test_settings" in results[1].detail


# -- the pytest side of the kit -----------------------------------------------------------------
def test_plugin_conformance_class_runs_the_kit_per_model(tmp_path):
    module = load_tiny_plugin_module()

    class TestTiny(kit.PluginConformance):
        plugin = module

    TestTiny().test_plugin_loads()
    TestTiny().test_model_conforms("tinygan", tmp_path / "ok")

    class Metafunc:  # what pytest hands pytest_generate_tests
        fixturenames = ["ganstudio_model_id", "tmp_path"]
        cls = TestTiny
        calls: list = []

        def parametrize(self, name, values, ids=None):
            self.calls.append((name, list(values), ids))

    meta = Metafunc()
    kit.pytest_generate_tests(meta)
    assert meta.calls == [("ganstudio_model_id", ["tinygan"], ["tinygan"])]
    meta.cls = None  # any other test: left alone
    meta.calls.clear()
    kit.pytest_generate_tests(meta)
    assert meta.calls == []

    broken = _tiny(**{_STEP_RETURN: 'return {"loss_d": loss_d.item()}'})

    class TestBroken(kit.PluginConformance):
        plugin = broken

    with pytest.raises(kit.ConformanceError, match="FAIL  steps    train_step value 'loss_d'"):
        TestBroken().test_model_conforms("tinygan", tmp_path / "broken")


# -- metrics hooks and the csvlog writer --------------------------------------------------------
def _run(pm: PluginManager, run_dir: Path, steps: int, *, resume: bool = False,
         images: torch.Tensor | None = None) -> ev.Event:
    spec = pm.get_model("tinygan")
    settings = EngineSettings(total_steps=steps, log_every_s=1e9, log_every_steps=1,
                              sample_every_s=1e9, checkpoint_every_s=0, device="cpu",
                              precision="fp32", n_samples=4)
    images = kit.tiny_images(8, 3, 8) if images is None else images
    engine = Engine(spec, run_dir, settings=settings, images=images, resume=resume,
                    listeners=[pm.metrics_listener(str(run_dir))])
    engine.prepare()
    return engine.run_loop()


def _csv_rows(run_dir: Path) -> list[dict]:
    with open(run_dir / "metrics.csv", newline="") as f:
        return list(csv.DictReader(f))


def test_csvlog_writes_every_metrics_point_exactly(tmp_path):
    import ganstudio_csvlog
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[("tiny", load_tiny_plugin_module()), ("csvlog", ganstudio_csvlog)])
    run = tmp_path / "run"
    assert isinstance(_run(pm, run, 3), ev.Finished)
    jsonl = [json.loads(x) for x in (run / "metrics.jsonl").read_text().splitlines()]
    rows = _csv_rows(run)
    assert list(rows[0]) == ["step", "time", "loss_d", "loss_g"]
    assert [int(r["step"]) for r in rows] == [1, 2, 3]
    for j, r in zip(jsonl, rows):
        assert float(r["loss_d"]) == j["loss_d"] and float(r["loss_g"]) == j["loss_g"]
    assert ganstudio_csvlog._writers == {}  # ganstudio_run_finished closed the file

    # resume from the step-3 checkpoint to 5: rows 1-3 kept, 4-5 appended, same header
    assert isinstance(_run(pm, run, 5, resume=True), ev.Finished)
    rows2 = _csv_rows(run)
    assert [int(r["step"]) for r in rows2] == [1, 2, 3, 4, 5]
    assert rows2[:3] == rows


def test_csvlog_replayed_steps_and_new_columns(tmp_path):
    import ganstudio_csvlog as csvlog
    run = str(tmp_path)
    for step in (1, 2, 3, 4):
        csvlog.ganstudio_metrics(run, step, step * 0.5, {"loss": step / 10})
    csvlog.ganstudio_run_finished(run, 4, "stopped")
    # a resumed run from step 2 replays 3 and 4; a value appears that was not there before
    csvlog.ganstudio_metrics(run, 3, 2.0, {"loss": 0.25, "alpha": 0.5})
    csvlog.ganstudio_metrics(run, 4, 2.5, {"loss": 0.125, "alpha": 1.0})
    csvlog.ganstudio_run_finished(run, 4, "completed")
    text = (tmp_path / "metrics.csv").read_text()
    assert text == ("step,time,loss,alpha\n1,0.5,0.1,\n2,1.0,0.2,\n"
                    "3,2.0,0.25,0.5\n4,2.5,0.125,1.0\n")


def test_a_failing_metrics_hook_is_reported_once_and_training_goes_on(tmp_path):
    calls = {"good": 0, "bad": 0, "finished": []}
    bad = module_from_source("bad_listener", textwrap.dedent("""
        import ganstudio
        GANSTUDIO_PLUGIN_API = 1
        CALLS = None
        @ganstudio.hookimpl
        def ganstudio_metrics(values):
            CALLS["bad"] += 1
            raise RuntimeError("listener bug")
    """))
    good = module_from_source("good_listener", textwrap.dedent("""
        import ganstudio
        GANSTUDIO_PLUGIN_API = 1
        CALLS = None
        @ganstudio.hookimpl
        def ganstudio_metrics(step, values):
            CALLS["good"] += 1
            values.clear()  # its own copy: the other plugins still see the values
        @ganstudio.hookimpl
        def ganstudio_run_finished(run_dir, step, reason):
            CALLS["finished"].append((run_dir, step, reason))
    """))
    bad.CALLS = good.CALLS = calls
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[("tiny", load_tiny_plugin_module()), ("bad", bad),
                              ("good", good)])
    run = tmp_path / "run"
    end = _run(pm, run, 4)
    assert isinstance(end, ev.Finished) and end.step == 4
    assert calls["bad"] == 1 and calls["good"] == 4
    assert calls["finished"] == [(str(run), 4, "completed")]
    log = (run / "events.log").read_text()
    assert log.count("plugin 'bad' failed in ganstudio_metrics and is switched off") == 1
    assert "RuntimeError: listener bug" in log


def test_run_finished_reports_a_failed_run(tmp_path):
    seen = []
    listener = module_from_source("listener", textwrap.dedent("""
        import ganstudio
        GANSTUDIO_PLUGIN_API = 1
        SEEN = None
        @ganstudio.hookimpl
        def ganstudio_run_finished(step, reason):
            SEEN.append((step, reason))
    """))
    listener.SEEN = seen
    broken = _tiny(**{"n = real.shape[0]": "n = real.shape[0]\n"
                                           "        if self.opt_d.state: raise ValueError('x')"})
    pm = PluginManager(load_entry_points=False, load_folder=False,
                       extra=[("tiny", broken), ("listener", listener)])
    end = _run(pm, tmp_path / "run", 5)
    assert isinstance(end, ev.Failed)
    assert seen == [(1, "failed")]
