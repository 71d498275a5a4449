"""Recomputing a creator after a change of window or half-life: the batched re-attribution must
give exactly the answers that attributing each conversion on its own gives, and write nothing
where nothing changed."""

import random
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import pytest

from attribution.conversions import (
    attribution_settings_for,
    conversion_attribute,
    conversion_record,
    conversions_reattribute,
    recompute_run,
)
from attribution.models import Conversion, Credit, CreditLedger, Recompute
from attribution.services import new_visitor_id, request_signals
from links.services import link_create
from tests.attribution.test_attribution import ENCODING, ENGLISH, PHONE, _click, _factory, _now


@pytest.fixture
def links(alice):
    return [link_create(creator=alice, url=f"https://shop.example/{name}", title=name) for name in ("video", "bio", "newsletter", "x")]


def _history(alice, links, seed: int, django_capture_on_commit_callbacks) -> list[Conversion]:
    """Sixty days of clicks by a few dozen visitors and conversions of every kind, each attributed
    as it arrived under the default 30-day window."""
    rng = random.Random(seed)
    now = _now()
    visitors = [new_visitor_id() for _ in range(25)]
    clicks = defaultdict(list)
    for visitor in visitors:
        for _ in range(rng.randint(1, 5)):
            at = now - timedelta(days=rng.uniform(1, 60))
            clicks[visitor].append(_click(rng.choice(links), at=at, visitor_id=visitor, ip=f"81.2.{rng.randint(1, 200)}.{rng.randint(1, 250)}"))
    conversions = []
    for i, visitor in enumerate(visitors):
        kind = ("click_id", "cookie", "email", "nobody", "cookie_then_email")[i % 5]
        fields = {"amount": Decimal(rng.choice(["9.00", "49.00", "100.00", "33.33"])), "occurred_at": now - timedelta(hours=rng.randint(0, 20))}
        if kind == "click_id":
            fields["click_id"] = rng.choice(clicks[visitor]).public_id
        elif kind == "cookie":
            fields["visitor_id"] = visitor
        elif kind == "nobody":
            # No identifier that ever clicked; a browser on the address of some visitor's click,
            # so probabilistic evidence decides (and a shorter window may take it away).
            fields["email"] = f"stranger{i}@example.org"
            lookalike = rng.choice(rng.choice(list(clicks.values())))
            request = _factory.get("/", HTTP_USER_AGENT=PHONE, HTTP_ACCEPT_LANGUAGE=ENGLISH, HTTP_ACCEPT_ENCODING=ENCODING, REMOTE_ADDR=lookalike.ip)
            fields["signals"] = request_signals(request)
        else:
            # Signs up with the cookie, buys later on the server with only the email.
            email = f"person{i}@example.org"
            conversions.append(_convert(alice, django_capture_on_commit_callbacks, visitor_id=visitor, email=email, event="signup", **fields))
            fields = {**fields, "email": email, "occurred_at": fields["occurred_at"] + timedelta(hours=2)}
        conversions.append(_convert(alice, django_capture_on_commit_callbacks, **fields))
    return conversions


def _convert(creator, capture, **fields) -> Conversion:
    fields.setdefault("event", "purchase")
    fields.setdefault("source", Conversion.Source.TRACK)
    with capture(execute=True):
        conversion, _ = conversion_record(creator=creator, **fields)
    return conversion


def _answers(creator) -> dict:
    answers = {}
    for conversion in Conversion.objects.filter(creator=creator).order_by("id"):
        credits = sorted(Credit.objects.filter(conversion=conversion).values_list("model", "link_id", "weight", "revenue"))
        answers[conversion.pk] = (conversion.status, conversion.confidence, conversion.evidence, credits)
    return answers


def _ledger_matches_credits(creator) -> bool:
    """The ledger the rollups read adds up to the credits as they stand (summed here, in exact
    decimals: SQLite sums decimals as floats)."""

    def totals(rows):
        sums = defaultdict(lambda: [0, Decimal(0)])
        for model, link_id, count, revenue in rows:
            sums[(model, link_id)][0] += count
            sums[(model, link_id)][1] += revenue
        return {key: tuple(value) for key, value in sums.items() if value != [0, Decimal(0)]}

    ledger = CreditLedger.objects.filter(creator=creator).values_list("model", "link_id", "conversions", "revenue")
    credits = [(model, link_id, 1, revenue) for model, link_id, revenue in Credit.objects.filter(conversion__creator=creator).values_list("model", "link_id", "revenue")]
    return totals(ledger) == totals(credits)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("window_days, half_life", [(10, "2.00"), (60, "7.00"), (30, "0.50")])
def test_a_batched_recompute_gives_the_answers_of_attributing_one_by_one(
    alice, links, seed, window_days, half_life, django_capture_on_commit_callbacks
):
    conversions = _history(alice, links, seed, django_capture_on_commit_callbacks)
    assert {c.status for c in Conversion.objects.filter(creator=alice)} >= {Conversion.Status.ATTRIBUTED, Conversion.Status.UNATTRIBUTED}
    methods = {c.evidence.get("method") for c in Conversion.objects.filter(creator=alice)}
    assert methods >= {"click_id", "visitor_cookie", "linked_identity", "fingerprint"}
    prefs = attribution_settings_for(alice.id)
    prefs.window_days, prefs.half_life_days = window_days, Decimal(half_life)
    prefs.save()

    recompute = recompute_run(recompute_id=Recompute.objects.create(creator=alice, total=len(conversions)).pk, chunk=7)
    batched = _answers(alice)
    assert recompute.done == len(conversions) and recompute.finished_at is not None
    assert _ledger_matches_credits(alice)

    for conversion in conversions:
        conversion_attribute(conversion_id=conversion.pk)
    assert _answers(alice) == batched
    assert _ledger_matches_credits(alice)


def test_a_recompute_that_changes_nothing_writes_nothing(alice, links, django_capture_on_commit_callbacks):
    conversions = _history(alice, links, 4, django_capture_on_commit_callbacks)
    attributed = [c.pk for c in Conversion.objects.filter(creator=alice, status=Conversion.Status.ATTRIBUTED)]
    ledger_rows = CreditLedger.objects.count()
    before = _answers(alice)

    left = conversions_reattribute(creator_id=alice.id, conversion_ids=[c.pk for c in conversions])

    assert attributed and left == []  # only pending conversions go the one-by-one way
    assert _answers(alice) == before
    assert CreditLedger.objects.count() == ledger_rows


def test_pending_conversions_are_left_to_a_first_attribution(alice, links):
    conversion, _ = conversion_record(creator=alice, event="purchase", source=Conversion.Source.TRACK, email="new@example.org")

    assert conversions_reattribute(creator_id=alice.id, conversion_ids=[conversion.pk]) == [conversion.pk]
    conversion.refresh_from_db()
    assert conversion.status == Conversion.Status.PENDING


def test_a_shorter_window_that_empties_a_journey_unattributes_the_conversion(alice, links, convert_one):
    now = _now()
    visitor = new_visitor_id()
    _click(links[0], at=now - timedelta(days=20), visitor_id=visitor)
    conversion = convert_one(alice, visitor_id=visitor, amount=Decimal("10.00"), occurred_at=now)
    assert conversion.status == Conversion.Status.ATTRIBUTED
    prefs = attribution_settings_for(alice.id)
    prefs.window_days = 7
    prefs.save()

    assert conversions_reattribute(creator_id=alice.id, conversion_ids=[conversion.pk]) == []

    conversion.refresh_from_db()
    assert conversion.status == Conversion.Status.UNATTRIBUTED and conversion.confidence is None
    assert conversion.evidence["clicks"] == []
    assert not Credit.objects.filter(conversion=conversion).exists()
    assert _ledger_matches_credits(alice)


@pytest.fixture
def convert_one(django_capture_on_commit_callbacks):
    def _one(creator, **fields):
        conversion = _convert(creator, django_capture_on_commit_callbacks, **fields)
        conversion.refresh_from_db()
        return conversion

    return _one
