"""`POST /webhooks/whop/<token>`: verify, store the raw delivery once, answer 2xx, process later.

Deliveries are the shared sample bodies, signed at test time with the connection's secret.
"""

import json
import threading
import time

import pytest
from django.db import connection as db_connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from attribution.models import Conversion
from billing.models import WhopConnection, WhopEvent
from billing.webhooks import MAX_BODY_BYTES
from tests.billing.whop import (
    BOB_SECRET,
    PAYMENT_ID,
    SECRET,
    assert_error,
    legacy_headers,
    legacy_signature,
    new_webhook_id,
    payment,
    sample,
    sample_bytes,
    signed_headers,
    standard_signature,
)


def _nothing_stored():
    assert not WhopEvent.objects.exists()
    assert not Conversion.objects.exists()


# --- a genuine delivery -----------------------------------------------------------------------


def test_a_genuine_delivery_is_answered_200_and_stored_raw_once(deliver, connection, alice):
    body = sample_bytes("payment.succeeded")

    response = deliver(body, webhook_id="msg_2kQmX8cT1vLp9aaaaaaaaaaa")

    assert response.status_code == 200
    assert response.json()["status"] == "received"
    event = WhopEvent.objects.get()
    assert response.json()["id"] == event.id
    assert event.body.encode("utf-8") == body
    assert event.headers["webhook-id"] == "msg_2kQmX8cT1vLp9aaaaaaaaaaa"
    assert event.headers["webhook-timestamp"].isdigit()
    assert event.headers["content-type"] == "application/json"
    assert event.webhook_id == "msg_2kQmX8cT1vLp9aaaaaaaaaaa"
    assert event.endpoint == f"creator:{alice.pk}" and event.connection == connection
    assert (event.event_type, event.object_id) == ("payment.succeeded", PAYMENT_ID)


def test_a_genuine_delivery_is_processed_into_one_conversion(deliver, connection):
    deliver(sample_bytes("payment.succeeded"))

    event = WhopEvent.objects.get()
    assert event.status == WhopEvent.Status.PROCESSED
    assert event.attempts == 1 and event.last_error == "" and event.processed_at is not None
    assert Conversion.objects.get().external_id == PAYMENT_ID
    connection.refresh_from_db()
    assert connection.last_delivery_at == event.received_at


def test_a_second_delivery_within_a_minute_does_not_write_the_connection_again(deliver, connection):
    deliver(payment(id="pay_first0001"))
    first = WhopEvent.objects.get()

    with CaptureQueriesContext(db_connection) as queries:
        assert deliver(payment(id="pay_second0002")).status_code == 200

    assert not [q["sql"] for q in queries.captured_queries if q["sql"].startswith('UPDATE "billing_whopconnection"')]
    connection.refresh_from_db()
    assert connection.last_delivery_at == first.received_at


def test_it_keeps_a_non_ascii_body_byte_for_byte(deliver):
    body = json.dumps(payment(user={"id": "user_Zo3", "email": "zoe@example.org", "name": "Zoë Æsir — ☕"}), ensure_ascii=False)
    body = ("\n  " + body.replace(", ", ",\t") + "\n").encode("utf-8")

    response = deliver(body)

    assert response.status_code == 200
    assert WhopEvent.objects.get().body.encode("utf-8") == body


# --- signatures -------------------------------------------------------------------------------


def test_a_tampered_body_is_401_and_nothing_is_stored(post_webhook, connection):
    body = sample_bytes("payment.succeeded")
    headers = signed_headers(SECRET, body)

    response = post_webhook(connection.webhook_path, body.replace(b"49.0", b"4900.0"), headers)

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


def test_a_delivery_signed_with_another_secret_is_401(deliver):
    response = deliver(sample_bytes("payment.succeeded"), secret="ws_not_alices_secret")

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


def test_bobs_secret_does_not_open_alices_endpoint(deliver, bob_connection):
    response = deliver(sample_bytes("payment.succeeded"), secret=BOB_SECRET)

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


@pytest.mark.parametrize("offset", [-301, 301, -3600, 86400], ids=["stale", "future", "an-hour-old", "a-day-ahead"])
def test_a_timestamp_outside_five_minutes_is_401(deliver, offset):
    response = deliver(sample_bytes("payment.succeeded"), timestamp=int(time.time()) + offset)

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


@pytest.mark.parametrize("offset", [-290, 290])
def test_a_timestamp_inside_five_minutes_is_accepted(deliver, offset):
    response = deliver(sample_bytes("payment.succeeded"), timestamp=int(time.time()) + offset)

    assert response.status_code == 200
    assert WhopEvent.objects.count() == 1


@pytest.mark.parametrize("missing", [["webhook-signature"], ["webhook-id"], ["webhook-timestamp"], ["webhook-id", "webhook-timestamp", "webhook-signature"]])
def test_missing_headers_are_401(post_webhook, connection, missing):
    body = sample_bytes("payment.succeeded")
    headers = {name: value for name, value in signed_headers(SECRET, body).items() if name not in missing}

    response = post_webhook(connection.webhook_path, body, headers)

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


def test_a_non_numeric_timestamp_is_401(post_webhook, connection):
    body = sample_bytes("payment.succeeded")
    headers = signed_headers(SECRET, body, timestamp="yesterday")

    response = post_webhook(connection.webhook_path, body, headers)

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


def test_one_valid_signature_among_several_is_enough(post_webhook, connection):
    body = sample_bytes("payment.succeeded")
    headers = signed_headers(SECRET, body)
    wrong_but_well_formed = standard_signature("ws_rotated_out_secret", headers["webhook-id"], headers["webhook-timestamp"], body)
    headers["webhook-signature"] = f"v1,garbage {wrong_but_well_formed} v1,%%% {headers['webhook-signature']}"

    response = post_webhook(connection.webhook_path, body, headers)

    assert response.status_code == 200
    assert WhopEvent.objects.count() == 1


@pytest.mark.parametrize(
    "signature",
    ["v1,garbage", "v1,", "garbage", "v1,AAAA v1,%%%", "v1a,{valid}", "v2,{valid}", "{valid_base64}"],
    ids=["garbage", "empty", "no-version", "short-and-broken", "v1a-prefix", "v2-prefix", "no-prefix"],
)
def test_signatures_that_are_not_a_valid_v1_entry_are_401(post_webhook, connection, signature):
    body = sample_bytes("payment.succeeded")
    headers = signed_headers(SECRET, body)
    valid = headers["webhook-signature"].removeprefix("v1,")
    headers["webhook-signature"] = signature.format(valid=valid, valid_base64=valid)

    response = post_webhook(connection.webhook_path, body, headers)

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


def test_a_valid_legacy_signature_is_accepted(post_webhook, connection):
    body = sample_bytes("payment.succeeded")

    response = post_webhook(connection.webhook_path, body, legacy_headers(SECRET, body))

    assert response.status_code == 200
    event = WhopEvent.objects.get()
    assert event.body.encode() == body
    assert event.webhook_id  # the envelope id stands in for the missing webhook-id
    assert event.status == WhopEvent.Status.PROCESSED
    assert Conversion.objects.get().external_id == PAYMENT_ID


@pytest.mark.parametrize(
    "header",
    [
        "t={now},v1={wrong}",
        "t={stale},v1={stale_sig}",
        "t={future},v1={future_sig}",
        "v1={valid}",
        "t={now}",
        "t=soon,v1={valid}",
        "",
    ],
    ids=["wrong-secret", "stale", "future", "no-timestamp", "no-signature", "bad-timestamp", "empty"],
)
def test_an_invalid_legacy_signature_is_401(post_webhook, connection, header):
    body = sample_bytes("payment.succeeded")
    now = int(time.time())
    values = {
        "now": now,
        "stale": now - 301,
        "future": now + 301,
        "wrong": legacy_signature("ws_not_alices_secret", now, body),
        "valid": legacy_signature(SECRET, now, body),
        "stale_sig": legacy_signature(SECRET, now - 301, body),
        "future_sig": legacy_signature(SECRET, now + 301, body),
    }

    response = post_webhook(connection.webhook_path, body, {"x-whop-signature": header.format(**values)})

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


def test_a_legacy_signature_over_a_tampered_body_is_401(post_webhook, connection):
    body = sample_bytes("payment.succeeded")
    headers = legacy_headers(SECRET, body)

    response = post_webhook(connection.webhook_path, body.replace(b"49.0", b"4.0"), headers)

    assert_error(response, 401, "invalid_signature")
    _nothing_stored()


# --- routing, size, shape ---------------------------------------------------------------------


@pytest.mark.parametrize("token", ["no-such-token", "x" * 64])
def test_an_unknown_token_is_404(post_webhook, connection, token):
    body = sample_bytes("payment.succeeded")

    response = post_webhook(f"/webhooks/whop/{token}", body, signed_headers(SECRET, body))

    assert_error(response, 404, "unknown_endpoint")
    _nothing_stored()


def test_a_body_over_256_kb_is_413_and_nothing_is_stored(deliver):
    payload = payment()
    payload["data"]["metadata"]["note"] = ""
    filler = MAX_BODY_BYTES + 1 - len(json.dumps(payload).encode())
    payload["data"]["metadata"]["note"] = "x" * filler
    body = json.dumps(payload).encode()
    assert len(body) == 256 * 1024 + 1

    response = deliver(body)

    assert_error(response, 413, "payload_too_large")
    _nothing_stored()


def test_a_body_of_exactly_256_kb_is_accepted(deliver):
    payload = payment()
    payload["data"]["metadata"]["note"] = ""
    payload["data"]["metadata"]["note"] = "x" * (MAX_BODY_BYTES - len(json.dumps(payload).encode()))
    body = json.dumps(payload).encode()
    assert len(body) == 256 * 1024

    response = deliver(body)

    assert response.status_code == 200
    assert WhopEvent.objects.get().body.encode() == body


@pytest.mark.parametrize(
    "body",
    [
        b'{"type": "payment.succeeded", "data": {"id": "pay_1"',
        b"not json at all",
        b"",
        b"[]",
        b'"payment.succeeded"',
        b'{"data": {"id": "pay_1"}}',
        b'{"type": 42, "data": {}}',
        b'{"type": "payment.succeeded", "data": ["pay_1"]}',
    ],
    ids=["truncated", "text", "empty", "array", "string", "no-type", "numeric-type", "data-not-object"],
)
def test_a_correctly_signed_malformed_body_is_400_and_nothing_is_stored(deliver, body):
    response = deliver(body)

    assert_error(response, 400, "malformed_body")
    _nothing_stored()


def test_a_correctly_signed_body_that_is_not_utf8_is_400_not_401(deliver):
    # The signature is genuine: the body, not the signature, is what is wrong with this delivery.
    body = json.dumps(payment()).encode("utf-16")

    response = deliver(body)

    assert_error(response, 400, "malformed_body")
    _nothing_stored()


# --- one delivery, one conversion -------------------------------------------------------------


def test_the_same_delivery_twice_is_2xx_both_times_and_one_event(deliver):
    body = sample_bytes("payment.succeeded")

    first = deliver(body, webhook_id="msg_same_delivery_000001")
    second = deliver(body, webhook_id="msg_same_delivery_000001")

    assert 200 <= first.status_code < 300 and 200 <= second.status_code < 300
    assert WhopEvent.objects.count() == 1
    assert Conversion.objects.count() == 1
    assert WhopEvent.objects.get().status == WhopEvent.Status.PROCESSED


def test_the_same_payment_under_a_new_webhook_id_is_one_conversion(deliver):
    body = sample_bytes("payment.succeeded")

    first = deliver(body, webhook_id=new_webhook_id())
    second = deliver(body, webhook_id=new_webhook_id())

    assert first.status_code == second.status_code == 200
    assert WhopEvent.objects.count() == 2
    assert set(WhopEvent.objects.values_list("status", flat=True)) == {WhopEvent.Status.PROCESSED}
    assert Conversion.objects.filter(external_id=PAYMENT_ID).count() == 1


def test_the_same_webhook_id_at_two_creators_is_two_deliveries(deliver, post_webhook, bob_connection):
    body = sample_bytes("payment.succeeded")

    deliver(body, webhook_id="msg_shared_000000000001")
    post_webhook(bob_connection.webhook_path, body, signed_headers(BOB_SECRET, body, webhook_id="msg_shared_000000000001"))

    assert WhopEvent.objects.count() == 2
    assert sorted(Conversion.objects.values_list("creator__email", flat=True)) == ["alice@example.com", "bob@example.com"]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_ten_concurrent_deliveries_of_one_webhook_are_one_event_and_one_conversion(connection):
    body = sample_bytes("payment.succeeded")
    headers = signed_headers(SECRET, body, webhook_id="msg_concurrent_00000001")
    threads_count = 10
    barrier = threading.Barrier(threads_count)
    statuses, errors = [], []

    def _worker():
        try:
            client = Client()
            barrier.wait(timeout=10)
            response = client.post(connection.webhook_path, data=body, content_type="application/json", headers=headers)
            statuses.append(response.status_code)
        except Exception as error:  # reported below, with the thread's own failure
            errors.append(error)
        finally:
            db_connection.close()

    threads = [threading.Thread(target=_worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert len(statuses) == threads_count
    assert all(200 <= status < 300 for status in statuses), statuses
    assert WhopEvent.objects.count() == 1
    assert WhopEvent.objects.get().status == WhopEvent.Status.PROCESSED
    assert Conversion.objects.filter(external_id=PAYMENT_ID).count() == 1
    assert WhopConnection.objects.get().last_delivery_at is not None


# --- rate limit on failed signatures ----------------------------------------------------------


@pytest.fixture
def small_limit(settings):
    # Per hour, so that a window boundary never falls inside the test.
    settings.RATELIMIT_ENABLE = True
    settings.RATELIMITS = {**settings.RATELIMITS, "webhook_failures": "3/h"}


def test_too_many_bad_signatures_from_one_address_are_429_with_retry_after(deliver, small_limit):
    body = sample_bytes("payment.succeeded")

    answers = [deliver(body, secret="ws_guess", REMOTE_ADDR="203.0.113.7") for _ in range(5)]

    assert [response.status_code for response in answers] == [401, 401, 401, 429, 429]
    limited = assert_error(answers[-1], 429, "rate_limited")
    assert limited["message"]
    assert int(answers[-1]["Retry-After"]) > 0
    _nothing_stored()


def test_a_genuine_delivery_right_after_the_limit_is_still_accepted(deliver, small_limit):
    body = sample_bytes("payment.succeeded")
    for _ in range(5):
        deliver(body, secret="ws_guess", REMOTE_ADDR="203.0.113.7")

    response = deliver(body, REMOTE_ADDR="203.0.113.7")

    assert response.status_code == 200
    assert WhopEvent.objects.get().status == WhopEvent.Status.PROCESSED
    assert Conversion.objects.count() == 1


def test_genuine_deliveries_never_count_towards_the_limit(deliver, small_limit):
    answers = [deliver(payment(id=f"pay_many_{n}"), REMOTE_ADDR="203.0.113.7") for n in range(6)]
    bad = deliver(sample_bytes("payment.succeeded"), secret="ws_guess", REMOTE_ADDR="203.0.113.7")

    assert [response.status_code for response in answers] == [200] * 6
    assert bad.status_code == 401
    assert WhopEvent.objects.count() == 6


def test_the_limit_is_per_address(deliver, small_limit):
    body = sample_bytes("payment.succeeded")
    for _ in range(4):
        deliver(body, secret="ws_guess", REMOTE_ADDR="203.0.113.7")

    other = deliver(body, secret="ws_guess", REMOTE_ADDR="198.51.100.20")

    assert_error(other, 401, "invalid_signature")


def test_no_limit_when_rate_limiting_is_off(deliver, settings):
    settings.RATELIMIT_ENABLE = False
    settings.RATELIMITS = {**settings.RATELIMITS, "webhook_failures": "1/h"}

    answers = [deliver(sample_bytes("payment.succeeded"), secret="ws_guess") for _ in range(4)]

    assert [response.status_code for response in answers] == [401] * 4


def test_the_refund_sample_is_accepted_too(deliver):
    response = deliver(sample("refund.created"))

    assert response.status_code == 200
    assert WhopEvent.objects.get().object_id == "rfnd_6Wk2Pz9Hs"
