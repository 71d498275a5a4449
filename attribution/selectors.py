from datetime import datetime
from decimal import Decimal

from django.db.models import Count, Q, QuerySet, Sum

from allumi.accounts.models import Creator
from attribution.models import Click, Credit
from links.models import Link

_HUMAN = Q(is_bot=False)


def link_click_counts(*, link_ids: list[int]) -> dict[int, dict[str, int]]:
    """Clicks and unique visitors (humans only) per link, for a page of links."""
    rows = (
        Click.objects.filter(link_id__in=link_ids, is_bot=False)
        .values("link_id")
        .annotate(clicks=Count("id"), unique_visitors=Count("visitor_id", distinct=True))
    )
    return {row["link_id"]: {"clicks": row["clicks"], "unique_visitors": row["unique_visitors"]} for row in rows}


def link_traffic(*, link: Link, start: datetime | None = None, end: datetime | None = None) -> dict[str, int]:
    clicks = Click.objects.filter(link=link)
    if start is not None:
        clicks = clicks.filter(occurred_at__gte=start)
    if end is not None:
        clicks = clicks.filter(occurred_at__lt=end)
    return clicks.aggregate(
        clicks=Count("id", filter=_HUMAN),
        unique_visitors=Count("visitor_id", filter=_HUMAN, distinct=True),
        bot_clicks=Count("id", filter=~_HUMAN),
    )


def link_recent_clicks(*, link: Link, limit: int = 25) -> QuerySet[Click]:
    return Click.objects.filter(link=link).order_by("-occurred_at", "-id")[:limit]


def creator_click_total_since(*, creator: Creator, since: datetime) -> int:
    """Human and bot clicks alike: plan limits count every request the redirect served."""
    return Click.objects.filter(creator=creator, occurred_at__gte=since).count()


def link_stats(*, link: Link, model: str, start: datetime | None = None, end: datetime | None = None) -> dict:
    """Traffic of a link in [start, end), and the conversions and net revenue it earned under `model`."""
    credits = Credit.objects.filter(link=link, model=model)
    if start is not None:
        credits = credits.filter(conversion__occurred_at__gte=start)
    if end is not None:
        credits = credits.filter(conversion__occurred_at__lt=end)
    earned = credits.aggregate(conversions=Count("conversion_id", distinct=True), revenue=Sum("revenue"))
    return {
        **link_traffic(link=link, start=start, end=end),
        "conversions": earned["conversions"],
        "revenue": earned["revenue"] or Decimal("0.00"),
    }
