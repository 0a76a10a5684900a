"""The studio words the engine's structured suggestions itself (no regex on core text)."""
from __future__ import annotations

from ganstudio.core import events as ev
from ganstudio.gui.wording import advice, settings_text, with_advice


def test_failures_and_warnings_are_worded_from_their_data():
    oom = ev.Failed(6, "the device ran out of memory at step 6 (batch size 16)",
                    kind=ev.OUT_OF_MEMORY, settings={"batch_size": 8}, action=ev.RESUME)
    assert advice(oom) == "Try a smaller batch (batch_size = 8) and resume."
    assert with_advice(oom).startswith("The device ran out of memory at step 6 (batch size 16). "
                                       "Try a smaller batch")
    bf16 = ev.Failed(3, "plugin 'x' failed", kind=ev.PRECISION, run_options={"precision": "fp32"})
    assert advice(bf16) == "Resume with Precision fp32 in the Run settings."
    stuck = ev.Warning("samples look alike (mode collapse)", 200, "collapse",
                       action=ev.ADD_IMAGES)
    assert "folder may be too small or too varied" in with_advice(stuck)
    lower = ev.Warning("the discriminator wins", 300, "imbalance", {"lr_d": 1e-4})
    assert advice(lower) == "Try lr_d = 0.0001 in the Model settings, then resume."
    assert settings_text({"aug_prob": None, "sizes": [32, 64]}) == \
        "aug_prob = Automatic, sizes = 32, 64"
    for event in (oom, bf16, stuck, lower):
        assert "--set" not in with_advice(event) and "--precision" not in with_advice(event)
