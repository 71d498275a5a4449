"""billing.signatures.verify_delivery: Standard Webhooks as Whop keys it, and Whop's legacy header.

The test helper is checked against the reference computation in shared/whop/verify_example.py and
against the `standardwebhooks` package keyed the way Whop keys it, so that the other billing tests
sign exactly as Whop does.
"""

import base64
import importlib.util
import time

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from billing.signatures import TOLERANCE_SECONDS, InvalidSignature, verify_delivery
from tests.billing.whop import SAMPLES, SECRET, legacy_headers, sample_bytes, signed_headers, standard_signature


@pytest.fixture(scope="module")
def reference():
    """shared/whop/verify_example.py, loaded from where it lives (a test aid, not a dependency)."""
    spec = importlib.util.spec_from_file_location("whop_verify_example", SAMPLES / "verify_example.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


BODY = sample_bytes("payment.succeeded")


def test_the_helper_signs_like_the_reference_example(reference):
    headers = signed_headers(SECRET, BODY)

    assert headers["webhook-signature"] == reference.sign(SECRET, headers["webhook-id"], int(headers["webhook-timestamp"]), BODY)
    assert reference.verify(SECRET, headers, BODY)
    assert not reference.verify("ws_other", headers, BODY)


def test_the_helper_signs_like_the_standardwebhooks_package_keyed_as_whop_keys_it():
    headers = signed_headers(SECRET, BODY)
    package = Webhook(base64.b64encode(SECRET.encode()).decode())

    package.verify(BODY, headers)
    with pytest.raises(WebhookVerificationError):
        Webhook(base64.b64encode(b"ws_other").decode()).verify(BODY, headers)


def test_it_returns_the_webhook_id_of_a_genuine_delivery():
    headers = signed_headers(SECRET, BODY, webhook_id="msg_returned_id_000000001")

    assert verify_delivery(SECRET, headers, BODY) == "msg_returned_id_000000001"


def test_it_returns_none_for_a_genuine_legacy_delivery():
    assert verify_delivery(SECRET, legacy_headers(SECRET, BODY), BODY) is None


def test_a_legacy_signature_in_upper_case_hex_is_accepted():
    timestamp, signature = legacy_headers(SECRET, BODY)["x-whop-signature"].split(",")

    assert verify_delivery(SECRET, {"x-whop-signature": f"{timestamp},{signature.upper().replace('V1=', 'v1=')}"}, BODY) is None


def test_the_standard_header_wins_over_the_legacy_one():
    headers = {**legacy_headers(SECRET, BODY), **signed_headers("ws_other", BODY)}

    with pytest.raises(InvalidSignature):
        verify_delivery(SECRET, headers, BODY)


def test_the_tolerance_is_five_minutes():
    assert TOLERANCE_SECONDS == 300


@pytest.mark.parametrize("offset", [-TOLERANCE_SECONDS - 1, TOLERANCE_SECONDS + 1])
@pytest.mark.parametrize("form", ["standard", "legacy"])
def test_it_refuses_timestamps_outside_the_tolerance(offset, form):
    timestamp = int(time.time()) + offset
    headers = signed_headers(SECRET, BODY, timestamp=timestamp) if form == "standard" else legacy_headers(SECRET, BODY, timestamp=timestamp)

    with pytest.raises(InvalidSignature):
        verify_delivery(SECRET, headers, BODY)


def test_it_refuses_everything_when_no_secret_is_configured():
    with pytest.raises(InvalidSignature):
        verify_delivery("", signed_headers("", BODY), BODY)


def test_it_refuses_a_delivery_without_any_signature_header():
    headers = signed_headers(SECRET, BODY)
    del headers["webhook-signature"]

    with pytest.raises(InvalidSignature):
        verify_delivery(SECRET, headers, BODY)


def test_a_garbled_entry_does_not_hide_a_valid_one_after_it():
    headers = signed_headers(SECRET, BODY)
    headers["webhook-signature"] = f"v1,garbage v1,{base64.b64encode(b'x' * 32).decode()} v1,==== {headers['webhook-signature']}"

    assert verify_delivery(SECRET, headers, BODY) == headers["webhook-id"]


def test_a_signature_over_another_webhook_id_is_refused():
    headers = signed_headers(SECRET, BODY)
    headers["webhook-signature"] = standard_signature(SECRET, "msg_another_delivery", headers["webhook-timestamp"], BODY)

    with pytest.raises(InvalidSignature):
        verify_delivery(SECRET, headers, BODY)


def test_a_signature_over_another_timestamp_is_refused():
    headers = signed_headers(SECRET, BODY)
    headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)

    with pytest.raises(InvalidSignature):
        verify_delivery(SECRET, headers, BODY)


def test_the_secret_is_used_as_its_own_utf8_bytes_not_base64_decoded():
    # A secret that happens to be valid base64 must still key the HMAC with its own bytes.
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    headers = signed_headers(secret, BODY)

    assert verify_delivery(secret, headers, BODY) == headers["webhook-id"]
