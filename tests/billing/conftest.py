"""Fixtures of the Whop tests: alice's (and bob's) Whop connection, signed deliveries, real clicks."""

from unittest import mock
from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from billing.models import WhopEvent
from billing.services import whop_connection_create
from billing.tasks import MAX_ATTEMPTS, process_whop_event
from links.services import link_create
from tests.billing.whop import BOB_SECRET, BROWSER, SECRET, encode, payment, signed_headers


@pytest.fixture
def connection(alice):
    return whop_connection_create(creator=alice, signing_secret=SECRET)


@pytest.fixture
def bob_connection(bob):
    return whop_connection_create(creator=bob, signing_secret=BOB_SECRET)


@pytest.fixture
def webhook_client():
    """A client of its own for Whop's deliveries, apart from the browser and the dashboard."""
    return Client()


@pytest.fixture
def post_webhook(webhook_client, django_capture_on_commit_callbacks):
    """POST raw `body` with `headers` to `path`, then run what the delivery queued on commit."""

    def _post(path: str, body: bytes, headers: dict, **extra):
        with django_capture_on_commit_callbacks(execute=True):
            return webhook_client.post(path, data=body, content_type="application/json", headers=headers, **extra)

    return _post


@pytest.fixture
def deliver(post_webhook, connection):
    """Deliver a payload (dict or raw bytes) to alice's endpoint, signed now with her secret."""

    def _deliver(payload, *, secret: str = SECRET, webhook_id: str | None = None, timestamp: int | None = None, **extra):
        body = encode(payload)
        headers = signed_headers(secret, body, webhook_id=webhook_id, timestamp=timestamp)
        return post_webhook(connection.webhook_path, body, headers, **extra)

    return _deliver


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/growth-lab", title="YouTube video")


@pytest.fixture
def second_link(alice):
    return link_create(creator=alice, url="https://shop.example/growth-lab?from=bio", title="Bio")


@pytest.fixture
def follow(client, flush):
    """Follow a short link as a person's browser; returns the click id the destination received."""

    def _follow(link, **headers) -> str:
        headers.setdefault("HTTP_USER_AGENT", BROWSER)
        response = client.get(f"/l/{link.short_id}", **headers)
        assert response.status_code == 302
        flush()
        return parse_qs(urlsplit(response["Location"]).query)["allumi_cid"][0]

    return _follow


@pytest.fixture
def worker_retries():
    """Eager Celery retrying as a worker does (at once, countdowns aside) instead of raising the retry
    to the caller, which is what eager tasks do while they propagate exceptions."""
    conf = process_whop_event.app.conf
    before = conf.task_eager_propagates
    conf.update(task_eager_propagates=False)
    yield
    conf.update(task_eager_propagates=before)


@pytest.fixture
def failing_payment(deliver, worker_retries):
    """A payment delivery whose every processing attempt fails (a bug or an outage), retries included."""
    with mock.patch("billing.services.payment_record", autospec=True, side_effect=RuntimeError("boom")) as record:
        response = deliver(payment(), webhook_id="msg_failing_payment_0001")
    assert response.status_code == 200  # stored and answered before processing
    assert record.call_count == MAX_ATTEMPTS + 1
    return WhopEvent.objects.get(webhook_id="msg_failing_payment_0001")
