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


@register.filter
def signed_percent(value) -> str:
    return "—" if value is None else f"{float(value) * 100:+.0f}%"
