"""What the benchmark compares: a model a plugin offers as the studio's side of the
comparison with the classic DCGAN example script.

The benchmark (``ganstudio bench`` / ``python -m ganstudio.bench``) trains the same
networks two ways, the classic script's way and the engine's, on the same folder.
Which model that is, the settings that make it train the example's recipe, and
how to reach its two networks for the classic loop are the plugin's knowledge,
so the plugin declares them through the ``ganstudio_benchmark_references`` hook
(the built-in DCGAN plugin does); nothing in ``ganstudio/`` names a model.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable

from ganstudio.core.errors import UserError


@dataclass(frozen=True)
class BenchmarkReference:
    """A model the benchmark can train next to the classic DCGAN example.

    model_id:  the model (of the same plugin) to compare.
    settings:  ``settings(resolution=, batch_size=, features=, channels_last=None)`` ->
               the model's settings that train the example's networks with its recipe
               (``features`` the width of both networks; ``channels_last`` None = the
               model's default memory layout).
    networks:  ``networks(model)`` -> ``(G, D)``, the built model's two networks, which
               the classic loop trains itself (D returning logits).
    """

    model_id: str
    settings: Callable[..., dict[str, Any]]
    networks: Callable[[Any], tuple[Any, Any]]


def reference_model(plugin_manager: Any) -> BenchmarkReference:
    """The first model a plugin offers for the comparison; UserError when none does."""
    refs = plugin_manager.benchmark_references()
    if not refs:
        raise UserError("the benchmark compares a model with the classic DCGAN example, and "
                        "no installed plugin offers one (the built-in DCGAN plugin does: is "
                        "the studio installed with its plugins?)")
    return refs[0]
