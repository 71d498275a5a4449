"""The dashboard's number formatting: changes against the previous period."""

import pytest

from attribution.templatetags.humanize_allumi import signed_percent, trend


@pytest.mark.parametrize(
    ("change", "text", "direction"),
    [
        (None, "—", ""),
        (1.5, "+150%", "up"),
        (-0.25, "-25%", "down"),
        (0.0, "0%", ""),
        (-0.0004, "0%", ""),  # rounds to nothing: neither "-0%" nor red
        (0.004, "0%", ""),
        (0.006, "+1%", "up"),
        (-0.006, "-1%", "down"),
    ],
)
def test_a_change_shows_as_a_whole_signed_percentage_with_its_direction(change, text, direction):
    assert signed_percent(change) == text
    assert trend(change) == direction
