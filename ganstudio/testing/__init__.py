"""The conformance kit: checks that a plugin's models work in GAN Studio.

Three ways to run the same checks:

* ``ganstudio plugins --check NAME`` prints a readable report (exit code 0 when
  every check passes);
* in a plugin's own tests, subclass :class:`PluginConformance`::

      from ganstudio.testing import PluginConformance

      class TestMyPlugin(PluginConformance):
          plugin = "my_gan"          # the entry-point name (or the module itself)

  pytest then runs one ``test_model_conforms[<model id>]`` per model;
* from Python: :func:`check_plugin`, :func:`check_model`, :func:`check_schema`.

What is checked for every model (on the CPU, on a few generated images):

``schema``   defaults validate, bounds are consistent and enforced, every setting
             has help text, a GAN has ``resolution``, ``channels`` and ``batch_size``.
``build``    the factory builds the model through the real :class:`~ganstudio.core.engine.Engine`.
``steps``    a few real engine steps; ``train_step`` returns a dict of detached,
             finite, 0-dim float tensors; one metrics line per step.
``samples``  (GAN) ``make_latents`` and ``sample`` give (N, C, h, w) in [-1, 1],
             deterministic for the same latents; (image2image) ``preview``.
``state``    ``state_dict`` survives ``torch.save`` / ``torch.load(weights_only=True)``
             (what checkpoints use) and a fresh model that loads it is identical.
``declared`` what the ModelSpec declares holds: latent size, learning-rate settings and
             the optimizers they name, capabilities ``ddp``, ``d_features``, ``d_logits``, ``finetune``.
``resume``   a run interrupted by a checkpoint and resumed logs exactly the same
             losses as the uninterrupted run (``log_every_steps=1``).
``bf16``     (folder kinds) two engine steps under bf16 autocast.
``latent``, ``onnx``  (a declared latent space) what the explorer needs
             (:mod:`ganstudio.testing.explore`).

Every check is deterministic: samples and checkpoints by steps, no monitors.

The parts: :mod:`.results` (statuses, CheckResult, the report), :mod:`.inputs`
(generated images, tiny settings), :mod:`.checks` (schema, outputs, states,
declarations), :mod:`.model` (one model through the engine), :mod:`.plugin`
(a whole plugin, the ``--check`` command); this module re-exports them and
holds the pytest integration.

Non-model hooks (``ganstudio_metrics``, ``ganstudio_run_finished``) are called
once with made-up values in a temporary run folder.

This package is also a pytest plugin (entry point ``pytest11``), so it is
imported by every pytest run: it imports nothing heavy at module level and
its only hook acts on :class:`PluginConformance` subclasses alone.
"""
from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from .checks import (check_declared, check_images, check_schema, check_step_output,
                     compare_states)
from .inputs import tiny_images, tiny_overrides
from .model import check_model
from .plugin import check_command, check_plugin, resolve_target
from .results import (FAIL, KIT_BATCH, KIT_IMAGES, KIT_STEPS, PASS, SKIP, TEST_SETTINGS_ATTR,
                      WARN, CheckResult, ConformanceError, format_report)

__all__ = ["FAIL", "KIT_BATCH", "KIT_IMAGES", "KIT_STEPS", "PASS", "SKIP", "TEST_SETTINGS_ATTR",
           "WARN", "CheckResult", "ConformanceError", "PluginConformance", "check_command",
           "check_declared", "check_images", "check_model", "check_plugin", "check_schema",
           "check_step_output", "compare_states", "format_report", "resolve_target",
           "tiny_images", "tiny_overrides"]


# -- pytest integration --------------------------------------------------------------------------
class PluginConformance:
    """Subclass in a test module, set ``plugin``, and pytest runs the kit.

    ``plugin``: the plugin's entry-point name, or the plugin module itself
    (handy for a single-file plugin that is not installed).
    ``settings``: optional ``{model_id: {setting: value}}`` overrides that keep
    the models small (same as the plugin's ``GANSTUDIO_TEST_SETTINGS``).
    """

    plugin: str | ModuleType = ""
    settings: dict = {}

    @classmethod
    def _manager(cls) -> tuple[Any, str]:
        cache = cls.__dict__.get("_ganstudio_pm")
        if cache is not None:
            return cache
        from ganstudio.plugins import PluginManager

        if isinstance(cls.plugin, ModuleType):
            name = cls.plugin.__name__.rsplit(".", 1)[-1]
            pm = PluginManager(load_entry_points=False, load_folder=False,
                               extra=[(name, cls.plugin)])
        else:
            name = str(cls.plugin)
            pm = PluginManager(load_folder=False)
        cls._ganstudio_pm = (pm, name)
        return pm, name

    def test_plugin_loads(self) -> None:
        pm, name = self._manager()
        if name not in pm.plugins:
            from ganstudio.core.errors import UserError
            try:
                resolve_target(pm, name)
            except UserError as e:
                raise ConformanceError(str(e)) from None
        info = pm.plugins[name]
        assert info.status == "ok", f"plugin '{name}' did not load: {info.error}"

    def test_model_conforms(self, ganstudio_model_id: str | None, tmp_path: Path) -> None:
        import pytest

        if ganstudio_model_id is None:
            pytest.skip("the plugin registers no models")
        pm, name = self._manager()
        info = pm.plugins.get(name)
        spec = next(m for m in pm.models() if m.id == ganstudio_model_id)
        results = check_model(spec, workdir=tmp_path, module=info.module if info else None,
                              overrides=(self.settings or {}).get(spec.id))
        failed = [r for r in results if r.status == FAIL]
        if failed:
            raise ConformanceError("\n" + format_report(spec.id, results))
        build = next(r for r in results if r.name == "build")
        if build.status == SKIP:
            pytest.skip(build.detail)


def pytest_generate_tests(metafunc: Any) -> None:
    """Parametrize ``ganstudio_model_id`` for PluginConformance subclasses only."""
    if "ganstudio_model_id" not in metafunc.fixturenames:
        return
    cls = metafunc.cls
    if cls is None or not issubclass(cls, PluginConformance):
        return
    pm, name = cls._manager()
    info = pm.plugins.get(name)
    ids = [m.id for m in info.models] if info is not None and info.status == "ok" else []
    if not ids:
        metafunc.parametrize("ganstudio_model_id", [None], ids=["no-models"])
    else:
        metafunc.parametrize("ganstudio_model_id", ids, ids=ids)
