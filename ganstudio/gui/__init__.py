"""The studio: PySide6 + pyqtgraph views. The only layer that imports Qt; it never
imports the command line (``ganstudio.cli``).

Where things live:

- ``app.py``: start-up (window first, torch and plugins in the background).
- ``main_window.py``: the layout and the wiring of the parts below, remembered
  settings (``options.py``), the message strip and closing.
- ``training.py``: the start / pause / resume / stop state machine of one run and
  resuming a past run on its own data; ``worker.py`` runs the engine on a QThread.
- ``run_viewer.py``: opening and watching runs (``watcher.py`` tails another
  process's run); ``run_browser.py``: the Runs table, renaming.
- ``demo.py``, ``export_controller.py``, ``actions.py``, ``status.py``: the demo's
  light settings, exports, toolbar and menus, the status bar and its speed / ETA.
- ``tasks.py``: the one background-job pattern (started / progress / result / error /
  finished, cancel); every studio thread is tracked and joined at close.
- ``panel_api.py``: ``StudioAPI``, all a plugin's tab may use; ``panel_host.py``
  adds the tabs ``ganstudio_studio_panels()`` offers (a broken one costs only its tab).
- ``wording.py``: the engine's warnings and failures (data) in the window's words.

A new tab belongs in its plugin's package and enters through the panel hook, never
through an import here.
"""
from .qt_compat import guard_none_refcount

guard_none_refcount()
