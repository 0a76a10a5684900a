"""The one training engine. The CLI, the studio's worker thread, the conformance kit
and the benchmark all drive it; nothing about training lives anywhere else.

Read in this order:

* :mod:`.loop` - :class:`Engine`: commands, events, and the step loop;
* :mod:`.preparation` - the run lock (taken first), config, data, model, restore;
* :mod:`.schedule` - when a metrics line, a grid, a checkpoint, a monitor is due;
* :mod:`.failures` - failures as data (a kind and a structured suggestion), the
  NaN check, out of memory, roll back;
* :mod:`.checkpointing`, :mod:`.learning_rates`, :mod:`.randomness`,
  :mod:`.monitoring` - what they say.
"""
from .failures import is_out_of_memory
from .loop import Engine, train
from .settings import EngineSettings

__all__ = ["Engine", "EngineSettings", "is_out_of_memory", "train"]
