"""Multi-touch credit: how a conversion's value is split across the links of its journey.

Pure functions over (link id, click time) touches. Weights are exact decimals with six places
that sum to exactly 1; revenue is split in cents so that per-link revenue sums to the net amount.
"""

import math
from collections import OrderedDict
from datetime import datetime
from decimal import ROUND_FLOOR, Decimal
from fractions import Fraction

from attribution.models import AttributionModel

WEIGHT_PLACES = 6
_WEIGHT_UNIT = 10**WEIGHT_PLACES
CENT = Decimal("0.01")
MODELS = [choice.value for choice in AttributionModel]


def touch_weights(model: str, times: list[datetime], converted_at: datetime, half_life_days: float) -> list[Fraction]:
    """The weight of each touch (ordered oldest first) under `model`, summing to 1."""
    n = len(times)
    if n == 0:
        return []
    if model == AttributionModel.FIRST_TOUCH:
        return [Fraction(1)] + [Fraction(0)] * (n - 1)
    if model == AttributionModel.LAST_TOUCH:
        return [Fraction(0)] * (n - 1) + [Fraction(1)]
    if model == AttributionModel.LINEAR:
        return [Fraction(1, n)] * n
    if model == AttributionModel.POSITION_BASED:
        if n == 1:
            return [Fraction(1)]
        if n == 2:
            return [Fraction(1, 2), Fraction(1, 2)]
        middle = Fraction(1, 5) / (n - 2)
        return [Fraction(2, 5)] + [middle] * (n - 2) + [Fraction(2, 5)]
    if model == AttributionModel.TIME_DECAY:
        # weight = 2^(-age_days / half_life): a touch half_life days older counts half as much.
        # Measured from the youngest touch (a common factor that cancels out when normalising),
        # so old touches under a tiny half-life underflow to 0 instead of dividing 0 by 0.
        ages = [max((converted_at - t).total_seconds(), 0) / 86400 for t in times]
        youngest = min(ages)
        raw = [2.0 ** (-(age - youngest) / half_life_days) for age in ages]
        total = sum(raw)
        return [Fraction(value / total) for value in raw]
    raise ValueError(f"unknown attribution model {model!r}")


def _apportion(numerators: list[int], total_units: int) -> list[int]:
    """Integer units for shares numerator / sum(numerators), summing to total_units, each within one
    unit of its exact value (largest remainder; ties to the earlier share). Integers only: this runs
    for every conversion of a recompute."""
    denominator = sum(numerators)
    units, remainders = [], []
    for numerator in numerators:
        unit, remainder = divmod(numerator * total_units, denominator)
        units.append(unit)
        remainders.append(remainder)
    short = total_units - sum(units)
    if short:
        by_remainder = sorted(range(len(numerators)), key=lambda i: (remainders[i], -i), reverse=True)
        for i in by_remainder[:short]:
            units[i] += 1
    return units


def _largest_remainder(shares: list[Fraction] | list[Decimal], total_units: int) -> list[int]:
    """_apportion() for exact fractions or decimals: over their common denominator they are integers."""
    ratios = [share.as_integer_ratio() for share in shares]
    denominator = math.lcm(*(d for _, d in ratios))
    return _apportion([n * (denominator // d) for n, d in ratios], total_units)


def _touch_numerators(model: str, n: int) -> list[int] | None:
    """Touch weights as integers proportional to them, for the models whose weights are rational
    with a small common denominator (all but time decay)."""
    if model == AttributionModel.FIRST_TOUCH:
        return [1] + [0] * (n - 1)
    if model == AttributionModel.LAST_TOUCH:
        return [0] * (n - 1) + [1]
    if model == AttributionModel.LINEAR:
        return [1] * n
    if model == AttributionModel.POSITION_BASED:
        if n <= 2:
            return [1] * n
        return [2 * (n - 2)] + [1] * (n - 2) + [2 * (n - 2)]  # 40% / 20% shared / 40%
    return None


def link_weights(model: str, touches: list[tuple[int, datetime]], converted_at: datetime, half_life_days: float) -> "OrderedDict[int, Decimal]":
    """Per-link weights (six decimal places, summing to exactly 1), in order of first touch."""
    if not touches:
        return OrderedDict()
    if all(link_id == touches[0][0] for link_id, _ in touches):
        return OrderedDict([(touches[0][0], Decimal(1))])  # one link takes it all under every model
    numerators = _touch_numerators(model, len(touches))
    if numerators is not None:
        per_link_units: OrderedDict[int, int] = OrderedDict()
        for (link_id, _), numerator in zip(touches, numerators, strict=True):
            per_link_units[link_id] = per_link_units.get(link_id, 0) + numerator
        credited = [(link_id, numerator) for link_id, numerator in per_link_units.items() if numerator > 0]
        units = _apportion([numerator for _, numerator in credited], _WEIGHT_UNIT)
        return OrderedDict((link_id, Decimal(unit) / _WEIGHT_UNIT) for (link_id, _), unit in zip(credited, units, strict=True) if unit > 0)
    weights = touch_weights(model, [when for _, when in touches], converted_at, half_life_days)
    per_link: OrderedDict[int, Fraction] = OrderedDict()
    for (link_id, _), weight in zip(touches, weights, strict=True):
        per_link[link_id] = per_link.get(link_id, Fraction(0)) + weight
    per_link = OrderedDict((link_id, weight) for link_id, weight in per_link.items() if weight > 0)
    total = sum(per_link.values())
    units = _largest_remainder([weight / total for weight in per_link.values()], _WEIGHT_UNIT)
    return OrderedDict(
        (link_id, Decimal(unit) / _WEIGHT_UNIT) for link_id, unit in zip(per_link, units, strict=True) if unit > 0
    )


def split_revenue(net: Decimal, weights: list[Decimal]) -> list[Decimal]:
    """`net` split by `weights` in whole cents, summing to exactly `net`."""
    cents = int((net / CENT).to_integral_value(rounding=ROUND_FLOOR))
    if not weights:
        return []
    units = _largest_remainder(weights, cents)
    return [Decimal(unit) * CENT for unit in units]
