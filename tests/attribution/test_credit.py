"""Credit math: how each model splits a conversion across its journey, by hand-computed examples.

Touches are (link id, click time), oldest first; weights are six-place decimals summing to exactly 1,
and revenue is split in whole cents summing to exactly the net amount.
"""

import math
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from attribution.credit import MODELS, link_weights, split_revenue, touch_weights

CONVERTED = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
HALF_LIFE = 7.0


def _ago(days: float) -> datetime:
    return CONVERTED - timedelta(days=days)


def _weights(model: str, touches: list[tuple[int, float]], half_life: float = HALF_LIFE) -> dict[int, Decimal]:
    """link id -> weight, for touches given as (link id, age in days)."""
    return dict(link_weights(model, [(link_id, _ago(age)) for link_id, age in touches], CONVERTED, half_life))


THREE_LINKS = [(1, 14), (2, 7), (3, 0)]
FOUR_LINKS = [(1, 21), (2, 14), (3, 7), (4, 0)]


# --- single-touch models --------------------------------------------------------------------


def test_first_touch_gives_everything_to_the_oldest_touch():
    assert _weights("first_touch", THREE_LINKS) == {1: Decimal("1")}


def test_last_touch_gives_everything_to_the_newest_touch():
    assert _weights("last_touch", THREE_LINKS) == {3: Decimal("1")}


@pytest.mark.parametrize("model", MODELS)
def test_a_single_touch_gets_all_the_credit_under_every_model(model):
    assert _weights(model, [(9, 3)]) == {9: Decimal("1")}


@pytest.mark.parametrize("model", MODELS)
def test_no_touches_means_no_credit(model):
    assert _weights(model, []) == {}
    assert touch_weights(model, [], CONVERTED, HALF_LIFE) == []


def test_an_unknown_model_is_refused():
    with pytest.raises(ValueError):
        touch_weights("most_handsome", [_ago(1)], CONVERTED, HALF_LIFE)


# --- linear -----------------------------------------------------------------------------------


def test_linear_splits_three_touches_into_thirds_with_the_spare_millionth_on_the_first():
    weights = _weights("linear", THREE_LINKS)

    assert weights == {1: Decimal("0.333334"), 2: Decimal("0.333333"), 3: Decimal("0.333333")}
    assert sum(weights.values()) == Decimal(1)


def test_linear_exact_shares_are_thirds():
    assert touch_weights("linear", [_ago(14), _ago(7), _ago(0)], CONVERTED, HALF_LIFE) == [Fraction(1, 3)] * 3


# --- time decay -------------------------------------------------------------------------------


def test_time_decay_halves_the_weight_every_half_life():
    # Ages 14, 7 and 0 days with a half-life of 7: raw weights 0.25, 0.5 and 1, so 1/7, 2/7 and 4/7.
    exact = touch_weights("time_decay", [_ago(14), _ago(7), _ago(0)], CONVERTED, HALF_LIFE)
    assert [float(weight) for weight in exact] == pytest.approx([1 / 7, 2 / 7, 4 / 7], abs=1e-12)

    weights = _weights("time_decay", THREE_LINKS)
    assert weights == {1: Decimal("0.142857"), 2: Decimal("0.285714"), 3: Decimal("0.571429")}
    assert sum(weights.values()) == Decimal(1)


def test_a_shorter_half_life_leans_harder_on_recent_touches():
    # Half-life 3.5: raw 2^-4, 2^-2, 1 = 1/16, 1/4, 1, so 1/21, 4/21 and 16/21.
    weights = _weights("time_decay", THREE_LINKS, half_life=3.5)

    assert weights == {1: Decimal("0.047619"), 2: Decimal("0.190476"), 3: Decimal("0.761905")}
    assert weights != _weights("time_decay", THREE_LINKS, half_life=7)


def test_time_decay_uses_powers_of_two_not_of_e():
    # Ages 7 and 0 with half-life 7: 2^-1 against 1 gives 1/3 and 2/3; exp(-1) would give 0.269 / 0.731.
    exact = touch_weights("time_decay", [_ago(7), _ago(0)], CONVERTED, HALF_LIFE)
    assert float(exact[0] / exact[1]) == pytest.approx(0.5, abs=1e-12)
    assert float(exact[0]) != pytest.approx(math.exp(-1) / (1 + math.exp(-1)), abs=1e-3)

    assert _weights("time_decay", [(1, 7), (2, 0)]) == {1: Decimal("0.333333"), 2: Decimal("0.666667")}


def test_time_decay_counts_fractions_of_a_day():
    # Half a half-life older is worth 2^-0.5 of the newer touch.
    exact = touch_weights("time_decay", [_ago(3.5), _ago(0)], CONVERTED, HALF_LIFE)
    assert float(exact[0] / exact[1]) == pytest.approx(2**-0.5, abs=1e-12)


def test_time_decay_still_credits_touches_far_older_than_a_tiny_half_life():
    # Settings allow a half-life down to 0.01 days and a window up to 90: 2^(-60 / 0.05) underflows a
    # float, yet the touches are in the window and the conversion must still be credited, newest first.
    weights = _weights("time_decay", [(1, 60), (2, 59)], half_life=0.05)

    assert sum(weights.values()) == Decimal(1)
    assert weights[2] >= Decimal("0.999999")


def test_time_decay_of_touches_at_the_same_moment_is_an_even_split():
    assert _weights("time_decay", [(1, 5), (2, 5)]) == {1: Decimal("0.5"), 2: Decimal("0.5")}


# --- position based ---------------------------------------------------------------------------


def test_position_based_gives_40_percent_to_each_end_and_shares_20_across_the_middle():
    weights = _weights("position_based", FOUR_LINKS)

    assert weights == {1: Decimal("0.4"), 2: Decimal("0.1"), 3: Decimal("0.1"), 4: Decimal("0.4")}


def test_position_based_with_three_touches_gives_the_middle_20_percent():
    assert _weights("position_based", THREE_LINKS) == {1: Decimal("0.4"), 2: Decimal("0.2"), 3: Decimal("0.4")}


def test_position_based_with_two_touches_is_50_50():
    assert _weights("position_based", [(1, 3), (2, 1)]) == {1: Decimal("0.5"), 2: Decimal("0.5")}


def test_position_based_with_one_touch_is_100_percent():
    assert _weights("position_based", [(1, 3)]) == {1: Decimal("1")}


def test_position_based_with_five_touches_splits_the_middle_in_thirds():
    weights = _weights("position_based", [(1, 4), (2, 3), (3, 2), (4, 1), (5, 0)])

    # 0.2 / 3 = 0.0666666…: the largest remainder goes to the first middle touch.
    assert weights == {
        1: Decimal("0.4"), 2: Decimal("0.066667"), 3: Decimal("0.066667"), 4: Decimal("0.066666"), 5: Decimal("0.4"),
    }
    assert sum(weights.values()) == Decimal(1)


# --- several touches on one link -------------------------------------------------------------


def test_touches_on_the_same_link_add_up():
    journey = [(1, 3), (2, 2), (1, 0)]

    assert _weights("linear", journey) == {1: Decimal("0.666667"), 2: Decimal("0.333333")}
    assert _weights("first_touch", journey) == {1: Decimal("1")}
    assert _weights("last_touch", journey) == {1: Decimal("1")}
    assert _weights("position_based", [(1, 3), (2, 2), (2, 1), (1, 0)]) == {1: Decimal("0.8"), 2: Decimal("0.2")}


def test_links_come_in_order_of_their_first_touch():
    assert list(_weights("linear", [(7, 3), (2, 2), (7, 1), (5, 0)])) == [7, 2, 5]


def test_a_link_that_earns_nothing_under_a_model_gets_no_credit_row():
    assert 2 not in _weights("first_touch", [(1, 3), (2, 0)])
    assert 1 not in _weights("last_touch", [(1, 3), (2, 0)])


# --- revenue ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("net", "expected"),
    [
        ("100.00", ["33.34", "33.33", "33.33"]),
        ("0.01", ["0.01", "0.00", "0.00"]),
        ("49.99", ["16.67", "16.66", "16.66"]),
        ("0.02", ["0.01", "0.01", "0.00"]),
        ("0.00", ["0.00", "0.00", "0.00"]),
    ],
)
def test_revenue_split_in_thirds_sums_to_the_net_to_the_cent(net, expected):
    revenues = split_revenue(Decimal(net), [Decimal("0.333334"), Decimal("0.333333"), Decimal("0.333333")])

    assert revenues == [Decimal(value) for value in expected]
    assert sum(revenues) == Decimal(net)


def test_revenue_follows_uneven_weights():
    revenues = split_revenue(Decimal("49.99"), [Decimal("0.142857"), Decimal("0.285714"), Decimal("0.571429")])

    # Exact shares 7.1414…, 14.2828…, 28.5657…: floors 7.14 + 14.28 + 28.56 = 49.98, the spare cent to the largest remainder.
    assert revenues == [Decimal("7.14"), Decimal("14.28"), Decimal("28.57")]
    assert sum(revenues) == Decimal("49.99")


def test_revenue_split_by_position_based_weights():
    revenues = split_revenue(Decimal("10.00"), [Decimal("0.4"), Decimal("0.1"), Decimal("0.1"), Decimal("0.4")])

    assert revenues == [Decimal("4.00"), Decimal("1.00"), Decimal("1.00"), Decimal("4.00")]


def test_a_single_credit_takes_the_whole_net():
    assert split_revenue(Decimal("1234.56"), [Decimal("1")]) == [Decimal("1234.56")]


def test_no_credits_split_nothing():
    assert split_revenue(Decimal("10.00"), []) == []


# --- properties -------------------------------------------------------------------------------

_touches = st.lists(
    st.tuples(st.integers(min_value=1, max_value=6), st.floats(min_value=0, max_value=90, allow_nan=False)),
    min_size=1,
    max_size=25,
)
_amounts = st.decimals(min_value=Decimal("0.00"), max_value=Decimal("1000000.00"), places=2, allow_nan=False, allow_infinity=False)
_half_lives = st.sampled_from([0.01, 0.05, 0.5, 1, 3.5, 7, 14, 30, 90])  # settings allow 0.01 and up


@settings(max_examples=300, deadline=None)
@given(touches=_touches, amount=_amounts, half_life=_half_lives)
def test_every_model_gives_weights_summing_to_one_and_revenue_summing_to_the_amount(touches, amount, half_life):
    touches = sorted(touches, key=lambda touch: -touch[1])  # oldest first
    for model in MODELS:
        weights = _weights(model, touches, half_life=half_life)

        assert sum(weights.values()) == Decimal(1), model
        assert set(weights) <= {link_id for link_id, _ in touches}
        assert all(Decimal(0) < weight <= Decimal(1) for weight in weights.values())
        assert all(weight == weight.quantize(Decimal("0.000001")) for weight in weights.values())

        revenues = split_revenue(amount, list(weights.values()))
        assert sum(revenues) == amount, model
        for weight, revenue in zip(weights.values(), revenues, strict=True):
            assert revenue >= 0
            assert revenue == revenue.quantize(Decimal("0.01"))
            assert abs(revenue - amount * weight) < Decimal("0.01"), model


def _reference_weights(model, touches, half_life):
    """The exact-fraction definition: per-link sums of touch_weights(), apportioned by largest remainder."""
    exact = touch_weights(model, [_ago(age) for _, age in touches], CONVERTED, half_life)
    per_link: dict[int, Fraction] = {}
    for (link_id, _), weight in zip(touches, exact, strict=True):
        per_link[link_id] = per_link.get(link_id, Fraction(0)) + weight
    per_link = {link_id: weight for link_id, weight in per_link.items() if weight > 0}
    total_units = 10**6
    scaled = [weight / sum(per_link.values()) * total_units for weight in per_link.values()]
    units = [math.floor(value) for value in scaled]
    order = sorted(range(len(units)), key=lambda i: (scaled[i] - units[i], -i), reverse=True)
    for i in order[: total_units - sum(units)]:
        units[i] += 1
    return {link_id: Decimal(unit) / total_units for link_id, unit in zip(per_link, units, strict=True) if unit}


@settings(max_examples=300, deadline=None)
@given(touches=_touches, amount=_amounts)
def test_the_integer_shortcuts_give_the_exact_fraction_answer(touches, amount):
    touches = sorted(touches, key=lambda touch: -touch[1])
    for model in ("first_touch", "last_touch", "linear", "position_based"):
        weights = _weights(model, touches)
        assert weights == _reference_weights(model, touches, HALF_LIFE), model
        assert list(weights) == list(_reference_weights(model, touches, HALF_LIFE)), model  # order of first touch
        exact = [Fraction(weight) * int(amount * 100) for weight in weights.values()]
        cents = [int(value) for value in exact]
        for i in sorted(range(len(cents)), key=lambda i: (exact[i] - cents[i], -i), reverse=True)[: int(amount * 100) - sum(cents)]:
            cents[i] += 1
        assert split_revenue(amount, list(weights.values())) == [Decimal(c) / 100 for c in cents], model
