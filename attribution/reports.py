"""Selectors for the dashboard: every figure comes from the rollups plus a live tail of the rows
the rollups have not read yet, so a page costs the same at ten thousand clicks as at ten million.
"""

from collections import defaultdict
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal

from django.db.models import Avg, Count, Q, Sum
from django.db.models.functions import TruncDate, TruncHour
from django.utils import timezone

from allumi.accounts.models import Creator
from attribution.models import (
    Click,
    Conversion,
    Credit,
    CreditLedger,
    DailyClickDimension,
    DailyCreatorDimension,
    DailyLinkClicks,
    DailyLinkCredit,
    HourlyLinkClicks,
    RollupCursor,
)
from links.models import Link

CENT = Decimal("0.01")
PRESETS = {"24h": timedelta(hours=24), "7d": timedelta(days=7), "30d": timedelta(days=30), "90d": timedelta(days=90)}
DIMENSIONS = [choice for choice in DailyClickDimension.Dimension]
_TAIL_DIMENSIONS = {
    "referrer": "referrer_domain", "country": "country", "device": "device_type", "browser": "browser", "os": "os",
    "utm_source": "utm_source", "utm_medium": "utm_medium", "utm_campaign": "utm_campaign",
}
_EMPTY_AS = {"referrer": "direct", "country": "unknown", "device": "other", "browser": "unknown", "os": "unknown"}


@dataclass(frozen=True)
class Period:
    start: datetime
    end: datetime

    @property
    def previous(self) -> "Period":
        return Period(self.start - (self.end - self.start), self.start)

    @property
    def hourly(self) -> bool:
        return self.end - self.start <= timedelta(days=2)

    @property
    def whole_days(self) -> bool:
        midnight = {"hour": 0, "minute": 0, "second": 0, "microsecond": 0}
        return self.start == self.start.replace(**midnight) and self.end == self.end.replace(**midnight)

    @property
    def day_start(self) -> datetime:
        return self.start.replace(hour=0, minute=0, second=0, microsecond=0)

    @property
    def day_end(self) -> datetime:
        return datetime.combine(self.days[-1] + timedelta(days=1), datetime.min.time(), tzinfo=self.start.tzinfo)

    @property
    def days(self) -> list[date]:
        first, last = self.start.date(), (self.end - timedelta(microseconds=1)).date()
        return [first + timedelta(days=n) for n in range((last - first).days + 1)]


def period_for(preset: str = "30d", start: date | None = None, end: date | None = None) -> Period:
    if preset == "custom" and start and end:
        begin = timezone.make_aware(datetime.combine(min(start, end), datetime.min.time()), timezone.get_current_timezone())
        finish = timezone.make_aware(datetime.combine(max(start, end) + timedelta(days=1), datetime.min.time()), timezone.get_current_timezone())
        return Period(begin, finish)
    span = PRESETS.get(preset, PRESETS["30d"])
    if span < timedelta(days=2):
        # Hour-aligned: the last 24 whole hours and the current one.
        end = timezone.now().replace(minute=0, second=0, microsecond=0) + timedelta(hours=1)
    else:
        # Day-aligned, ending with today: whole days, which the daily rollups answer exactly.
        end = timezone.now().replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    return Period(end - span, end)


def _cursor(name: str) -> int:
    return RollupCursor.objects.filter(name=name).values_list("last_id", flat=True).first() or 0


def _tail_clicks(creator: Creator, period: Period, link: Link | None):
    clicks = Click.objects.filter(creator=creator, id__gt=_cursor("clicks"), occurred_at__gte=period.start, occurred_at__lt=period.end)
    return clicks.filter(link=link) if link else clicks


def _tail_ledger(creator: Creator, period: Period, model: str, link: Link | None):
    rows = CreditLedger.objects.filter(
        creator=creator, model=model, id__gt=_cursor("credits"), day__gte=period.start.date(), day__lte=period.days[-1]
    )
    return rows.filter(link=link) if link else rows


def _rolled_clicks(creator: Creator, period: Period, link: Link | None):
    """The click rollup rows of the period: per day when it is whole days (and longer than the
    hourly charts), per hour otherwise."""
    if period.whole_days and not period.hourly:
        rows = DailyLinkClicks.objects.filter(creator=creator, day__gte=period.start.date(), day__lte=period.days[-1])
    else:
        rows = HourlyLinkClicks.objects.filter(creator=creator, hour__gte=period.start, hour__lt=period.end)
    return rows.filter(link=link) if link else rows


def traffic(*, creator: Creator, period: Period, link: Link | None = None) -> dict[str, int]:
    rolled = _rolled_clicks(creator, period, link).aggregate(clicks=Sum("clicks"), unique=Sum("unique_clicks"), bots=Sum("bot_clicks"))
    tail = _tail_clicks(creator, period, link).aggregate(
        clicks=Count("id", filter=Q(is_bot=False)),
        unique=Count("id", filter=Q(is_bot=False, is_unique=True)),
        bots=Count("id", filter=Q(is_bot=True)),
    )
    return {key: (rolled[key] or 0) + (tail[key] or 0) for key in ("clicks", "unique", "bots")}


def _cents(value) -> Decimal:
    # SQLite sums decimals as floats; money leaves here in exact cents on every database.
    return Decimal(value or 0).quantize(CENT)


def _exact_credits(creator: Creator, period: Period, model: str, link: Link | None):
    """Credits of conversions inside a period that is not whole days (24 h): read directly."""
    credits = Credit.objects.filter(
        conversion__creator=creator, model=model, conversion__occurred_at__gte=period.start, conversion__occurred_at__lt=period.end
    )
    return credits.filter(link=link) if link else credits


def earnings(*, creator: Creator, period: Period, model: str, link: Link | None = None) -> dict:
    if not period.whole_days:
        exact = _exact_credits(creator, period, model, link).aggregate(conversions=Count("conversion_id"), revenue=Sum("revenue"))
        return {"conversions": exact["conversions"] or 0, "revenue": _cents(exact["revenue"])}
    days = DailyLinkCredit.objects.filter(creator=creator, model=model, day__gte=period.start.date(), day__lte=period.days[-1])
    if link:
        days = days.filter(link=link)
    rolled = days.aggregate(conversions=Sum("conversions"), revenue=Sum("revenue"))
    tail = _tail_ledger(creator, period, model, link).aggregate(conversions=Sum("conversions"), revenue=Sum("revenue"))
    return {
        "conversions": (rolled["conversions"] or 0) + (tail["conversions"] or 0),
        "revenue": _cents(rolled["revenue"]) + _cents(tail["revenue"]),
    }


def conversion_outcomes(*, creator: Creator, period: Period) -> dict:
    counts = Conversion.objects.filter(creator=creator, occurred_at__gte=period.start, occurred_at__lt=period.end).aggregate(
        total=Count("id"),
        attributed=Count("id", filter=Q(status=Conversion.Status.ATTRIBUTED)),
        unattributed=Count("id", filter=Q(status=Conversion.Status.UNATTRIBUTED)),
        confidence=Avg("confidence", filter=Q(status=Conversion.Status.ATTRIBUTED)),
    )
    decided = counts["attributed"] + counts["unattributed"]
    counts["attribution_rate"] = counts["attributed"] / decided if decided else None
    return counts


def _change(current, previous):
    if current is None or previous in (None, 0):
        return None
    return (float(current) - float(previous)) / float(previous)


def kpis(*, creator: Creator, period: Period, model: str) -> list[dict]:
    """The overview's figures for the period and their change against the previous period."""

    def figures(p: Period) -> dict:
        clicks = traffic(creator=creator, period=p)
        outcomes = conversion_outcomes(creator=creator, period=p)
        money = earnings(creator=creator, period=p, model=model)
        return {
            "clicks": clicks["clicks"],
            "unique": clicks["unique"],
            "bots": clicks["bots"],
            "conversions": outcomes["total"],
            "revenue": money["revenue"],
            "conversion_rate": outcomes["total"] / clicks["clicks"] if clicks["clicks"] else None,
            "attribution_rate": outcomes["attribution_rate"],
            "confidence": outcomes["confidence"],
        }

    now, before = figures(period), figures(period.previous)
    labels = [
        ("clicks", "Clicks", "number"), ("unique", "Unique visitors", "number"), ("conversions", "Conversions", "number"),
        ("revenue", "Revenue", "money"), ("conversion_rate", "Conversion rate", "percent"),
        ("attribution_rate", "Attribution rate", "percent"), ("confidence", "Average confidence", "score"),
    ]
    rows = [
        {"key": key, "label": label, "kind": kind, "value": now[key], "previous": before[key], "change": _change(now[key], before[key])}
        for key, label, kind in labels
    ]
    return rows + [{"key": "bots", "label": "Bot and preview requests (not counted)", "kind": "number", "value": now["bots"], "previous": before["bots"], "change": None}]


def series(*, creator: Creator, period: Period, model: str, link: Link | None = None) -> list[dict]:
    """Clicks and revenue per hour (periods of two days or less) or per day."""
    rolled = _rolled_clicks(creator, period, link)
    tail = _tail_clicks(creator, period, link).filter(is_bot=False)
    clicks: dict = defaultdict(int)
    if period.hourly:
        buckets = [period.start + timedelta(hours=n) for n in range(int((period.end - period.start).total_seconds() // 3600))]
        for hour, count in rolled.values_list("hour").annotate(n=Sum("clicks")):
            clicks[hour] += count
        for hour, count in tail.annotate(h=TruncHour("occurred_at")).values_list("h").annotate(n=Count("id")):
            clicks[hour] += count
    else:
        buckets = period.days
        by_day = rolled.values_list("day") if period.whole_days else rolled.annotate(d=TruncDate("hour")).values_list("d")
        for day, count in by_day.annotate(n=Sum("clicks")):
            clicks[day] += count
        for day, count in tail.annotate(d=TruncDate("occurred_at")).values_list("d").annotate(n=Count("id")):
            clicks[day] += count
    revenue: dict = defaultdict(Decimal)
    credit_days = DailyLinkCredit.objects.filter(creator=creator, model=model, day__gte=period.start.date(), day__lte=period.days[-1])
    if link:
        credit_days = credit_days.filter(link=link)
    for day, amount in credit_days.values_list("day").annotate(r=Sum("revenue")):
        revenue[day] += _cents(amount)
    for day, amount in _tail_ledger(creator, period, model, link).values_list("day").annotate(r=Sum("revenue")):
        revenue[day] += _cents(amount)
    return [
        {"at": bucket, "clicks": clicks.get(bucket, 0), "revenue": revenue.get(bucket.date() if isinstance(bucket, datetime) else bucket, Decimal(0)) if not period.hourly else None}
        for bucket in buckets
    ]


def top_links(*, creator: Creator, period: Period, model: str, limit: int = 10) -> list[dict]:
    earned: dict[int, dict] = defaultdict(lambda: {"revenue": Decimal(0), "conversions": 0})
    if period.whole_days:
        rows = DailyLinkCredit.objects.filter(creator=creator, model=model, day__gte=period.start.date(), day__lte=period.days[-1])
        sources = [rows.values_list("link_id").annotate(r=Sum("revenue"), c=Sum("conversions")),
                   _tail_ledger(creator, period, model, None).values_list("link_id").annotate(r=Sum("revenue"), c=Sum("conversions"))]
    else:
        sources = [_exact_credits(creator, period, model, None).values_list("link_id").annotate(r=Sum("revenue"), c=Count("conversion_id"))]
    for source in sources:
        for link_id, revenue, conversions in source:
            earned[link_id]["revenue"] += _cents(revenue)
            earned[link_id]["conversions"] += conversions or 0
    clicks: dict[int, int] = defaultdict(int)
    for link_id, count in _rolled_clicks(creator, period, None).values_list("link_id").annotate(n=Sum("clicks")):
        clicks[link_id] += count
    for link_id, count in _tail_clicks(creator, period, None).filter(is_bot=False).values_list("link_id").annotate(n=Count("id")):
        clicks[link_id] += count
    candidates = {link_id for link_id in set(earned) | set(clicks) if clicks[link_id] or earned[link_id]["revenue"] or earned[link_id]["conversions"]}
    ranked = sorted(candidates, key=lambda link_id: (earned[link_id]["revenue"], clicks[link_id]), reverse=True)[:limit]
    links = Link.objects.in_bulk(ranked)
    return [
        {"link": links[link_id], "revenue": earned[link_id]["revenue"], "conversions": earned[link_id]["conversions"], "clicks": clicks[link_id]}
        for link_id in ranked
        if link_id in links
    ]


def breakdowns(*, creator: Creator, period: Period, link: Link | None = None, limit: int = 8) -> dict[str, list[tuple[str, int]]]:
    """Human clicks by referrer domain, country, device, browser, OS and UTM fields (whole days)."""
    rollup = DailyClickDimension.objects.filter(link=link) if link else DailyCreatorDimension.objects
    rows = rollup.filter(creator=creator, day__gte=period.start.date(), day__lte=period.days[-1])
    counts: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for dimension, value, clicks in rows.values_list("dimension", "value").annotate(n=Sum("clicks")):
        counts[dimension][value] += clicks
    whole_days = Period(period.day_start, period.day_end)
    tail = _tail_clicks(creator, whole_days, link).filter(is_bot=False)
    for dimension, column in _TAIL_DIMENSIONS.items():
        if dimension.startswith("utm_"):
            rows = tail.values_list(column, f"link__{column}").annotate(n=Count("id"))
            pairs = ((own or the_links, clicks) for own, the_links, clicks in rows)
        else:
            pairs = tail.values_list(column).annotate(n=Count("id"))
        for value, clicks in pairs:
            value = value or _EMPTY_AS.get(dimension, "")
            if value:
                counts[dimension][value] += clicks
    return {
        dimension.value: sorted(counts[dimension.value].items(), key=lambda item: item[1], reverse=True)[:limit]
        for dimension in DIMENSIONS
    }


def tail_ledger_all(creator: Creator, period: Period):
    """Credit changes of every model not yet rolled up, per link and model."""
    return (
        CreditLedger.objects.filter(creator=creator, id__gt=_cursor("credits"), day__gte=period.start.date(), day__lte=period.days[-1])
        .values("link_id", "model")
        .annotate(r=Sum("revenue"))
    )
