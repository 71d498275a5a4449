"""Delivering events: signed requests to a real receiver, retries with backoff, giving up,
switching off an endpoint that keeps failing, and bounded reads and timeouts."""

import time
from datetime import timedelta

import pytest
from django.core import mail
from django.utils import timezone

from allumi.integrations import services
from allumi.integrations.models import EventType, WebhookDelivery
from allumi.integrations.services import (
    endpoint_create,
    endpoint_disable,
    retry_delay,
    webhook_event_emit,
)
from allumi.integrations.tasks import deliver, deliver_due
from tests.integrations.conftest import Reply


def _emit(creator, django_capture_on_commit_callbacks, event_type=EventType.LINK_CREATED, data=None):
    with django_capture_on_commit_callbacks(execute=True):
        deliveries = webhook_event_emit(creator_id=creator.id, event_type=event_type, data=data or {"link": {"id": 7}})
    for delivery in deliveries:
        delivery.refresh_from_db()
    return deliveries


def _make_due(delivery, *, age: timedelta | None = None):
    """Move a delivery's next attempt into the past (and optionally its creation), as time would."""
    now = timezone.now()
    changes = {"next_attempt_at": now - timedelta(seconds=1)}
    if age is not None:
        changes["created_at"] = now - age
    WebhookDelivery.objects.filter(pk=delivery.pk).update(**changes)


# --- a signed delivery --------------------------------------------------------------------------


def test_an_event_arrives_signed_with_standard_webhooks_headers(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    endpoint, secret = alice_endpoint

    (delivery,) = _emit(alice, django_capture_on_commit_callbacks, data={"link": {"id": 7, "short_id": "abc"}})

    (request,) = receiver.requests
    body = request.verify(secret)
    assert body["type"] == "link.created" and body["data"] == {"link": {"id": 7, "short_id": "abc"}}
    assert body["timestamp"].endswith("Z")
    assert request.headers["webhook-id"] == delivery.event_id and delivery.event_id.startswith("evt_")
    assert abs(int(request.headers["webhook-timestamp"]) - time.time()) < 60
    assert request.headers["webhook-signature"].startswith("v1,")
    assert request.headers["content-type"] == "application/json"
    assert request.path == "/hooks/allumi"
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert delivery.attempts == 1 and delivery.last_status_code == 200 and delivery.response_excerpt == "ok"
    assert delivery.next_attempt_at is None and delivery.delivered_at is not None


def test_a_signature_made_with_another_secret_does_not_verify(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    from standardwebhooks.webhooks import WebhookVerificationError

    _emit(alice, django_capture_on_commit_callbacks)

    with pytest.raises(WebhookVerificationError):
        receiver.requests[0].verify(services._new_secret())


def test_each_subscribed_endpoint_gets_the_event_with_one_event_id(alice, receiver, allow_private, django_capture_on_commit_callbacks):
    _, first_secret = endpoint_create(creator=alice, url=receiver.url("/one"), events=[EventType.LINK_CREATED])
    _, second_secret = endpoint_create(creator=alice, url=receiver.url("/two"), events=EventType.values)
    endpoint_create(creator=alice, url=receiver.url("/conversions-only"), events=[EventType.CONVERSION_CREATED])

    deliveries = _emit(alice, django_capture_on_commit_callbacks)

    assert sorted(request.path for request in receiver.requests) == ["/one", "/two"]
    assert len({delivery.event_id for delivery in deliveries}) == 1
    by_path = {request.path: request for request in receiver.requests}
    assert by_path["/one"].verify(first_secret) == by_path["/two"].verify(second_secret)


def test_disabled_endpoints_and_other_creators_get_nothing(alice, bob, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = alice_endpoint
    endpoint_create(creator=bob, url=receiver.url("/bob"), events=EventType.values)
    endpoint_disable(endpoint=endpoint)

    assert _emit(alice, django_capture_on_commit_callbacks) == []
    assert receiver.requests == []


def test_the_secret_is_stored_encrypted(alice_endpoint):
    endpoint, secret = alice_endpoint

    assert secret.startswith("whsec_") and len(secret) > 40
    assert secret not in endpoint.secret_encrypted
    assert endpoint.secret == secret
    assert endpoint.secret_hint == secret[-4:]


def test_a_creator_has_at_most_ten_endpoints(alice, bob, receiver, allow_private):
    from django.core.exceptions import ValidationError

    for n in range(services.MAX_ENDPOINTS_PER_CREATOR):
        endpoint_create(creator=alice, url=receiver.url(f"/{n}"), events=[EventType.LINK_CREATED])

    with pytest.raises(ValidationError, match="at most 10"):
        endpoint_create(creator=alice, url=receiver.url("/one-more"), events=[EventType.LINK_CREATED])
    assert endpoint_create(creator=bob, url=receiver.url("/bob"), events=[EventType.LINK_CREATED])


# --- retries --------------------------------------------------------------------------------------


def test_a_failing_endpoint_is_retried_with_growing_delays_until_it_answers(
    alice, alice_endpoint, receiver, django_capture_on_commit_callbacks
):
    endpoint, secret = alice_endpoint
    receiver.reply(Reply(status=500, body=b"down"), Reply(status=503), Reply(status=500), Reply(status=502))

    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)
    delays = []
    while delivery.status == WebhookDelivery.Status.FAILED and len(delays) < 10:
        assert delivery.last_status_code >= 500 and delivery.last_error.startswith("HTTP 5")
        delays.append((delivery.next_attempt_at - delivery.last_attempt_at).total_seconds())
        _make_due(delivery)
        assert deliver_due() == 1
        delivery.refresh_from_db()

    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert delivery.attempts == 5 and delivery.last_status_code == 200 and delivery.last_error == ""
    # 30 s doubling, each within ±20 % jitter
    for delay, base in zip(delays, [30, 60, 120, 240], strict=True):
        assert base * 0.79 <= delay <= base * 1.21
    assert delays == sorted(delays)
    # every attempt was the same event, freshly signed
    assert {request.headers["webhook-id"] for request in receiver.requests} == {delivery.event_id}
    assert [request.verify(secret)["type"] for request in receiver.requests] == ["link.created"] * 5
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0


def test_the_retry_schedule_covers_more_than_a_day_and_stops_at_26_hours():
    elapsed = timedelta(0)
    attempts = 0
    while elapsed < services.RETRY_WINDOW:
        attempts += 1
        delay = retry_delay(attempts=attempts)
        assert delay <= services.RETRY_MAX_DELAY * 1.2
        elapsed = min(elapsed + delay, services.RETRY_WINDOW)
    assert 12 <= attempts <= 16
    assert retry_delay(attempts=1) <= timedelta(seconds=36)
    assert timedelta(hours=4.8) <= retry_delay(attempts=40) <= timedelta(hours=7.2)


def test_a_retry_never_lands_after_the_window(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.default = Reply(status=500)
    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=12, created_at=timezone.now() - timedelta(hours=25, minutes=50))
    delivery.refresh_from_db()

    deliver(delivery.pk, 12)

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.next_attempt_at == delivery.created_at + services.RETRY_WINDOW


def test_a_delivery_still_failing_after_26_hours_is_given_up(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = alice_endpoint
    receiver.default = Reply(status=500)
    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)

    _make_due(delivery, age=services.RETRY_WINDOW + timedelta(minutes=1))
    deliver_due()

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.GIVEN_UP
    assert delivery.next_attempt_at is None and delivery.attempts == 2
    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 1 and endpoint.is_active
    assert deliver_due() == 0


def test_an_endpoint_failing_every_delivery_for_a_day_is_disabled_and_its_creator_told(
    alice, alice_endpoint, receiver, django_capture_on_commit_callbacks
):
    endpoint, _ = alice_endpoint
    receiver.default = Reply(status=500)
    deliveries = [_emit(alice, django_capture_on_commit_callbacks)[0] for _ in range(services.AUTO_DISABLE_AFTER + 1)]
    mail.outbox.clear()

    with django_capture_on_commit_callbacks(execute=True):
        for delivery in deliveries[:-1]:
            _make_due(delivery, age=services.RETRY_WINDOW + timedelta(minutes=1))
        deliver_due()

    endpoint.refresh_from_db()
    assert not endpoint.is_active
    assert "10 deliveries in a row failed" in endpoint.disabled_reason
    assert endpoint.consecutive_failures == services.AUTO_DISABLE_AFTER
    (message,) = mail.outbox
    assert message.to == ["alice@example.com"]
    assert endpoint.url in message.body
    assert f"https://allumi.example/settings/integrations/{endpoint.pk}/" in message.body
    # the one still retrying is given up with the endpoint, and nothing more is sent
    last = deliveries[-1]
    last.refresh_from_db()
    assert last.status == WebhookDelivery.Status.GIVEN_UP and last.last_error == "The endpoint was disabled."
    sent = len(receiver.requests)
    assert _emit(alice, django_capture_on_commit_callbacks) == []
    assert deliver_due() == 0 and len(receiver.requests) == sent


def test_a_success_resets_the_count_of_failed_deliveries(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    endpoint, _ = alice_endpoint
    endpoint.consecutive_failures = services.AUTO_DISABLE_AFTER - 1
    endpoint.save(update_fields=["consecutive_failures"])

    _emit(alice, django_capture_on_commit_callbacks)

    endpoint.refresh_from_db()
    assert endpoint.consecutive_failures == 0 and endpoint.is_active


# --- bounded reads and timeouts --------------------------------------------------------------------


def test_an_oversized_answer_is_read_only_so_far_and_kept_short(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.reply(Reply(status=200, body=b"<html>" + b"y" * 5_000_000))

    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)

    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert delivery.response_excerpt.startswith("<html>yyy")
    assert len(delivery.response_excerpt) == services.RESPONSE_EXCERPT_CHARS


def test_an_endless_answer_does_not_hold_the_worker(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    receiver.reply(Reply(status=200, endless=True))

    started = time.monotonic()
    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)

    assert time.monotonic() - started < 3
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert len(delivery.response_excerpt) == services.RESPONSE_EXCERPT_CHARS


def test_the_post_reads_at_most_the_limit(receiver, allow_private):
    from allumi.integrations import ssrf

    receiver.reply(Reply(status=200, endless=True))
    target = ssrf.target_check(receiver.url())

    response = ssrf.post(
        target, body=b"{}", headers={}, connect_timeout=1, read_timeout=1, total_timeout=5, max_response_bytes=services.RESPONSE_READ_LIMIT
    )

    assert response.status == 200 and len(response.body) == services.RESPONSE_READ_LIMIT and response.truncated


def test_a_receiver_slower_than_the_read_timeout_fails_the_attempt(
    alice, alice_endpoint, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "READ_TIMEOUT", 0.3)
    receiver.reply(Reply(status=200, delay=2))

    started = time.monotonic()
    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)

    assert time.monotonic() - started < 1.5
    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error.startswith("Timed out") and delivery.last_status_code is None
    assert delivery.next_attempt_at > timezone.now()


def test_a_receiver_dripping_its_answer_is_cut_at_the_total_timeout(
    alice, alice_endpoint, receiver, monkeypatch, django_capture_on_commit_callbacks
):
    monkeypatch.setattr(services, "READ_TIMEOUT", 0.5)
    monkeypatch.setattr(services, "TOTAL_TIMEOUT", 1.0)
    receiver.reply(Reply(status=200, drip=0.05))  # every read succeeds; the whole never ends in time

    started = time.monotonic()
    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)

    assert time.monotonic() - started < 2.5
    # the status line came in time; the body was cut short and the attempt still counts
    assert delivery.last_status_code == 200


def test_a_closed_port_fails_the_attempt_quickly(alice, receiver, allow_private, django_capture_on_commit_callbacks):
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        closed_port = probe.getsockname()[1]
    endpoint_create(creator=alice, url=f"http://127.0.0.1:{closed_port}/hook", events=[EventType.LINK_CREATED])

    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)

    assert delivery.status == WebhookDelivery.Status.FAILED
    assert delivery.last_error == "Connection refused."


# --- emitting ------------------------------------------------------------------------------------


def test_emitting_the_same_keyed_event_twice_makes_one_delivery(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        first = webhook_event_emit(creator_id=alice.id, event_type=EventType.CONVERSION_REFUNDED, data={"n": 1}, key="42:10.00")
        second = webhook_event_emit(creator_id=alice.id, event_type=EventType.CONVERSION_REFUNDED, data={"n": 1}, key="42:10.00")

    assert len(first) == 1 and second == []
    assert WebhookDelivery.objects.count() == 1 and len(receiver.requests) == 1


def test_a_payload_that_cannot_be_built_never_breaks_the_caller(alice, alice_endpoint, receiver, caplog):
    def _broken():
        raise RuntimeError("bug in a payload")

    assert webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data=_broken) == []
    assert "could not queue link.created webhooks" in caplog.text
    assert not WebhookDelivery.objects.exists()


def test_a_secret_that_cannot_be_decrypted_fails_the_attempt_instead_of_the_task(
    alice, alice_endpoint, receiver, settings, django_capture_on_commit_callbacks
):
    settings.SECRET_KEY = "another-secret-key-after-a-rotation-" + "x" * 20

    (delivery,) = _emit(alice, django_capture_on_commit_callbacks)

    assert delivery.status == WebhookDelivery.Status.FAILED
    assert "another SECRET_KEY" in delivery.last_error
    assert receiver.requests == []
