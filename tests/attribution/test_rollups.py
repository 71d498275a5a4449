"""Rollups: the hourly, per-dimension and per-model credit tables always add up to the raw rows.

Clicks are made through the same code as real traffic (click_payload and clicks_store) and
conversions through conversion_record and the attribution task, run when the transaction commits.
Every property example uses a creator of its own, so examples never see each other's rows.
"""

import itertools
import threading
from collections import Counter, defaultdict
from datetime import UTC, timedelta
from decimal import Decimal

import pytest
from django.db import connection
from django.db.models import Count, Q, Sum
from django.test import RequestFactory
from django.utils import timezone
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from allumi.accounts.services import creator_create
from attribution import reports, rollups
from attribution.conversions import (
    attribution_settings_for,
    conversion_attribute,
    conversion_record,
    conversion_refund,
    recompute_start,
)
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
from attribution.rollups import rollup_clicks, rollup_credits, rollups_run
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from links.services import link_create

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
PREVIEW = "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"
# (user agent, method): people on a phone and a desktop, a crawler, a link preview, a HEAD request.
AGENTS = [(PHONE, "get"), (DESKTOP, "get"), (GOOGLEBOT, "get"), (PREVIEW, "get"), (PHONE, "head")]
# Addresses the bundled GeoIP places in GB, US and BR, and one (TEST-NET) it places nowhere.
ADDRESSES = ["81.2.69.142", "8.8.8.8", "2.16.0.1", "192.0.2.1"]
REFERRERS = ["", "https://www.youtube.com/watch?v=abc", "https://t.co/xyz", "https://news.example.org/post"]
QUERIES = [{}, {"utm_source": "tiktok"}, {"utm_source": "ig", "utm_medium": "story", "utm_campaign": "launch"}]
# Links with and without UTM fields of their own (the fallback for visits without them).
LINK_UTM = [{"utm_source": "newsletter", "utm_campaign": "spring"}, {}, {"utm_medium": "video"}]
DAYS = 10
CENT = Decimal("0.01")

_factory = RequestFactory()
_creators = itertools.count()

# The dimension rows a click adds, as rollups.py defines them (empty values become a label).
_EMPTY_AS = {"referrer": "direct", "country": "unknown", "device": "other", "browser": "unknown", "os": "unknown"}
_COLUMNS = {"referrer": "referrer_domain", "country": "country", "device": "device_type", "browser": "browser", "os": "os"}
UTM = ("utm_source", "utm_medium", "utm_campaign")


def _fresh_creator():
    return creator_create(email=f"rollup-{next(_creators)}-{new_visitor_id()}@example.com", password=None, confirmed=True)


def _click(link, *, at, visitor_id, agent=0, address=0, referrer=0, query=0) -> str:
    ua, method = AGENTS[agent]
    headers = {"HTTP_USER_AGENT": ua, "HTTP_ACCEPT_LANGUAGE": "en-US,en;q=0.9", "REMOTE_ADDR": ADDRESSES[address]}
    if REFERRERS[referrer]:
        headers["HTTP_REFERER"] = REFERRERS[referrer]
    request = getattr(_factory, method)(f"/l/{link.short_id}", QUERIES[query], **headers)
    click_id = new_click_id()
    return click_payload(
        request=request, link_id=link.id, creator_id=link.creator_id, click_id=click_id, visitor_id=visitor_id,
        occurred_at=at.timestamp(),
    )


def _raw_hourly(creator) -> dict:
    """(link, hour) -> (human clicks, unique human clicks, bots), straight from the clicks."""
    totals: dict = defaultdict(lambda: [0, 0, 0])
    for link_id, when, is_bot, is_unique in Click.objects.filter(creator=creator).values_list("link_id", "occurred_at", "is_bot", "is_unique"):
        row = totals[(link_id, when.replace(minute=0, second=0, microsecond=0))]
        row[2 if is_bot else 0] += 1
        row[1] += int(is_unique and not is_bot)
    return {key: tuple(value) for key, value in totals.items()}


def _rolled_hourly(creator) -> dict:
    return {
        (row.link_id, row.hour): (row.clicks, row.unique_clicks, row.bot_clicks)
        for row in HourlyLinkClicks.objects.filter(creator=creator)
    }


def _raw_daily(creator) -> dict:
    """(link, UTC day) -> (human clicks, unique human clicks, bots), straight from the clicks."""
    totals: dict = defaultdict(lambda: [0, 0, 0])
    for (link_id, hour), counts in _raw_hourly(creator).items():
        row = totals[(link_id, hour.astimezone(UTC).date())]
        for i, count in enumerate(counts):
            row[i] += count
    return {key: tuple(value) for key, value in totals.items()}


def _rolled_daily(creator) -> dict:
    return {
        (row.link_id, row.day): (row.clicks, row.unique_clicks, row.bot_clicks)
        for row in DailyLinkClicks.objects.filter(creator=creator)
    }


def _raw_dimensions(creator) -> Counter:
    """(link, day, dimension, value) -> human clicks, straight from the clicks and their links."""
    counts: Counter = Counter()
    for click in Click.objects.filter(creator=creator, is_bot=False).select_related("link"):
        day = click.occurred_at.date()
        for dimension, column in _COLUMNS.items():
            counts[(click.link_id, day, dimension, getattr(click, column) or _EMPTY_AS[dimension])] += 1
        for field in UTM:
            value = getattr(click, field) or getattr(click.link, field)
            if value:
                counts[(click.link_id, day, field, value)] += 1
    return counts


def _rolled_dimensions(creator) -> Counter:
    return Counter(
        {
            (row.link_id, row.day, row.dimension, row.value): row.clicks
            for row in DailyClickDimension.objects.filter(creator=creator)
        }
    )


def _rolled_creator_dimensions(creator) -> Counter:
    return Counter(
        {(row.day, row.dimension, row.value): row.clicks for row in DailyCreatorDimension.objects.filter(creator=creator)}
    )


def _per_creator(per_link: Counter) -> Counter:
    totals: Counter = Counter()
    for (_link, day, dimension, value), clicks in per_link.items():
        totals[(day, dimension, value)] += clicks
    return totals


def _credit_sums(rows) -> dict:
    """key -> (count, revenue) over (key, count, revenue) rows, added up in exact decimals (an SQL
    SUM of decimals is a float sum on SQLite; test_reports asserts exact cents of its own)."""
    totals: dict = defaultdict(lambda: [0, Decimal(0)])
    for key, count, revenue in rows:
        totals[key][0] += count
        totals[key][1] += revenue
    # A (link, model) whose credit came and went again adds up to zero: it is not a credit.
    return {key: tuple(value) for key, value in totals.items() if tuple(value) != (0, 0)}


def _raw_credit(creator, *, by_day: bool = False) -> dict:
    """(link, model[, day]) -> (credits, revenue) from the current credits."""
    return _credit_sums(
        ((link_id, model, day) if by_day else (link_id, model), 1, revenue)
        for link_id, model, day, revenue in Credit.objects.filter(conversion__creator=creator).values_list(
            "link_id", "model", "conversion__occurred_at__date", "revenue"
        )
    )


def _rolled_credit(creator, *, by_day: bool = False) -> dict:
    """(link, model[, day]) -> (conversions, revenue) from the daily credit rollup."""
    return _credit_sums(
        ((link_id, model, day) if by_day else (link_id, model), conversions, revenue)
        for link_id, model, day, conversions, revenue in DailyLinkCredit.objects.filter(creator=creator).values_list(
            "link_id", "model", "day", "conversions", "revenue"
        )
    )


def _snapshot() -> tuple:
    return (
        sorted(HourlyLinkClicks.objects.values_list("link_id", "hour", "clicks", "unique_clicks", "bot_clicks")),
        sorted(DailyLinkClicks.objects.values_list("link_id", "day", "clicks", "unique_clicks", "bot_clicks")),
        sorted(DailyClickDimension.objects.values_list("link_id", "day", "dimension", "value", "clicks")),
        sorted(DailyCreatorDimension.objects.values_list("creator_id", "day", "dimension", "value", "clicks")),
        sorted(DailyLinkCredit.objects.values_list("link_id", "model", "day", "conversions", "revenue")),
        sorted(RollupCursor.objects.values_list("name", "last_id")),
    )


# --- clicks ---------------------------------------------------------------------------------

_click_spec = st.tuples(
    st.integers(0, len(LINK_UTM) - 1),  # link
    st.integers(0, DAYS * 86400 - 1),  # seconds after the start
    st.integers(0, 3),  # visitor
    st.integers(0, len(AGENTS) - 1),
    st.integers(0, len(ADDRESSES) - 1),
    st.integers(0, len(REFERRERS) - 1),
    st.integers(0, len(QUERIES) - 1),
)
_batches = st.lists(st.tuples(st.lists(_click_spec, max_size=12), st.booleans()), min_size=1, max_size=4)


@pytest.mark.parametrize("part_clicks", [rollups.PART_CLICKS, 3], ids=["one part", "parts of 3 clicks"])
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batches=_batches)
def test_click_rollups_equal_the_raw_clicks_after_random_inserts(db, monkeypatch, part_clicks, batches):
    monkeypatch.setattr(rollups, "PART_CLICKS", part_clicks)  # a rollup run then works link by link
    monkeypatch.setattr(rollups.time, "sleep", lambda seconds: None)
    creator = _fresh_creator()
    links = [link_create(creator=creator, url=f"https://shop.example/{n}", title=f"link {n}", **utm) for n, utm in enumerate(LINK_UTM)]
    visitors = [new_visitor_id() for _ in range(4)]
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=DAYS + 1)
    everything = reports.Period(start - timedelta(days=1), start + timedelta(days=DAYS + 1))

    for specs, roll_up_after in batches:
        clicks_store(
            payloads=[
                _click(links[link], at=start + timedelta(seconds=offset), visitor_id=visitors[visitor], agent=agent,
                       address=address, referrer=referrer, query=query)
                for link, offset, visitor, agent, address, referrer, query in specs
            ]
        )
        if roll_up_after:
            rollups_run()
        # Rolled up or not yet, the reports count every click exactly once.
        for link in links:
            raw = Click.objects.filter(link=link).aggregate(
                clicks=Count("id", filter=Q(is_bot=False)), unique=Count("id", filter=Q(is_bot=False, is_unique=True)),
                bots=Count("id", filter=Q(is_bot=True)),
            )
            assert reports.traffic(creator=creator, period=everything, link=link) == raw

    rollups_run()

    assert _rolled_hourly(creator) == _raw_hourly(creator)
    assert _rolled_daily(creator) == _raw_daily(creator)
    assert _rolled_dimensions(creator) == _raw_dimensions(creator)
    assert _rolled_creator_dimensions(creator) == _per_creator(_raw_dimensions(creator))
    humans = Click.objects.filter(creator=creator, is_bot=False).count()
    for dimension in ("referrer", "country", "device", "browser", "os"):
        # Every human click has exactly one value of each of these.
        assert sum(DailyClickDimension.objects.filter(creator=creator, dimension=dimension).values_list("clicks", flat=True)) == humans
    assert not DailyClickDimension.objects.filter(creator=creator, value="").exists()

    before = _snapshot()
    assert rollups_run() == {"clicks": 0, "credits": 0}
    assert _snapshot() == before


def _read_up_to_here(name: str, model) -> None:
    """Start the cursor just below the next id (sequences are not reset between tests on PostgreSQL),
    so that a rollup's return value counts the rows a test made."""
    first = model.objects.order_by("id").first()
    RollupCursor.objects.update_or_create(name=name, defaults={"last_id": first.id - 1})


def test_a_rollup_reads_each_click_once_and_moves_its_cursor(alice):
    link = link_create(creator=alice, url="https://shop.example/a")
    at = timezone.now().replace(minute=5, second=0, microsecond=0) - timedelta(hours=3)
    clicks_store(payloads=[_click(link, at=at, visitor_id=new_visitor_id()) for _ in range(3)])
    _read_up_to_here("clicks", Click)

    assert rollup_clicks() == 3
    assert rollup_clicks() == 0
    clicks_store(payloads=[_click(link, at=at + timedelta(minutes=1), visitor_id=new_visitor_id(), agent=2)])
    assert rollup_clicks() == 1

    row = HourlyLinkClicks.objects.get(link=link)
    assert (row.hour, row.clicks, row.unique_clicks, row.bot_clicks) == (at.replace(minute=0), 3, 3, 1)
    assert RollupCursor.objects.get(name="clicks").last_id == Click.objects.order_by("-id").first().id


def test_a_rollup_works_through_a_backlog_in_batches(alice):
    link = link_create(creator=alice, url="https://shop.example/a")
    at = timezone.now().replace(microsecond=0) - timedelta(hours=3)
    clicks_store(payloads=[_click(link, at=at + timedelta(minutes=n), visitor_id=new_visitor_id()) for n in range(7)])
    _read_up_to_here("clicks", Click)

    assert [rollup_clicks(batch=3) for _ in range(4)] == [3, 3, 1, 0]
    assert HourlyLinkClicks.objects.filter(link=link).aggregate(n=Sum("clicks"))["n"] == 7
    assert DailyClickDimension.objects.filter(link=link, dimension="country").aggregate(n=Sum("clicks"))["n"] == 7


def test_nothing_is_read_above_the_settled_horizon(alice, settings):
    """With a settling period, ids allocated since the last look wait for the next run after it."""
    settings.ROLLUP_SETTLE_SECONDS = 3600
    link = link_create(creator=alice, url="https://shop.example/a")
    clicks_store(payloads=[_click(link, at=timezone.now() - timedelta(hours=1), visitor_id=new_visitor_id())])
    _read_up_to_here("clicks", Click)

    assert rollup_clicks() == 0  # the first look only notes the horizon
    assert rollup_clicks() == 0  # which has not settled yet
    RollupCursor.objects.filter(name="clicks").update(horizon_at=timezone.now() - timedelta(hours=2))
    assert rollup_clicks() == 1
    assert HourlyLinkClicks.objects.get(link=link).clicks == 1


# --- credits --------------------------------------------------------------------------------

_operation = st.one_of(
    # a purchase by visitor v of `amount` dollars, `hours` after the start
    st.tuples(st.just("convert"), st.integers(0, 3), st.integers(0, 500), st.integers(0, DAYS * 24)),
    # a refund of a fraction of the n-th conversion (modulo how many there are)
    st.tuples(st.just("refund"), st.integers(0, 20), st.integers(0, 100)),
    # a late click by visitor v on link l, then the n-th conversion attributed again
    st.tuples(st.just("reattribute"), st.integers(0, 20), st.integers(0, 3), st.integers(0, len(LINK_UTM) - 1)),
    # a new window: every conversion of the creator attributed again
    st.tuples(st.just("window"), st.integers(1, 12)),
    st.tuples(st.just("rollup")),
)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(journeys=st.lists(st.tuples(st.integers(0, 3), st.integers(0, 2), st.integers(0, DAYS * 24)), max_size=10),
       operations=st.lists(_operation, min_size=1, max_size=8))
def test_credit_rollups_equal_the_current_credits_after_conversions_refunds_and_reattribution(
    db, django_capture_on_commit_callbacks, journeys, operations
):
    creator = _fresh_creator()
    links = [link_create(creator=creator, url=f"https://shop.example/{n}", **utm) for n, utm in enumerate(LINK_UTM)]
    visitors = [new_visitor_id() for _ in range(4)]
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=DAYS + 1)
    clicks_store(payloads=[_click(links[link], at=start + timedelta(hours=hour), visitor_id=visitors[v]) for v, link, hour in journeys])
    conversions: list[Conversion] = []

    for operation in operations:
        with django_capture_on_commit_callbacks(execute=True):
            if operation[0] == "convert":
                _, visitor, dollars, hour = operation
                conversion, _ = conversion_record(
                    creator=creator, event="purchase", source=Conversion.Source.TRACK, visitor_id=visitors[visitor],
                    amount=Decimal(dollars) + Decimal("0.99"), occurred_at=start + timedelta(hours=hour, minutes=30),
                )
                conversions.append(conversion)
            elif operation[0] == "refund" and conversions:
                _, index, percent = operation
                conversion = conversions[index % len(conversions)]
                conversion.refresh_from_db()
                conversion_refund(conversion=conversion, refunded_amount=(conversion.amount * percent / 100).quantize(Decimal("0.01")))
            elif operation[0] == "reattribute" and conversions:
                _, index, visitor, link = operation
                conversion = conversions[index % len(conversions)]
                conversion.refresh_from_db()
                clicks_store(payloads=[_click(links[link], at=conversion.occurred_at - timedelta(minutes=10), visitor_id=visitors[visitor])])
                conversion_attribute(conversion_id=conversion.id)
            elif operation[0] == "window":
                prefs = attribution_settings_for(creator.id)
                prefs.window_days = operation[1]
                prefs.save()
                recompute_start(creator=creator)
            elif operation[0] == "rollup":
                rollups_run()
        # Rolled up or not yet, the reports show the current credits.
        everything = reports.Period(start - timedelta(days=1), start + timedelta(days=DAYS + 2))
        for model in ("first_touch", "linear"):
            expected = sum(Credit.objects.filter(conversion__creator=creator, model=model).values_list("revenue", flat=True), Decimal(0))
            assert reports.earnings(creator=creator, period=everything, model=model)["revenue"].quantize(CENT) == expected

    rollups_run()

    assert _rolled_credit(creator) == _raw_credit(creator)
    # Per day as well: a conversion's credit lands on the day it happened.
    assert _rolled_credit(creator, by_day=True) == _raw_credit(creator, by_day=True)
    # The ledger is the history of changes: it adds up to the same.
    ledger = CreditLedger.objects.filter(creator=creator).values_list("link_id", "model", "conversions", "revenue")
    assert _credit_sums(((link_id, model), n, revenue) for link_id, model, n, revenue in ledger) == _raw_credit(creator)

    before = _snapshot()
    assert rollups_run() == {"clicks": 0, "credits": 0}
    assert _snapshot() == before


def test_a_refund_writes_a_negative_ledger_row_that_the_rollup_subtracts(alice, django_capture_on_commit_callbacks):
    link = link_create(creator=alice, url="https://shop.example/a")
    visitor = new_visitor_id()
    at = timezone.now().replace(microsecond=0) - timedelta(days=1)
    clicks_store(payloads=[_click(link, at=at - timedelta(hours=1), visitor_id=visitor)])
    with django_capture_on_commit_callbacks(execute=True):
        conversion, _ = conversion_record(
            creator=alice, event="purchase", source=Conversion.Source.TRACK, visitor_id=visitor, amount=Decimal("80.00"), occurred_at=at,
        )
    rollup_credits()

    conversion_refund(conversion=conversion, refunded_amount=Decimal("30.00"))

    refund = CreditLedger.objects.filter(link=link, model="last_touch").order_by("-id").first()
    assert (refund.conversions, refund.revenue, refund.day) == (0, Decimal("-30.00"), at.date())
    assert rollup_credits() == 5  # one row per model
    row = DailyLinkCredit.objects.get(link=link, model="last_touch")
    assert (row.conversions, row.revenue, row.day) == (1, Decimal("50.00"), at.date())


# --- concurrency ----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_rollups_never_count_a_row_twice(alice, django_capture_on_commit_callbacks):
    links = [link_create(creator=alice, url=f"https://shop.example/{n}") for n in range(3)]
    start = timezone.now().replace(minute=0, second=0, microsecond=0) - timedelta(days=3)
    read = {"clicks": 0, "credits": 0}

    for round_ in range(3):
        visitors = [new_visitor_id() for _ in range(5)]
        clicks_store(
            payloads=[
                _click(links[n % 3], at=start + timedelta(minutes=37 * n + round_), visitor_id=visitors[n % 5], agent=n % len(AGENTS),
                       address=n % len(ADDRESSES), referrer=n % len(REFERRERS), query=n % len(QUERIES))
                for n in range(60)
            ]
        )
        with django_capture_on_commit_callbacks(execute=True):
            for n, visitor in enumerate(visitors):
                conversion_record(
                    creator=alice, event="purchase", source=Conversion.Source.TRACK, visitor_id=visitor,
                    amount=Decimal(10 * n + 5), occurred_at=start + timedelta(days=2, minutes=n),
                )

        threads_count = 4
        barrier = threading.Barrier(threads_count)
        results, errors = [], []

        def _worker(barrier=barrier, results=results, errors=errors):
            try:
                barrier.wait(timeout=10)
                results.append(rollups_run())
            except Exception as error:  # reported below, with the thread's own failure
                errors.append(error)
            finally:
                connection.close()

        threads = [threading.Thread(target=_worker) for _ in range(threads_count)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=60)

        assert errors == []
        assert len(results) == threads_count
        for key in read:
            read[key] += sum(result[key] for result in results)

    assert _rolled_hourly(alice) == _raw_hourly(alice)
    assert _rolled_dimensions(alice) == _raw_dimensions(alice)
    assert _rolled_credit(alice) == _raw_credit(alice)
    # Between them the threads read every id from the first cursor (0) to the last row once.
    assert read["clicks"] == RollupCursor.objects.get(name="clicks").last_id == Click.objects.order_by("-id").first().id
    assert read["credits"] == RollupCursor.objects.get(name="credits").last_id == CreditLedger.objects.order_by("-id").first().id


def test_a_rollup_in_parts_pauses_between_them(alice, monkeypatch):
    links = [link_create(creator=alice, url=f"https://shop.example/{n}") for n in range(4)]
    at = timezone.now() - timedelta(hours=1)
    clicks_store(payloads=[_click(link, at=at, visitor_id=new_visitor_id()) for link in links for _ in range(3)])
    _read_up_to_here("clicks", Click)
    monkeypatch.setattr(rollups, "PART_CLICKS", 4)
    pauses = []
    monkeypatch.setattr(rollups.time, "sleep", pauses.append)

    assert rollup_clicks() == 12

    assert len(pauses) == 3  # after the staging read, then between the three parts
    assert all(0 < pause <= 1.0 for pause in pauses)
    assert sum(DailyLinkClicks.objects.filter(creator=alice).values_list("clicks", flat=True)) == 12
