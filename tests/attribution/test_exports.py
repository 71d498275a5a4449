"""CSV exports: streamed attachments whose rows and sums are the database's, under the page's filters."""

import csv
import io
from datetime import timedelta
from decimal import Decimal

import pytest
from django.db.models import Sum
from django.test import RequestFactory
from django.utils import timezone

from attribution import reports
from attribution.conversions import conversion_record, conversion_refund
from attribution.credit import MODELS
from attribution.models import Click, Conversion, Credit
from attribution.rollups import rollups_run
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from links.models import Link
from links.services import link_archive, link_create

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"
CLICK_HEADER = [
    "click_id", "short_id", "occurred_at", "is_bot", "bot_reason", "is_unique", "country", "device_type", "browser", "os",
    "referrer_domain", "utm_source", "utm_medium", "utm_campaign", "visitor_id",
]
CONVERSION_HEADER = [
    "id", "external_id", "event", "source", "status", "occurred_at", "amount", "refunded_amount", "currency", "confidence",
    "model", "short_id", "weight", "revenue",
]

_factory = RequestFactory()


def _click(link, *, at, visitor_id=None, ua=PHONE) -> Click:
    click_id = new_click_id()
    request = _factory.get(f"/l/{link.short_id}", HTTP_USER_AGENT=ua, REMOTE_ADDR="81.2.69.142")
    clicks_store(
        payloads=[
            click_payload(
                request=request, link_id=link.id, creator_id=link.creator_id, click_id=click_id,
                visitor_id=visitor_id or new_visitor_id(), occurred_at=at.timestamp(),
            )
        ]
    )
    return Click.objects.get(public_id=click_id)


def _rows(response) -> list[dict]:
    assert response.status_code == 200
    assert response.streaming is True
    text = b"".join(response.streaming_content).decode("utf-8")
    return list(csv.DictReader(io.StringIO(text)))


def _header(response) -> list[str]:
    return next(csv.reader(io.StringIO(b"".join(response.streaming_content).decode("utf-8"))))


@pytest.fixture
def shop(alice, bob, django_capture_on_commit_callbacks):
    """Three links of alice (one archived) and one of bob; clicks over 40 days, bots among them;
    sales split between two links, one partly refunded, one unattributed; bob's own sale."""
    now = timezone.now().replace(microsecond=0)
    video = link_create(creator=alice, url="https://shop.example/v", title="Video", tags=["youtube"])
    bio = link_create(creator=alice, url="https://shop.example/b", title="Bio")
    old = link_create(creator=alice, url="https://shop.example/o", title="Old promo")
    bobs = link_create(creator=bob, url="https://bob.example/", title="Bob's")
    conversions = []
    for n in range(6):
        visitor = new_visitor_id()
        _click(video, at=now - timedelta(days=n * 7 + 2), visitor_id=visitor)
        _click(bio, at=now - timedelta(days=n * 7 + 1, hours=12), visitor_id=visitor)
        _click(video, at=now - timedelta(days=n * 7 + 1), ua=GOOGLEBOT)
        with django_capture_on_commit_callbacks(execute=True):
            conversions.append(
                conversion_record(
                    creator=alice, event="purchase", source=Conversion.Source.TRACK, external_id=f"order-{n}", visitor_id=visitor,
                    amount=Decimal("33.33") * (n + 1), occurred_at=now - timedelta(days=n * 7 + 1),
                )[0]
            )
    _click(old, at=now - timedelta(days=3))
    link_archive(link=old)
    with django_capture_on_commit_callbacks(execute=True):
        conversion_record(creator=alice, event="signup", source=Conversion.Source.WHOP, visitor_id=new_visitor_id(), occurred_at=now - timedelta(days=2))
        bob_visitor = new_visitor_id()
        _click(bobs, at=now - timedelta(days=2), visitor_id=bob_visitor)
        conversion_record(creator=bob, event="purchase", source=Conversion.Source.TRACK, visitor_id=bob_visitor, amount=Decimal("999.00"), occurred_at=now - timedelta(days=1))
    conversion_refund(conversion=conversions[0], refunded_amount=Decimal("10.00"))
    rollups_run()
    _click(bio, at=now - timedelta(hours=2))  # not rolled up yet: exports read the rows themselves
    return {"video": video, "bio": bio, "old": old, "bobs": bobs, "now": now}


# --- every export ---------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["links", "clicks", "conversions"])
def test_an_export_is_a_streamed_csv_attachment(alice_client, shop, name):
    response = alice_client.get(f"/exports/{name}.csv")

    assert response.status_code == 200
    assert response.streaming is True
    assert response["Content-Type"] == "text/csv; charset=utf-8"
    assert response["Content-Disposition"] == f'attachment; filename="{name}.csv"'
    assert "no-store" in response["Cache-Control"]


# --- links ----------------------------------------------------------------------------------


def test_the_links_export_has_a_row_per_active_link(alice, alice_client, shop):
    rows = _rows(alice_client.get("/exports/links.csv"))

    assert len(rows) == Link.objects.filter(creator=alice, archived_at__isnull=True).count() == 2
    assert {row["title"] for row in rows} == {"Video", "Bio"}
    video = next(row for row in rows if row["title"] == "Video")
    assert (video["id"], video["short_id"], video["short_url"], video["url"], video["tags"], video["active"], video["archived"]) == (
        str(shop["video"].id), shop["video"].short_id, shop["video"].short_url, "https://shop.example/v", "youtube", "True", "False",
    )


@pytest.mark.parametrize(("filters", "titles"), [({"show": "all"}, {"Video", "Bio", "Old promo"}), ({"show": "archived"}, {"Old promo"}),
                                                  ({"q": "bio"}, {"Bio"}), ({"tag": "YouTube"}, {"Video"})])
def test_the_links_export_follows_the_list_filters(alice_client, shop, filters, titles):
    rows = _rows(alice_client.get("/exports/links.csv", filters))

    assert {row["title"] for row in rows} == titles


# --- clicks ---------------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["24h", "7d", "30d", "90d"])
def test_the_clicks_export_has_every_click_of_the_period_bots_included(alice, alice_client, shop, preset):
    period = reports.period_for(preset)

    rows = _rows(alice_client.get("/exports/clicks.csv", {"range": preset}))

    clicks = Click.objects.filter(creator=alice, occurred_at__gte=period.start, occurred_at__lt=period.end)
    assert len(rows) == clicks.count()
    assert {row["click_id"] for row in rows} == set(clicks.values_list("public_id", flat=True))
    assert sum(row["is_bot"] == "True" for row in rows) == clicks.filter(is_bot=True).count()


def test_the_clicks_export_of_a_link_has_only_that_links_clicks(alice, alice_client, shop):
    video = shop["video"]

    response = alice_client.get("/exports/clicks.csv", {"link": video.id, "range": "90d"})

    rows = _rows(response)
    assert len(rows) == Click.objects.filter(link=video).count() == 12
    assert {row["short_id"] for row in rows} == {video.short_id}
    first = Click.objects.filter(link=video).order_by("id").first()
    assert rows[0]["click_id"] == first.public_id
    assert rows[0]["occurred_at"] == first.occurred_at.isoformat()
    assert _header(alice_client.get("/exports/clicks.csv")) == CLICK_HEADER


def test_the_clicks_export_of_a_custom_period(alice, alice_client, shop):
    day = (shop["now"] - timedelta(days=2)).date()

    rows = _rows(alice_client.get("/exports/clicks.csv", {"range": "custom", "start": day, "end": day}))

    assert len(rows) == Click.objects.filter(creator=alice, occurred_at__date=day).count() > 0


# --- conversions ----------------------------------------------------------------------------


@pytest.mark.parametrize("preset", ["7d", "30d", "90d"])
def test_the_conversions_export_revenue_adds_up_to_the_credits_of_each_model(alice, alice_client, shop, preset):
    period = reports.period_for(preset)
    conversions = Conversion.objects.filter(creator=alice, occurred_at__gte=period.start, occurred_at__lt=period.end)

    for model in MODELS:
        rows = _rows(alice_client.get("/exports/conversions.csv", {"model": model, "range": preset}))

        credits = Credit.objects.filter(conversion__in=conversions, model=model)
        assert sum(Decimal(row["revenue"]) for row in rows if row["revenue"]) == credits.aggregate(r=Sum("revenue"))["r"]
        # A row per credit, and one for each conversion without any.
        assert len(rows) == credits.count() + conversions.filter(credits__isnull=True).count()
        assert {int(row["id"]) for row in rows} == set(conversions.values_list("id", flat=True))
        assert {row["model"] for row in rows} == {model}


def test_the_conversions_export_shows_amounts_refunds_and_the_split(alice_client, shop):
    rows = _rows(alice_client.get("/exports/conversions.csv", {"model": "linear", "range": "7d"}))

    refunded = [row for row in rows if row["external_id"] == "order-0"]
    assert {(row["amount"], row["refunded_amount"], row["currency"], row["confidence"]) for row in refunded} == {("33.33", "10.00", "USD", "93")}
    # 33.33 less 10.00 refunded, split in whole cents; the odd cent goes to the first touch.
    assert {row["short_id"]: row["revenue"] for row in refunded} == {shop["video"].short_id: "11.67", shop["bio"].short_id: "11.66"}
    assert sum(Decimal(row["weight"]) for row in refunded) == 1
    signup = next(row for row in rows if row["event"] == "signup")
    assert (signup["status"], signup["amount"], signup["short_id"], signup["revenue"], signup["confidence"]) == ("unattributed", "", "", "", "")


@pytest.mark.parametrize(("filters", "expected"), [({"status": "unattributed"}, {"signup"}), ({"status": "attributed"}, {"purchase"}),
                                                    ({"source": "whop"}, {"signup"}), ({"event": "purchase"}, {"purchase"})])
def test_the_conversions_export_follows_the_page_filters(alice, alice_client, shop, filters, expected):
    rows = _rows(alice_client.get("/exports/conversions.csv", {"range": "90d", **filters}))

    assert rows
    assert {row["event"] for row in rows} == expected
    listed = alice_client.get("/conversions/", {"range": "90d", **filters}).context["page"].paginator.count
    assert len({row["id"] for row in rows}) == listed


def test_the_conversions_export_of_a_link_has_only_its_credits(alice, alice_client, shop):
    bio = shop["bio"]

    rows = _rows(alice_client.get("/exports/conversions.csv", {"link": bio.id, "model": "last_touch", "range": "90d"}))

    credits = Credit.objects.filter(link=bio, model="last_touch")
    assert len(rows) == credits.count() == 6
    assert sum(Decimal(row["revenue"]) for row in rows) == credits.aggregate(r=Sum("revenue"))["r"]
    assert {row["short_id"] for row in rows} == {bio.short_id}
    # Under first touch the video opened every journey: nothing is credited to the bio link.
    assert _rows(alice_client.get("/exports/conversions.csv", {"link": bio.id, "model": "first_touch", "range": "90d"})) == []


def test_the_exports_answer_404_for_another_creators_link(bob_client, shop):
    for name in ("clicks", "conversions"):
        assert bob_client.get(f"/exports/{name}.csv", {"link": shop["video"].id}).status_code == 404


def test_bobs_exports_hold_only_his_rows(bob, bob_client, shop):
    links = _rows(bob_client.get("/exports/links.csv", {"show": "all"}))
    clicks = _rows(bob_client.get("/exports/clicks.csv", {"range": "90d"}))
    conversions = _rows(bob_client.get("/exports/conversions.csv", {"range": "90d"}))

    assert [row["title"] for row in links] == ["Bob's"]
    assert {row["short_id"] for row in clicks} == {shop["bobs"].short_id}
    assert len(clicks) == Click.objects.filter(creator=bob).count() == 1
    assert [(row["amount"], row["revenue"]) for row in conversions] == [("999.00", "999.00")]
