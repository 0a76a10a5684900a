"""Studio entry point: ``ganstudio`` / ``ganstudio gui``.

Start-up order keeps the window quick to appear: Qt and the window first,
torch and the plugins afterwards in a background thread. With
``GANSTUDIO_STARTUP_PROBE=1`` the app prints ``startup_seconds=<float>``
(process start to window shown) and quits at once, for the benchmarks.
"""
from __future__ import annotations

import os
import sys
import time

_IMPORTED_AT = time.monotonic()
PROBE_ENV = "GANSTUDIO_STARTUP_PROBE"


def process_age() -> float:
    """Seconds since this process started (from /proc on Linux; else since this import)."""
    try:
        with open("/proc/self/stat", "rb") as f:
            stat = f.read()
        fields = stat[stat.rfind(b")") + 2:].split()
        start_ticks = int(fields[19])  # field 22 of stat(5), counted after the command name
        with open("/proc/uptime", "rb") as f:
            uptime = float(f.read().split()[0])
        age = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
        if age >= 0:
            return age
    except (OSError, ValueError, IndexError, AttributeError):
        pass
    return time.monotonic() - _IMPORTED_AT


def create_app():
    from PySide6.QtWidgets import QApplication
    app = QApplication.instance() or QApplication(sys.argv[:1])
    app.setApplicationName("GAN Studio")
    app.setOrganizationName("GAN Studio")
    # No application display name: Qt would append it to every window title
    # ("GAN Studio — run — GAN Studio"); the titles already name the studio.
    return app


def build_window(args=None, settings=None, load: bool = True, probe: bool = False):
    """Create the themed window from CLI arguments and show it; plugins load after."""
    from PySide6.QtCore import QSettings, QTimer
    from .main_window import MainWindow, StudioOptions
    from .theme import apply_theme

    app = create_app()
    options = StudioOptions.from_args(args) if args is not None else StudioOptions()
    settings = settings if settings is not None else QSettings("GAN Studio", "studio")
    apply_theme(app, options.theme or str(settings.value("theme", "dark")))
    window = MainWindow(options, settings, lazy_chart=True)
    window.probe = probe
    window.show()
    if load:
        QTimer.singleShot(0, window.start_loading)
    return app, window


def _close_on_signals(app, window):
    """Ctrl-C or SIGTERM in the terminal closes the window as the close button would
    (without asking): the run stops, writes a checkpoint, and the thread is joined."""
    import signal
    from PySide6.QtCore import QTimer

    def handler(signum, frame):
        window.confirm_close = lambda: True
        QTimer.singleShot(0, window.close)

    for sig in (signal.SIGINT, signal.SIGTERM):
        try:
            signal.signal(sig, handler)
        except (ValueError, OSError):  # not the main thread, or not supported here
            pass
    # Python runs signal handlers only between bytecodes: wake it up now and then.
    waker = QTimer(app)
    waker.timeout.connect(lambda: None)
    waker.start(250)
    return waker


def display_problem(environ=None) -> str | None:
    """Why no window can open here (Linux without a display), or None.

    Qt aborts the whole process when it finds no display; saying so first
    keeps the user's terminal free of a core dump and points to the headless
    commands.
    """
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux") or env.get("QT_QPA_PLATFORM"):
        return None
    if env.get("DISPLAY") or env.get("WAYLAND_DISPLAY"):
        return None
    return ("no display found (DISPLAY and WAYLAND_DISPLAY are unset): the studio needs a "
            "desktop session; on a server use the headless commands (ganstudio train, "
            "ganstudio sample) or set QT_QPA_PLATFORM=offscreen")


def run_studio(args) -> int:
    problem = display_problem()
    if problem:
        from ganstudio.core.errors import UserError
        raise UserError(problem)
    from PySide6.QtCore import QTimer
    probe = os.environ.get(PROBE_ENV, "") not in ("", "0")
    app, window = build_window(args, load=not probe, probe=probe)
    _waker = _close_on_signals(app, window)
    if probe:
        def report() -> None:
            print(f"startup_seconds={process_age():.3f}", flush=True)
            window.close()
            app.quit()
        QTimer.singleShot(0, report)
    return int(app.exec())
