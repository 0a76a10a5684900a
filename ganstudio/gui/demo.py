"""The demo images' light settings: applied when the demo folder is chosen, undone when
the user's own folder comes after it."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from ganstudio.core.errors import ConfigError

from .resources import demo_dataset_dir

# The demo images are for a first look: settings light enough that a 2-core CPU shows
# the samples changing within a minute (only keys the chosen model knows are applied;
# the models' own defaults stay as they are).
DEMO_SETTINGS = {"resolution": 32, "batch_size": 16, "g_features": 32, "d_features": 32}
DEMO_STEPS = 3000


def is_demo_folder(folder: str | Path) -> bool:
    try:
        return Path(folder).resolve() == demo_dataset_dir().resolve()
    except OSError:
        return False


class DemoSettings:
    """Owns what the demo changed in the Model panel, so it can be put back.

    ``model_panel``: the window's ModelPanel (public members only);
    ``say(text, ms)``: a status-bar message; ``steps_fixed()``: whether the command
    line chose the number of steps (then the demo leaves it alone).
    """

    def __init__(self, model_panel, say: Callable[[str, int], None],
                 steps_fixed: Callable[[], bool]):
        self.model_panel = model_panel
        self.say = say
        self.steps_fixed = steps_fixed
        self.pending = False                   # asked before the models loaded
        self.undo: tuple | None = None         # (model id, settings, steps) before the demo

    def apply(self) -> bool:
        """Light settings for the demo images; remembered until the models have loaded."""
        form, spec = self.model_panel.form, self.model_panel.current_spec()
        if form is None or spec is None:
            self.pending = True
            return False
        self.pending = False
        values = {}
        for key, value in DEMO_SETTINGS.items():
            f = spec.field(key)
            if f is not None and (not f.choices or value in f.choices):
                values[key] = value
        if self.undo is None:  # what to put back when the user's own folder comes
            current = form.values()
            self.undo = (spec.id, {k: current[k] for k in values if k in current},
                         self.model_panel.steps.value())
        form.set_values(values)
        if not self.steps_fixed():  # a --steps on the command line is the user's choice
            self.model_panel.steps.setValue(DEMO_STEPS)
        shown = ", ".join(f"{k}={v}" for k, v in values.items())
        self.say(f"Demo settings for a quick first run: {shown}, "
                 f"{self.model_panel.steps.value():,} steps (change them in the Model panel)",
                 15000)
        return True

    def folder_chosen(self, folder: str) -> None:
        """The user's own folder after the demo: put back the settings the demo lightened
        (those still at the demo's values), so real images train at the model's settings."""
        if self.undo is None or is_demo_folder(folder):
            return
        undo, self.undo = self.undo, None
        form, spec = self.model_panel.form, self.model_panel.current_spec()
        if form is None or spec is None or spec.id != undo[0]:
            return
        _model_id, before, steps = undo
        try:
            now = form.values()
        except ConfigError:
            now = {}
        back = {k: v for k, v in before.items() if now.get(k) == DEMO_SETTINGS.get(k)}
        form.set_values(back)
        if self.model_panel.steps.value() == DEMO_STEPS:
            self.model_panel.steps.setValue(steps)
        if back:
            self.say("Your images: the demo's light settings are undone ("
                     + ", ".join(f"{k}={v}" for k, v in back.items()) + ")", 10000)
