"""The command line words the engine's structured suggestions (core writes no flags)."""
from __future__ import annotations

from ganstudio.cli.messages import event_warning_line, failure_lines
from ganstudio.core import events as ev


def test_failures_become_an_error_line_and_the_command_that_continues(tmp_path):
    nan = ev.Failed(8, "losses became NaN or infinite at step 8; the last good checkpoint is "
                       "ckpt_00000005.pt", kind=ev.NAN, settings={"lr_g": 1e-4, "lr_d": 1e-4},
                    action=ev.RESUME)
    lines = failure_lines(nan, str(tmp_path / "my run"), tmp_path / "events.log")
    assert lines[0].endswith("; resume with lower learning rates (lr_g=0.0001 lr_d=0.0001)")
    assert lines[1] == (f"to continue: ganstudio train --resume --out '{tmp_path / 'my run'}' "
                        "--set lr_g=0.0001 --set lr_d=0.0001")
    bf16 = ev.Failed(2, "plugin 'x' (x) failed at step 2: RuntimeError", "Traceback ...",
                     "x", ev.PRECISION, run_options={"precision": "fp32"}, action=ev.RESUME)
    lines = failure_lines(bf16, "R", tmp_path / "events.log")
    assert lines[0].endswith("; resume with --precision fp32")
    assert lines[1] == "to continue: ganstudio train --resume --out R --precision fp32"
    assert lines[2].startswith("(traceback in ")


def test_warnings_carry_their_advice_in_console_words():
    lower = ev.Warning("step 300: the discriminator wins", 300, "imbalance", {"lr_d": 1e-4})
    assert event_warning_line(lower) == ("warning: step 300: the discriminator wins; try "
                                         "--set lr_d=0.0001 (resume with it)")
    stuck = ev.Warning("step 400: samples look alike (mode collapse)", 400, "collapse",
                       action=ev.ADD_IMAGES)
    assert "the folder may be too small or too varied" in event_warning_line(stuck)
    plain = ev.Warning("dataset: 3 files skipped", 0, "dataset")
    assert event_warning_line(plain) == "warning: dataset: 3 files skipped"
