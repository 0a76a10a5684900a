import math

from ganstudio.core.units import format_duration


def test_format_duration():
    assert format_duration(0) == "00:00"
    assert format_duration(59.9) == "00:59"
    assert format_duration(61) == "01:01"
    assert format_duration(3600 + 5 * 60 + 7) == "1:05:07"
    assert format_duration(math.inf) == "--:--"
    assert format_duration(math.nan) == "--:--"
    assert format_duration(-1) == "--:--"
