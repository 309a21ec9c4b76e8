"""How the results pages write a number with its interval: the value to the interval's precision."""

import pytest

from icml17.pages import _fmt


@pytest.mark.parametrize(
    "value, ci, expected",
    [
        (-12.4213, 2.43, "-12.4 ± 2.4"),  # interval 2.4: tenths
        (212.61, 58.2, "213 ± 58"),  # interval 58: units
        (-0.62771, 0.0974, "-0.628 ± 0.097"),  # interval 0.097: thousandths
        (1.5, 0.99, "1.50 ± 0.99"),
    ],
)
def test_a_value_is_written_to_its_intervals_second_significant_digit(value, ci, expected):
    assert _fmt(value, ci) == expected


def test_accuracies_stay_percentages_and_values_without_interval_keep_four_digits():
    assert _fmt(0.97123, 0.0061, "accuracy") == "97.1% ± 0.6"
    assert _fmt(-12.4213) == "-12.42"
    assert _fmt(None) == "-"
