from decimal import Decimal

from django import template

register = template.Library()


@register.filter
def money(value) -> str:
    if value is None or value == "":
        return "—"
    return f"{Decimal(value):,.2f}"


@register.filter
def kpi(value, kind: str) -> str:
    if value is None:
        return "—"
    if kind == "money":
        return money(value)
    if kind == "percent":
        return f"{float(value) * 100:.1f}%"
    if kind == "score":
        return f"{float(value):.0f}"
    return f"{int(value):,}"


def _whole_percent(change) -> int:
    return round(float(change) * 100)


@register.filter
def signed_percent(value) -> str:
    """A change as a whole percentage with its sign; one that rounds to nothing is "0%", not "-0%"."""
    if value is None:
        return "—"
    percent = _whole_percent(value)
    return f"{percent:+d}%" if percent else "0%"


@register.filter
def trend(value) -> str:
    """"up" or "down" for a change that shows as at least one percent either way, else ""."""
    percent = 0 if value is None else _whole_percent(value)
    return "up" if percent > 0 else "down" if percent < 0 else ""
