"""The hooks a GAN Studio plugin can implement.

Every hook is documented here with when it is called and in which thread. A
plugin implements a hook by defining a function of the same name decorated
with ``ganstudio.hookimpl`` (or, for a plain module, ``ganstudio.plugins.hookimpl``).
A plugin module also declares ``GANSTUDIO_PLUGIN_API = 1``.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:  # pragma: no cover
    from ganstudio.bench.reference import BenchmarkReference
    from ganstudio.core.model import ModelSpec
    from ganstudio.panels import PanelSpec

PROJECT = "ganstudio"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


@hookspec
def ganstudio_register_models() -> "list[ModelSpec]":
    """Return the models this plugin offers, as a list of ModelSpec.

    Called once per plugin when the plugin manager loads plugins: at start-up of
    the CLI or the studio, in the main thread, before any training. Must be
    cheap: build networks in the spec's factory, not here. Anything but a list
    of ModelSpec (or an exception) marks the plugin as failed with the reason.

    Example::

        @ganstudio.hookimpl
        def ganstudio_register_models():
            return [ModelSpec(id="mygan", name="My GAN", kind=GAN,
                              schema=common_gan_fields(), factory=MyGAN)]
    """


@hookspec
def ganstudio_metrics(run_dir: str, step: int, time: float, values: "dict[str, float]") -> None:
    """Receive one logged metrics point of a running training.

    Called by the engine in the *training thread* (never the GUI thread) each
    time it logs metrics (about every 100 ms, or every N steps), with the run
    folder, the step, the seconds trained (across resumes) and the metric
    values: the means of the model's losses since the last point plus the
    model's ``status()`` numbers, as Python floats. ``values`` is the plugin's
    own copy. Keep it fast; it delays training while it runs. An exception is
    written to the run's events.log and the plugin's hooks are not called again
    for that run. Logging integrations (CSV, TensorBoard, ...) are plugins of
    this hook; the built-in ``csvlog`` plugin is one.

    Example::

        @ganstudio.hookimpl
        def ganstudio_metrics(run_dir, step, values):
            print(step, values["loss_g"])
    """


@hookspec
def ganstudio_run_finished(run_dir: str, step: int, reason: str) -> None:
    """A training run ended: ``reason`` is ``completed``, ``stopped`` or ``failed``.

    Called once per run in the training thread after the final checkpoint is
    written (or after the failure was logged), with the last step. Use it to
    close files a metrics hook opened. A paused run has not ended.

    Example::

        @ganstudio.hookimpl
        def ganstudio_run_finished(run_dir, reason):
            print(f"{run_dir}: {reason}")
    """


@hookspec
def ganstudio_studio_panels() -> "list[PanelSpec]":
    """Return studio tabs this plugin adds, as a list of ``ganstudio.panels.PanelSpec``.

    Called only by the studio (never by the command line), once, in the GUI
    thread, while the main window is built. Each spec carries an id, a tab
    title, an order and a ``factory(studio)`` that builds the tab's QWidget; the
    factory is called in the GUI thread and may import Qt (keep those imports
    inside the panel module, so the plugin's model code never imports Qt).
    ``studio`` is the studio's small public panel API
    (:class:`ganstudio.gui.panel_api.StudioAPI`): the run shown now and a
    signal when it changes, the plugin manager, the device choice, and a
    background-task runner (started / progress / result / error / finished).
    A factory that raises leaves the studio without that tab and says why.

    Example::

        @ganstudio.hookimpl
        def ganstudio_studio_panels():
            from .panel import make_panel          # imports Qt
            return [PanelSpec(id="my-tab", title="My tab", factory=make_panel)]
    """


@hookspec
def ganstudio_benchmark_references() -> "list[BenchmarkReference]":
    """Return models the benchmark may train next to the classic DCGAN example, as a
    list of ``ganstudio.bench.reference.BenchmarkReference``.

    Called only by the benchmark (``ganstudio bench``, ``python -m
    ganstudio.bench.profile_step``), once, in the main thread. Each reference names
    a model of this plugin, the settings that make it train the example's networks
    with the example's recipe, and how to reach those two networks in a built model.

    Example::

        @ganstudio.hookimpl
        def ganstudio_benchmark_references():
            from ganstudio.bench.reference import BenchmarkReference
            return [BenchmarkReference(
                model_id="my-dcgan",
                settings=lambda resolution, batch_size, features, channels_last=None: {
                    "resolution": resolution, "batch_size": batch_size,
                    "width": features},
                networks=lambda model: (model.G, model.D))]
    """
