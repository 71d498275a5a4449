"""Whop deliveries for the billing tests: the shared sample bodies, signed at test time as Whop signs them.

The samples live in the project's sibling folder `shared/whop` and are read from there, never copied.
Signing follows the Standard Webhooks scheme of `verify_example.py`: base64(HMAC-SHA256(key = the
secret's UTF-8 bytes, msg = "<webhook-id>.<webhook-timestamp>.<raw body>")) as a `v1,` entry; the
legacy form is `x-whop-signature: t=<ts>,v1=<hex of HMAC-SHA256(secret, "<t>.<raw body>")>`.
"""

import base64
import copy
import hashlib
import hmac
import json
import time
import uuid
from datetime import timedelta
from pathlib import Path

from django.conf import settings
from django.utils import timezone

SAMPLES = Path(settings.BASE_DIR).parent / "shared" / "whop"

SECRET = "ws_alice_signing_secret_Qm7Vt2Lx9Rk4"
BOB_SECRET = "ws_bob_signing_secret_Hz3Nc8Wp1Ys6"
PLATFORM_SECRET = "ws_allumi_plans_secret_Jd5Kf0Tb2Gv9"

# A person's browser (Allumi rightly counts headless and unknown agents as bots).
BROWSER = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"

PAYMENT_ID = "pay_9Rt4Yb2Mx7Qw"  # payment.succeeded.json, refunded by refund.created.json


# --- sample bodies ----------------------------------------------------------------------------


def sample_bytes(name: str) -> bytes:
    """The raw bytes of `<name>.json`, exactly as stored."""
    return (SAMPLES / f"{name}.json").read_bytes()


def sample(name: str) -> dict:
    """A fresh, mutable copy of `<name>.json`."""
    return copy.deepcopy(json.loads(sample_bytes(name)))


def whop_time(when=None) -> str:
    """A time as Whop writes it (ISO 8601, UTC, `Z`), to the microsecond."""
    return (when or timezone.now()).isoformat().replace("+00:00", "Z")


def fresh(payload: dict, *, when=None) -> dict:
    """`payload` happening now: the envelope's timestamp and the object's own times rewritten.

    One second ahead of the clock, so that a click made just before is safely before the payment.
    """
    stamp = whop_time(when or timezone.now() + timedelta(seconds=1))
    payload["timestamp"] = stamp
    for field in ("paid_at", "created_at"):
        if field in payload["data"]:
            payload["data"][field] = stamp
    return payload


def payment(*, click_id: str | None = None, name: str = "payment.succeeded", **data) -> dict:
    """A payment.succeeded body happening now, carrying `click_id` as metadata.allumi_cid when given."""
    payload = fresh(sample(name))
    if click_id is not None:
        payload["data"]["metadata"] = {"allumi_cid": click_id}
    payload["data"].update(data)
    return payload


def refund(*, amount: float = 49.0, refund_id: str = "rfnd_6Wk2Pz9Hs", payment_id: str = PAYMENT_ID, **data) -> dict:
    payload = fresh(sample("refund.created"))
    payload["data"].update({"id": refund_id, "amount": amount, **data})
    payload["data"]["payment"]["id"] = payment_id
    return payload


def encode(payload) -> bytes:
    return payload if isinstance(payload, bytes) else json.dumps(payload).encode()


# --- signatures -------------------------------------------------------------------------------


def new_webhook_id() -> str:
    return f"msg_{uuid.uuid4().hex[:24]}"


def standard_signature(secret: str, webhook_id: str, timestamp: int | str, body: bytes) -> str:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def signed_headers(secret: str, body: bytes, *, webhook_id: str | None = None, timestamp: int | None = None) -> dict:
    """The three Standard Webhooks headers a genuine delivery of `body` carries."""
    webhook_id = webhook_id or new_webhook_id()
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": standard_signature(secret, webhook_id, timestamp, body),
    }


def legacy_signature(secret: str, timestamp: int | str, body: bytes) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()


def legacy_headers(secret: str, body: bytes, *, timestamp: int | None = None) -> dict:
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {"x-whop-signature": f"t={timestamp},v1={legacy_signature(secret, timestamp, body)}"}


# --- answers ----------------------------------------------------------------------------------


def assert_error(response, status: int, code: str | None = None) -> dict:
    """`response` is an error in the one JSON format: {"error": {"code", "message", "request_id"}}."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert set(body) == {"error"}
    error = body["error"]
    assert {"code", "message", "request_id"} <= set(error)
    assert isinstance(error["code"], str) and error["code"]
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] and error["request_id"] == response["X-Request-ID"]
    if code is not None:
        assert error["code"] == code
    return error
