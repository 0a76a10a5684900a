"""The panel API: plugin tabs hosted in order, broken ones left out with a reason, and the
background-job pattern (started / progress / result / error / finished, cancel)."""
from __future__ import annotations

import threading

import pytest

import ganstudio
from ganstudio.panels import PanelSpec


def _panel_pm(*plugins):
    from ganstudio.plugins import PluginManager
    from tests.gui.conftest import _fake_plugin
    return PluginManager(load_entry_points=False, load_folder=False,
                         extra=[("tinyplugin", _fake_plugin()), *plugins])


class _Seen:
    """A panel factory that builds a real widget and keeps the StudioAPI it was given."""

    def __init__(self):
        self.studio = None
        self.shut = 0

    def factory(self, studio):
        from PySide6.QtWidgets import QLabel
        self.studio = studio
        label = QLabel("hello from a plugin")
        label.shutdown = self._shutdown
        return label

    def _shutdown(self):
        self.shut += 1


class PanelPlugin:
    GANSTUDIO_PLUGIN_API = 1

    def __init__(self, seen, order=5, title="Explore"):
        self.seen, self.order, self.title = seen, order, title

    @ganstudio.hookimpl
    def ganstudio_studio_panels(self):
        return [PanelSpec("explore-test", self.title, self.seen.factory, order=self.order)]


class RaisingFactoryPlugin:
    GANSTUDIO_PLUGIN_API = 1

    @ganstudio.hookimpl
    def ganstudio_studio_panels(self):
        def factory(studio):
            raise RuntimeError("no weights found for the test panel")
        return [PanelSpec("broken", "Broken tab", factory, order=20)]


class RaisingHookPlugin:
    GANSTUDIO_PLUGIN_API = 1

    @ganstudio.hookimpl
    def ganstudio_studio_panels(self):
        raise ImportError("No module named 'missing_dependency'")


def test_plugin_panels_are_hosted_in_order_and_broken_ones_say_why(qtbot, make_window,
                                                                   capsys):
    seen = _Seen()
    pm = _panel_pm(("panelplugin", PanelPlugin(seen, order=5)),
                   ("brokenfactory", RaisingFactoryPlugin()),
                   ("brokenhook", RaisingHookPlugin()))
    w = make_window(pm=pm, model="tiny", set=[])
    tabs = [w.tabs.tabText(i) for i in range(w.tabs.count())]
    assert tabs[:3] == ["Training", "Explore", "Runs"]
    assert "Broken tab" not in tabs
    assert w.panel_host.panels["explore-test"].text() == "hello from a plugin"
    reasons = dict(w.panel_host.problems)
    assert "no weights found for the test panel" in reasons["Broken tab"]
    assert "brokenhook" in reasons and "missing_dependency" in reasons["brokenhook"]
    err = capsys.readouterr().err
    assert "Traceback" not in err and "no weights found for the test panel" in err
    assert w.buttons["start"].isEnabled()  # the studio works without the broken tabs

    studio = seen.studio
    assert studio.plugin_manager() is pm and studio.window is w
    assert studio.runs_root() == w.studio.runs_root() and studio.runs_root().name == "runs"
    assert studio.device() == "cpu"
    assert studio.current_run() is None
    w.close()
    assert seen.shut == 1


def test_studio_api_status_and_run_signals(qtbot, make_window, tiny_pm, tmp_path):
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    studio = w.studio
    studio.show_status("Exploring 16 points", "info")
    assert w.statusBar().currentMessage() == "Exploring 16 points"
    studio.show_status("The latent file is damaged", "error")
    assert w.info_bar.level == "error" and w.info_bar.label.text() == \
        "The latent file is damaged"
    studio.show_status("Slow on this device", "warning")
    assert w.info_bar.level == "warning"
    with pytest.raises(ValueError):
        studio.show_status("x", "loud")
    run = tmp_path / "runs" / "some-run"
    with qtbot.waitSignal(studio.run_changed) as blocker:
        w.set_run(run)
    assert blocker.args == [run] and studio.current_run() == run


def test_run_task_reports_progress_result_and_finished_in_order(qtbot, make_window, tiny_pm):
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    calls = []
    gui_thread = threading.current_thread()

    def work(ctx):
        for i in range(4):
            ctx.progress((i + 1) / 4, f"part {i + 1}")
        return threading.current_thread() is not gui_thread

    def on_finished():
        calls.append(("finished", threading.current_thread() is gui_thread))

    handle = w.studio.run_task(work, on_result=lambda r: calls.append(("result", r)),
                               on_progress=lambda f, t: calls.append(("progress", f, t)),
                               on_finished=on_finished)
    qtbot.waitUntil(lambda: not handle.running, timeout=10_000)
    assert calls == [("progress", 0.25, "part 1"), ("progress", 0.5, "part 2"),
                     ("progress", 0.75, "part 3"), ("progress", 1.0, "part 4"),
                     ("result", True), ("finished", True)]


def test_run_task_errors_arrive_as_messages(qtbot, make_window, tiny_pm):
    from ganstudio.core.errors import UserError
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    errors, finished = [], []

    def fail(ctx):
        raise UserError("style.png is not an image")

    h = w.studio.run_task(fail, on_error=lambda m, tb: errors.append((m, tb)),
                          on_result=lambda r: errors.append(("result?", r)),
                          on_finished=lambda: finished.append(1))
    qtbot.waitUntil(lambda: not h.running, timeout=10_000)
    assert errors[0][0] == "style.png is not an image" and "UserError" in errors[0][1]
    assert len(errors) == 1 and finished == [1]

    h2 = w.studio.run_task(lambda ctx: 1 / 0, on_error=lambda m, tb: errors.append((m, tb)))
    qtbot.waitUntil(lambda: not h2.running, timeout=10_000)
    assert errors[1][0] == "ZeroDivisionError: division by zero"


def test_a_cancelled_task_returns_early(qtbot, make_window, tiny_pm):
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    started = threading.Event()
    results = []

    def work(ctx):
        started.set()
        n = 0
        while not ctx.cancelled():
            n += 1
            threading.Event().wait(0.005)
        return n

    h = w.studio.run_task(work, on_result=results.append)
    assert started.wait(10) and h.running
    h.cancel()
    qtbot.waitUntil(lambda: not h.running, timeout=10_000)
    assert len(results) == 1 and results[0] >= 1


def test_window_close_cancels_running_panel_tasks(qtbot, make_window, tiny_pm):
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    started = threading.Event()

    def work(ctx):
        started.set()
        while not ctx.cancelled():
            threading.Event().wait(0.005)
        return "stopped"

    h = w.studio.run_task(work)
    assert started.wait(10)
    w.close()  # joins the studio's threads: returns only because the task was cancelled
    assert h.cancel_requested and h.wait(1000)


def test_nothing_starts_once_the_window_is_closed(qtbot, make_window, tiny_pm):
    """A panel's timer may fire after the window closed: its task must not start (a thread
    left running when the application quits would abort it)."""
    w = make_window(pm=tiny_pm, model="tiny", set=[])
    w.close()
    ran, finished = [], []
    h = w.studio.run_task(lambda ctx: ran.append(1), on_finished=lambda: finished.append(1))
    assert not h.running and h.cancel_requested and h.wait(0)
    assert ran == [] and finished == []


def test_job_events_arrive_in_order_and_a_finished_job_keeps_nothing_alive(qtbot):
    """``ctx.emit`` streams a job's own events (training does); once it has finished, the
    runner holds nothing of the job's function (a bound method would keep its object,
    say a training run's engine, alive)."""
    import gc
    import weakref
    from ganstudio.gui.tasks import Tasks

    class Owner:
        def job(self, ctx):
            for i in range(50):
                ctx.emit(("item", i))
            return "done"

    tasks = Tasks()
    owner = Owner()
    ref = weakref.ref(owner)
    got, order = [], []
    handle = tasks.run(owner.job, on_event=got.append,
                       on_result=lambda r: order.append(("result", r)),
                       on_finished=lambda: order.append("finished"))
    qtbot.waitUntil(lambda: "finished" in order, timeout=10_000)
    assert got == [("item", i) for i in range(50)]
    assert order == [("result", "done"), "finished"] and not handle.alive
    del owner, handle
    qtbot.wait(50)
    gc.collect()
    assert ref() is None
    tasks.deleteLater()
