"""Events from the rest of Allumi arrive at a creator's endpoint, signed: a link made on the
dashboard, a click, a sale through the track API, its attribution and its refund."""

from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from allumi.integrations.models import EventType, WebhookDelivery
from allumi.integrations.services import endpoint_create
from attribution.conversions import attribution_settings_for, conversion_record, conversion_refund
from attribution.models import Conversion
from links.services import link_create

BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
TRACK = "/api/v1/conversions/track"


def _visit(link, flush) -> str:
    """A person follows the short link; returns their click id."""
    response = Client().get(f"/l/{link.short_id}", HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="81.2.69.142")
    flush()
    return parse_qs(urlsplit(response["Location"]).query)["allumi_cid"][0]


def test_a_link_made_on_the_dashboard_sends_link_created(alice_client, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    _, secret = alice_endpoint

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            "/links/new/", {"url": "https://shop.example/course", "title": "Launch video", "utm_source": "youtube", "tags": "launch", "pass_click_id": "on"}
        )

    assert response.status_code == 302
    (event,) = receiver.events(secret)
    link = event["data"]["link"]
    assert event["type"] == "link.created"
    assert link["url"] == "https://shop.example/course" and link["title"] == "Launch video"
    assert link["short_url"] == f"https://allumi.example/l/{link['short_id']}"
    assert link["destination"] == "https://shop.example/course?utm_source=youtube"
    assert link["utm"] == {"utm_source": "youtube"} and link["tags"] == ["launch"]
    assert link["created_at"].endswith("Z")


def test_a_sale_through_the_track_api_sends_created_then_attributed_then_refunded(
    alice, alice_api, alice_endpoint, receiver, flush, django_capture_on_commit_callbacks
):
    _, secret = alice_endpoint
    with django_capture_on_commit_callbacks(execute=True):
        link = link_create(creator=alice, url="https://shop.example/course", title="Launch video")
    click_id = _visit(link, flush)

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.post(
            TRACK,
            {"event": "purchase", "external_id": "order-1001", "click_id": click_id, "amount": "49.00", "currency": "usd", "email": "Fan@Example.com"},
            format="json",
        )
    assert response.status_code == 202
    conversion = Conversion.objects.get(external_id="order-1001")

    with django_capture_on_commit_callbacks(execute=True):
        conversion_refund(conversion=conversion, refunded_amount=Decimal("19"))

    events = receiver.events(secret)
    assert [event["type"] for event in events] == ["link.created", "conversion.created", "conversion.attributed", "conversion.refunded"]
    created, attributed, refunded = events[1:]
    assert created["data"]["conversion"]["id"] == conversion.pk
    assert created["data"]["conversion"]["external_id"] == "order-1001"
    assert created["data"]["conversion"]["amount"] == "49.00" and created["data"]["conversion"]["currency"] == "USD"
    assert created["data"]["conversion"]["email"] == "fan@example.com"
    assert created["data"]["conversion"]["click_id"] == click_id
    assert created["data"]["conversion"]["status"] == "pending"

    conversion.refresh_from_db()
    assert attributed["data"]["conversion"]["status"] == "attributed"
    assert attributed["data"]["attribution"] == {
        "model": "last_touch",
        "confidence": 97,
        "method": "click_id",
        "identity_id": conversion.identity_id,
        "attributed_at": attributed["data"]["attribution"]["attributed_at"],
        "credits": [{"link_id": link.pk, "short_id": link.short_id, "weight": "1.000000", "revenue": "49.00"}],
    }
    assert conversion.identity_id is not None

    assert refunded["data"]["conversion"]["refunded_amount"] == "19.00"
    assert refunded["data"]["conversion"]["net_amount"] == "30.00"
    assert refunded["data"]["attribution"]["credits"][0]["revenue"] == "30.00"
    # each event has its own id, and every one was delivered
    assert len({request.headers["webhook-id"] for request in receiver.requests}) == 4
    assert set(WebhookDelivery.objects.values_list("status", flat=True)) == {WebhookDelivery.Status.DELIVERED}


def test_credits_follow_the_creators_default_model(alice, alice_endpoint, receiver, flush, django_capture_on_commit_callbacks):
    _, secret = alice_endpoint
    prefs = attribution_settings_for(alice.id)
    prefs.default_model = "linear"
    prefs.save()
    video = link_create(creator=alice, url="https://shop.example/a", title="video")
    bio = link_create(creator=alice, url="https://shop.example/b", title="bio")
    visitor = Client()
    visitor.get(f"/l/{video.short_id}", HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="81.2.69.142")
    answer = visitor.get(f"/l/{bio.short_id}", HTTP_USER_AGENT=BROWSER, REMOTE_ADDR="81.2.69.142")
    flush()
    click_id = parse_qs(urlsplit(answer["Location"]).query)["allumi_cid"][0]

    with django_capture_on_commit_callbacks(execute=True):
        conversion_record(creator=alice, event="purchase", source=Conversion.Source.TRACK, click_id=click_id, amount=Decimal("10.00"))

    (attributed,) = [event for event in receiver.events(secret) if event["type"] == "conversion.attributed"]
    assert attributed["data"]["attribution"]["model"] == "linear"
    credits = {credit["short_id"]: (credit["weight"], credit["revenue"]) for credit in attributed["data"]["attribution"]["credits"]}
    assert credits == {video.short_id: ("0.500000", "5.00"), bio.short_id: ("0.500000", "5.00")}


def test_an_unattributed_conversion_sends_no_attributed_event(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    _, secret = alice_endpoint

    with django_capture_on_commit_callbacks(execute=True):
        conversion_record(creator=alice, event="signup", source=Conversion.Source.TRACK, email="stranger@example.com")

    assert [event["type"] for event in receiver.events(secret)] == ["conversion.created"]


def test_a_conversion_recorded_twice_is_sent_once(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    _, secret = alice_endpoint

    with django_capture_on_commit_callbacks(execute=True):
        conversion_record(creator=alice, event="purchase", source=Conversion.Source.TRACK, external_id="order-7", amount=Decimal("5"))
        conversion_record(creator=alice, event="purchase", source=Conversion.Source.TRACK, external_id="order-7", amount=Decimal("5"))

    assert [event["type"] for event in receiver.events(secret)] == ["conversion.created"]


def test_the_same_refund_reported_twice_is_sent_once(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    _, secret = alice_endpoint
    with django_capture_on_commit_callbacks(execute=True):
        conversion, _ = conversion_record(creator=alice, event="purchase", source=Conversion.Source.TRACK, amount=Decimal("20.00"))

    with django_capture_on_commit_callbacks(execute=True):
        conversion_refund(conversion=conversion, refunded_amount=Decimal("5.00"))
        conversion_refund(conversion=conversion, refunded_amount=Decimal("5"))
        conversion_refund(conversion=conversion, refunded_amount=Decimal("20.00"))

    refunds = [event["data"]["conversion"]["refunded_amount"] for event in receiver.events(secret) if event["type"] == "conversion.refunded"]
    assert refunds == ["5.00", "20.00"]


@pytest.mark.parametrize("subscribed", [[EventType.LINK_CREATED], [EventType.CONVERSION_CREATED, EventType.CONVERSION_REFUNDED]])
def test_an_endpoint_gets_only_the_events_it_subscribed_to(alice, receiver, allow_private, subscribed, django_capture_on_commit_callbacks):
    _, secret = endpoint_create(creator=alice, url=receiver.url(), events=subscribed)

    with django_capture_on_commit_callbacks(execute=True):
        link_create(creator=alice, url="https://shop.example/a")
        conversion, _ = conversion_record(creator=alice, event="purchase", source=Conversion.Source.TRACK, amount=Decimal("20.00"))
        conversion_refund(conversion=conversion, refunded_amount=Decimal("20.00"))

    assert [event["type"] for event in receiver.events(secret)] == [str(event) for event in subscribed]


def test_bobs_events_never_reach_alices_endpoint(alice, bob, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        link_create(creator=bob, url="https://bob.example/")
        conversion_record(creator=bob, event="purchase", source=Conversion.Source.TRACK, amount=Decimal("20.00"))

    assert receiver.requests == []
    assert not WebhookDelivery.objects.exists()


def test_without_endpoints_nothing_is_queued(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        link_create(creator=alice, url="https://shop.example/a")

    assert not WebhookDelivery.objects.exists()
