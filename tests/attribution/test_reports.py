"""Reports: the dashboard's figures from rollups plus the live tail of rows not rolled up yet.

Every figure must be the same whether the rollups have run, run halfway or not at all.
"""

from collections import Counter
from datetime import date, datetime, timedelta
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import timezone

from attribution import reports
from attribution.conversions import conversion_record, conversion_refund
from attribution.models import Click, Conversion, HourlyLinkClicks, RollupCursor
from attribution.rollups import rollups_run
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from links.services import link_create

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
HOME_IP = "81.2.69.142"  # GB
ANN_HOME_IP = "86.0.0.1"  # GB, another /24
_factory = RequestFactory()


def _now():
    return timezone.now().replace(microsecond=0)


def _click(link, *, at, visitor_id=None, ua=PHONE, method="get", referrer="", query=None, ip=HOME_IP) -> Click:
    headers = {"HTTP_USER_AGENT": ua, "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9", "REMOTE_ADDR": ip}
    if referrer:
        headers["HTTP_REFERER"] = referrer
    request = getattr(_factory, method)(f"/l/{link.short_id}", query or {}, **headers)
    click_id = new_click_id()
    clicks_store(
        payloads=[
            click_payload(
                request=request, link_id=link.id, creator_id=link.creator_id, click_id=click_id,
                visitor_id=visitor_id or new_visitor_id(), occurred_at=at.timestamp(),
            )
        ]
    )
    return Click.objects.get(public_id=click_id)


@pytest.fixture
def convert(django_capture_on_commit_callbacks):
    def _convert(creator, **fields) -> Conversion:
        fields.setdefault("event", "purchase")
        fields.setdefault("source", Conversion.Source.TRACK)
        with django_capture_on_commit_callbacks(execute=True):
            conversion, _ = conversion_record(creator=creator, **fields)
        conversion.refresh_from_db()
        return conversion

    return _convert


def _kpis(creator, period, model="last_touch") -> dict:
    return {row["key"]: row for row in reports.kpis(creator=creator, period=period, model=model)}


# --- periods --------------------------------------------------------------------------------


@pytest.mark.parametrize(("preset", "length"), [("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("30d", timedelta(days=30)), ("90d", timedelta(days=90))])
def test_a_preset_period_ends_at_the_next_full_hour_or_day_and_spans_its_length(preset, length):
    now = timezone.now()

    period = reports.period_for(preset)

    assert period.end - period.start == length
    assert (period.end.minute, period.end.second, period.end.microsecond) == (0, 0, 0)
    if preset == "24h":
        assert timedelta(0) < period.end - now <= timedelta(hours=1)
    else:
        # Whole days ending with today, which the daily rollups answer exactly.
        assert period.end.hour == 0 and timedelta(0) < period.end - now <= timedelta(days=1)
        assert period.whole_days
    assert period.previous == reports.Period(period.start - length, period.start)
    assert period.hourly is (preset == "24h")


def test_an_unknown_preset_or_a_custom_period_without_dates_is_the_last_30_days():
    assert reports.period_for("1y") == reports.period_for("30d")
    assert reports.period_for("custom", start=date(2026, 3, 1)) == reports.period_for("30d")


def test_a_custom_period_covers_whole_days_whichever_date_comes_first():
    period = reports.period_for("custom", start=date(2026, 3, 10), end=date(2026, 3, 1))

    assert period.start == datetime(2026, 3, 1, tzinfo=timezone.get_current_timezone())
    assert period.end == datetime(2026, 3, 11, tzinfo=timezone.get_current_timezone())
    assert period.days == [date(2026, 3, 1) + timedelta(days=n) for n in range(10)]
    assert not period.hourly
    assert reports.period_for("custom", start=date(2026, 3, 1), end=date(2026, 3, 1)).hourly


# --- a known data set -----------------------------------------------------------------------


@pytest.fixture
def known(alice, convert):
    """Alice's month: four human clicks by three visitors, two bot requests, three conversions (two
    attributed at 97 and 93, one not) worth 150 to her links; the month before, one click and one
    sale of 60. `known["roll_up"]()` is called between the clicks and the conversions when a test
    asks for a rollup midway."""
    now = _now()
    video = link_create(creator=alice, url="https://shop.example/launch", title="Launch video", utm_source="youtube", utm_campaign="launch")
    bio = link_create(creator=alice, url="https://shop.example/bio", title="Bio link")
    ann, ben, cat, dan = (new_visitor_id() for _ in range(4))
    # Ann at her home, the others at another (whose later clicks would make Ann's journey less sure).
    first = _click(video, at=now - timedelta(days=3), visitor_id=ann, referrer="https://www.youtube.com/watch?v=1", ip=ANN_HOME_IP)
    _click(video, at=now - timedelta(days=3) + timedelta(minutes=10), visitor_id=ann, referrer="https://www.youtube.com/watch?v=1", ip=ANN_HOME_IP)
    _click(video, at=now - timedelta(days=2), visitor_id=ben, ua=DESKTOP, query={"utm_source": "newsletter"})
    _click(bio, at=now - timedelta(days=2), visitor_id=cat, referrer="https://t.co/abc")
    _click(video, at=now - timedelta(days=2), ua=GOOGLEBOT)
    _click(bio, at=now - timedelta(days=2), method="head")
    _click(video, at=now - timedelta(days=40), visitor_id=dan)
    return {
        "now": now, "video": video, "bio": bio, "first_click": first,
        "visitors": {"ann": ann, "ben": ben, "cat": cat, "dan": dan},
    }


def _convert_known(known, alice, convert):
    now, visitors = known["now"], known["visitors"]
    convert(alice, click_id=known["first_click"].public_id, visitor_id=visitors["ann"], amount=Decimal("100.00"), occurred_at=now - timedelta(days=1))
    convert(alice, visitor_id=visitors["cat"], amount=Decimal("50.00"), occurred_at=now - timedelta(days=1))
    convert(alice, visitor_id=new_visitor_id(), amount=Decimal("30.00"), occurred_at=now - timedelta(days=1))
    convert(alice, visitor_id=visitors["dan"], amount=Decimal("60.00"), occurred_at=now - timedelta(days=39))


@pytest.mark.parametrize("roll_up", ["never", "midway", "after"])
def test_the_kpis_of_a_known_month_with_their_change(alice, known, convert, roll_up):
    if roll_up == "midway":
        rollups_run()
    _convert_known(known, alice, convert)
    if roll_up == "after":
        rollups_run()

    kpis = _kpis(alice, reports.period_for("30d"))

    assert {key: row["value"] for key, row in kpis.items()} == {
        "clicks": 4, "unique": 3, "bots": 2, "conversions": 3, "revenue": Decimal("150.00"),
        "conversion_rate": 0.75, "attribution_rate": pytest.approx(2 / 3), "confidence": pytest.approx(95),
    }
    assert {key: row["previous"] for key, row in kpis.items()} == {
        "clicks": 1, "unique": 1, "bots": 0, "conversions": 1, "revenue": Decimal("60.00"),
        "conversion_rate": 1.0, "attribution_rate": 1.0, "confidence": pytest.approx(93),
    }
    assert {key: row["change"] for key, row in kpis.items()} == {
        "clicks": 3.0, "unique": 2.0, "bots": None, "conversions": 2.0, "revenue": 1.5,
        "conversion_rate": -0.25, "attribution_rate": pytest.approx(-1 / 3), "confidence": pytest.approx(2 / 93),
    }
    assert [row["key"] for row in reports.kpis(creator=alice, period=reports.period_for("30d"), model="last_touch")][-1] == "bots"


def test_a_figure_without_a_previous_value_has_no_change(alice, known):
    kpis = _kpis(alice, reports.period_for("7d"))

    assert kpis["clicks"]["value"] == 4
    assert kpis["clicks"]["previous"] == 0
    assert kpis["clicks"]["change"] is None
    assert kpis["conversion_rate"]["value"] == 0
    assert kpis["attribution_rate"]["value"] is None
    assert kpis["confidence"]["value"] is None


def test_the_live_tail_counts_rows_not_rolled_up_and_each_row_once_after(alice, known, convert):
    period = reports.period_for("30d")
    before = _kpis(alice, period)
    assert not HourlyLinkClicks.objects.exists()

    rollups_run()

    assert _kpis(alice, period) == before
    assert RollupCursor.objects.get(name="clicks").last_id == Click.objects.order_by("-id").first().id
    assert sum(HourlyLinkClicks.objects.filter(creator=alice).values_list("clicks", flat=True)) == 5  # the month before too
    # More traffic after the rollup is tail again, and counted once.
    _click(known["bio"], at=known["now"] - timedelta(hours=5))
    assert reports.traffic(creator=alice, period=period) == {"clicks": 5, "unique": 4, "bots": 2}
    rollups_run()
    assert reports.traffic(creator=alice, period=period) == {"clicks": 5, "unique": 4, "bots": 2}


def test_a_pending_conversion_counts_as_a_conversion_but_not_as_decided(alice, known):
    Conversion.objects.create(creator=alice, event="signup", source=Conversion.Source.TRACK, occurred_at=known["now"] - timedelta(hours=2))

    outcomes = reports.conversion_outcomes(creator=alice, period=reports.period_for("7d"))

    assert (outcomes["total"], outcomes["attributed"], outcomes["unattributed"], outcomes["attribution_rate"]) == (1, 0, 0, None)


@pytest.mark.parametrize("roll_up", [False, True])
def test_bots_count_only_as_bots_everywhere(alice, convert, roll_up):
    now = _now()
    crawled = link_create(creator=alice, url="https://shop.example/crawled", title="Crawled only")
    for n in range(3):
        _click(crawled, at=now - timedelta(hours=3, minutes=n), ua=GOOGLEBOT, referrer="https://www.google.com/")
    _click(crawled, at=now - timedelta(hours=3), method="head")
    if roll_up:
        rollups_run()
    period = reports.period_for("24h")

    assert reports.traffic(creator=alice, period=period) == {"clicks": 0, "unique": 0, "bots": 4}
    assert sum(row["clicks"] for row in reports.series(creator=alice, period=period, model="last_touch")) == 0
    assert all(rows == [] for rows in reports.breakdowns(creator=alice, period=period).values())
    # A link whose only requests came from bots has no traffic to rank.
    assert reports.top_links(creator=alice, period=period, model="last_touch") == []
    assert _kpis(alice, period)["clicks"]["value"] == 0


@pytest.mark.parametrize("roll_up", [False, True])
def test_the_last_24_hours_come_in_hourly_buckets(alice, roll_up):
    now = _now()
    link = link_create(creator=alice, url="https://shop.example/a")
    two_hours_ago = (now - timedelta(hours=2)).replace(minute=10, second=0)
    twenty_hours_ago = (now - timedelta(hours=20)).replace(minute=10, second=0)
    for minute in (0, 1, 2):
        _click(link, at=two_hours_ago + timedelta(minutes=minute))
    _click(link, at=twenty_hours_ago)
    _click(link, at=twenty_hours_ago, ua=GOOGLEBOT)
    _click(link, at=now - timedelta(hours=30))  # before the period
    if roll_up:
        rollups_run()
    period = reports.period_for("24h")

    rows = reports.series(creator=alice, period=period, model="last_touch")

    assert [row["at"] for row in rows] == [period.start + timedelta(hours=n) for n in range(24)]
    counts = {row["at"]: row["clicks"] for row in rows if row["clicks"]}
    assert counts == {two_hours_ago.replace(minute=0): 3, twenty_hours_ago.replace(minute=0): 1}
    assert all(row["revenue"] is None for row in rows)
    assert sum(counts.values()) == reports.traffic(creator=alice, period=period)["clicks"]


@pytest.mark.parametrize("roll_up", [False, True])
def test_longer_periods_come_in_daily_buckets_with_revenue(alice, known, convert, roll_up):
    _convert_known(known, alice, convert)
    if roll_up:
        rollups_run()
    period = reports.period_for("7d")
    now = known["now"]

    rows = reports.series(creator=alice, period=period, model="last_touch")

    assert [row["at"] for row in rows] == period.days
    clicks = {row["at"]: row["clicks"] for row in rows if row["clicks"]}
    humans = Click.objects.filter(creator=alice, is_bot=False, occurred_at__gte=period.start).values_list("occurred_at", flat=True)
    assert clicks == Counter(when.date() for when in humans)
    assert sum(clicks.values()) == 4
    revenue = {row["at"]: row["revenue"] for row in rows if row["revenue"]}
    assert revenue == {(now - timedelta(days=1)).date(): Decimal("150.00")}


@pytest.mark.parametrize("roll_up", [False, True])
def test_top_links_are_ordered_by_revenue_then_clicks(alice, convert, roll_up):
    now = _now()
    small, big, popular = (
        link_create(creator=alice, url=f"https://shop.example/{name}", title=name) for name in ("small", "big", "popular")
    )
    for link, amount in ((small, "20.00"), (big, "200.00")):
        visitor = new_visitor_id()
        _click(link, at=now - timedelta(days=2), visitor_id=visitor)
        convert(alice, visitor_id=visitor, amount=Decimal(amount), occurred_at=now - timedelta(days=1))
    for _ in range(5):
        _click(popular, at=now - timedelta(days=2))
    if roll_up:
        rollups_run()

    rows = reports.top_links(creator=alice, period=reports.period_for("30d"), model="last_touch")

    assert [(row["link"], row["revenue"], row["conversions"], row["clicks"]) for row in rows] == [
        (big, Decimal("200.00"), 1, 1), (small, Decimal("20.00"), 1, 1), (popular, Decimal(0), 0, 5),
    ]
    assert len(reports.top_links(creator=alice, period=reports.period_for("30d"), model="last_touch", limit=2)) == 2


@pytest.mark.parametrize("roll_up", [False, True])
def test_breakdowns_name_direct_visits_and_fall_back_to_the_links_utm(alice, known, roll_up):
    if roll_up:
        rollups_run()

    breakdowns = reports.breakdowns(creator=alice, period=reports.period_for("30d"))

    assert set(breakdowns) == {"referrer", "country", "device", "browser", "os", "utm_source", "utm_medium", "utm_campaign"}
    assert sorted(breakdowns["referrer"]) == [("direct", 1), ("t.co", 1), ("youtube.com", 2)]
    assert breakdowns["country"] == [("GB", 4)]
    assert sorted(breakdowns["device"]) == [("desktop", 1), ("mobile", 3)]
    # Ann's two clicks on the video carry no UTM of their own: the link's apply. Ben's visit names
    # its own source; the bio link has none at all.
    assert sorted(breakdowns["utm_source"]) == [("newsletter", 1), ("youtube", 2)]
    assert breakdowns["utm_campaign"] == [("launch", 3)]
    assert breakdowns["utm_medium"] == []
    video_only = reports.breakdowns(creator=alice, period=reports.period_for("30d"), link=known["video"])
    assert sorted(video_only["referrer"]) == [("direct", 1), ("youtube.com", 2)]


def test_another_creator_sees_none_of_alices_figures(alice, bob, known, convert):
    _convert_known(known, alice, convert)
    rollups_run()
    period = reports.period_for("30d")

    assert reports.traffic(creator=bob, period=period) == {"clicks": 0, "unique": 0, "bots": 0}
    assert reports.earnings(creator=bob, period=period, model="last_touch") == {"conversions": 0, "revenue": Decimal(0)}
    assert reports.top_links(creator=bob, period=period, model="last_touch") == []
    assert all(rows == [] for rows in reports.breakdowns(creator=bob, period=period).values())
    assert all(row["value"] in (0, None, Decimal(0)) for row in reports.kpis(creator=bob, period=period, model="last_touch"))


@pytest.mark.parametrize("roll_up", [False, True])
def test_revenue_stays_in_exact_cents_when_credit_comes_and_goes(alice, convert, roll_up):
    now = _now()
    link = link_create(creator=alice, url="https://shop.example/a", title="Cheap")
    visitor = new_visitor_id()
    _click(link, at=now - timedelta(days=2), visitor_id=visitor)
    convert(alice, visitor_id=visitor, amount=Decimal("0.99"), occurred_at=now - timedelta(days=1))
    refunded = convert(alice, visitor_id=visitor, amount=Decimal("16.99"), occurred_at=now - timedelta(days=1, minutes=-5))
    conversion_refund(conversion=refunded, refunded_amount=Decimal("16.99"))  # the ledger: +0.99, +16.99, -16.99
    if roll_up:
        rollups_run()
    period = reports.period_for("30d")

    assert reports.earnings(creator=alice, period=period, model="last_touch")["revenue"] == Decimal("0.99")
    assert reports.earnings(creator=alice, period=period, model="last_touch", link=link)["revenue"] == Decimal("0.99")
    assert _kpis(alice, period)["revenue"]["value"] == Decimal("0.99")
    assert [row["revenue"] for row in reports.top_links(creator=alice, period=period, model="last_touch")] == [Decimal("0.99")]
    assert sum(row["revenue"] for row in reports.series(creator=alice, period=period, model="last_touch")) == Decimal("0.99")


# --- the edges of a period ------------------------------------------------------------------


@pytest.fixture
def midday(monkeypatch):
    """The period of "24h" as seen at 12:30 UTC two days ago: from 13:00 the day before to 13:00."""
    fixed = (_now() - timedelta(days=2)).replace(hour=12, minute=30, second=0)
    with monkeypatch.context() as patch:
        patch.setattr(timezone, "now", lambda: fixed)
        period = reports.period_for("24h")
    assert (period.start.hour, period.end.hour) == (13, 13)
    return period


@pytest.mark.parametrize("roll_up", [False, True])
def test_revenue_of_the_last_24_hours_leaves_out_sales_before_the_period(alice, convert, midday, roll_up):
    link = link_create(creator=alice, url="https://shop.example/a")
    for at, amount in ((midday.start - timedelta(hours=2), "70.00"), (midday.start + timedelta(hours=2), "25.00")):
        visitor = new_visitor_id()
        _click(link, at=at - timedelta(minutes=5), visitor_id=visitor)
        convert(alice, visitor_id=visitor, amount=Decimal(amount), occurred_at=at)
    if roll_up:
        rollups_run()

    kpis = _kpis(alice, midday)

    assert kpis["conversions"]["value"] == 1
    # 11:00 the day before is outside the period, though on the same date as its start.
    assert kpis["revenue"]["value"] == Decimal("25.00")
    assert reports.earnings(creator=alice, period=midday, model="last_touch", link=link)["revenue"] == Decimal("25.00")


def test_breakdowns_are_the_same_before_and_after_the_rollup_at_the_edge_of_a_period(alice, midday):
    link = link_create(creator=alice, url="https://shop.example/a")
    _click(link, at=midday.start - timedelta(hours=1))  # the day the period starts, before its start
    _click(link, at=midday.start + timedelta(hours=1))
    before = reports.breakdowns(creator=alice, period=midday)

    rollups_run()

    assert reports.breakdowns(creator=alice, period=midday) == before
    # Breakdowns count whole days (the rollup's grain), before and after the rollup alike.
    assert before["country"] == [("GB", 2)]
