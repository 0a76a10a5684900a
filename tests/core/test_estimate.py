"""The run-time estimate: measured steps, scaled to the budget, lighter alternatives."""
from __future__ import annotations

import pytest

from ganstudio.core.errors import UserError
from ganstudio.core.estimate import faster_alternatives, measure
from ganstudio.plugins import get_plugin_manager

TINY = {"resolution": 32, "batch_size": 2, "g_features": 4, "d_features": 4}


@pytest.fixture(scope="module")
def dcgan():
    return get_plugin_manager().get_model("dcgan")


def test_estimate_scales_with_steps_and_reports_what_it_measured(dcgan):
    e = measure(dcgan, TINY, 1000, device="cpu", precision="fp32", timed_steps=2)
    assert e.seconds_per_step > 0 and e.images_per_second > 0
    assert e.steps == 1000 and e.precision == "fp32" and e.device == "cpu"
    assert e.config["resolution"] == 32 and e.changes == {}
    # training time plus the grid renders and the monitors' share: at least the steps
    assert e.total_seconds >= 1000 * e.seconds_per_step
    assert e.total_seconds < 1000 * e.seconds_per_step * 1.5


def test_alternatives_fit_the_target_and_say_what_changes(dcgan):
    asked = measure(dcgan, TINY, 2000, device="cpu", precision="fp32", timed_steps=2)
    target = asked.total_seconds / 4
    alts = faster_alternatives(dcgan, TINY, 2000, target, device="cpu", precision="fp32",
                               measured=asked, timed_steps=2)
    assert alts, "a run four times too long must get a shorter alternative"
    for a in alts:
        assert a.changes, "an alternative names what it changes"
        assert a.steps == a.changes.get("steps", 2000)
        if "steps" in a.changes:    # fits the target, or is the tenth of the budget
            assert a.total_seconds <= target * 1.0001 or a.steps == 200
            assert 200 <= a.steps < 2000


def test_a_run_that_already_fits_needs_no_alternative(dcgan):
    asked = measure(dcgan, TINY, 10, device="cpu", precision="fp32", timed_steps=1)
    alts = faster_alternatives(dcgan, {**TINY, **dcgan.quick_settings}, 10,
                               asked.total_seconds * 100, device="cpu", precision="fp32",
                               measured=asked, timed_steps=1)
    assert alts == []


def test_bad_settings_are_a_user_error(dcgan):
    with pytest.raises(UserError):
        measure(dcgan, {"resolution": 17}, 10, device="cpu")
