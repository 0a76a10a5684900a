"""Reference cycles are freed in the GUI thread only (a widget freed by a background
thread's garbage collection corrupts Qt's widget list and crashes the studio later)."""
from __future__ import annotations

import gc
import threading
import weakref


def _churn() -> None:
    """A busy background thread: many short-lived cycles fill generation 0 again and again."""
    for _ in range(100_000):
        a: list = []
        a.append(a)


def _run_in_thread(fn) -> None:
    t = threading.Thread(target=fn)
    t.start()
    t.join()


def test_background_threads_never_collect_and_the_gui_thread_does(qtbot, qapp):
    from PySide6.QtWidgets import QWidget
    from ganstudio.gui.collector import GuiThreadCollector, installed

    in_main: list[bool] = []

    def watch(phase, _info):
        if phase == "start":
            in_main.append(threading.current_thread() is threading.main_thread())

    app_collector = installed(qapp)
    app_collector.stop()              # the control below needs Python's own collector
    gc.callbacks.append(watch)
    collector = GuiThreadCollector(interval_ms=20)
    try:
        _run_in_thread(_churn)
        assert False in in_main, "control: Python's collector ran in the busy thread"

        in_main.clear()
        collector.start()
        assert not gc.isenabled()
        _run_in_thread(_churn)
        assert in_main == [], "a collection ran outside the GUI thread"

        w = QWidget()
        w.me = w                      # a widget in a cycle: garbage only a collection frees
        ref = weakref.ref(w)
        del w
        qtbot.waitUntil(lambda: ref() is None, timeout=5_000)
        assert in_main and all(in_main) and collector.collections >= 1
    finally:
        collector.stop()
        gc.callbacks.remove(watch)
        app_collector.start()
    assert not gc.isenabled()         # the application's collector is running again
    collector.deleteLater()


def test_the_collector_stops_with_the_application(qapp):
    from ganstudio.gui.collector import install, installed
    c = install(qapp)
    assert c is installed(qapp) and install(qapp) is c and c.active and not gc.isenabled()
    qapp.aboutToQuit.emit()           # what QApplication.quit() sends
    assert not c.active and gc.isenabled()
    install(qapp)
    assert c.active


def test_the_studio_window_runs_the_collector(make_window, tiny_pm, qapp):
    from ganstudio.gui.collector import installed
    installed(qapp).stop()
    assert gc.isenabled()
    make_window(pm=tiny_pm, model="tiny", set=[])
    assert installed(qapp).active and not gc.isenabled()
