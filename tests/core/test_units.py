import math

from ganstudio.core.units import format_duration


def test_format_duration_reads_as_a_duration_not_a_clock_time():
    assert format_duration(0) == "0 s"
    assert format_duration(59.4) == "59 s"
    assert format_duration(61) == "1 min 01 s"
    assert format_duration(3600 + 5 * 60 + 7) == "1 h 05 min"
    assert format_duration(17 * 3600 + 16 * 60 + 28) == "17 h 16 min"
    assert format_duration(50 * 3600) == "2 d 02 h"
    assert format_duration(math.inf) == "--"
    assert format_duration(math.nan) == "--"
    assert format_duration(-1) == "--"
