"""Verifying Whop's webhook signatures.

Standard Webhooks (`webhook-id`, `webhook-timestamp`, `webhook-signature: v1,<base64> ...`) through
the maintained `standardwebhooks` package. Whop keys the HMAC with the secret's own UTF-8 bytes,
while the package base64-decodes its key, so the secret is base64-encoded first. Whop's legacy
`x-whop-signature: t=<ts>,v1=<hex>` (HMAC over "<t>.<body>") is checked with the standard library.
"""

import base64
import binascii
import hashlib
import hmac
import time

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

TOLERANCE_SECONDS = 300


class InvalidSignature(Exception):
    pass


def _well_formed_entries(header: str) -> str:
    """The `v1,<base64>` entries of a signature header; the package stops at the first garbled one,
    and one garbled entry must not hide a valid one beside it."""
    kept = []
    for entry in header.split():
        version, _, signature = entry.partition(",")
        try:
            if version == "v1" and len(base64.b64decode(signature, validate=True)) == hashlib.sha256().digest_size:
                kept.append(entry)
        except (binascii.Error, ValueError):
            continue
    return " ".join(kept)


def _verify_standard(secret: str, headers, body: bytes) -> str:
    entries = _well_formed_entries(headers.get("webhook-signature", ""))
    if not entries:
        raise InvalidSignature("no well-formed v1 signature")
    try:
        Webhook(base64.b64encode(secret.encode()).decode()).verify(
            body,
            {"webhook-id": headers.get("webhook-id", ""), "webhook-timestamp": headers.get("webhook-timestamp", ""), "webhook-signature": entries},
            json_parse=False,
        )
    except (WebhookVerificationError, ValueError, binascii.Error, UnicodeDecodeError) as error:
        # ValueError and binascii.Error: a garbled signature entry is a bad signature, not a crash.
        raise InvalidSignature(str(error) or "signature does not match") from None
    return headers["webhook-id"]


def _verify_legacy(secret: str, header: str, body: bytes) -> None:
    parts = dict(item.split("=", 1) for item in header.split(",") if "=" in item)
    timestamp, given = parts.get("t", ""), parts.get("v1", "")
    if not timestamp.isdigit() or not given:
        raise InvalidSignature("malformed x-whop-signature header")
    if abs(time.time() - int(timestamp)) > TOLERANCE_SECONDS:
        raise InvalidSignature("timestamp outside the tolerance")
    expected = hmac.new(secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected, given.strip().lower()):
        raise InvalidSignature("signature does not match")


def verify_delivery(secret: str, headers, body: bytes) -> str | None:
    """Check a delivery's signature; returns its webhook-id (None for the legacy form).

    Raises InvalidSignature for a missing, malformed, wrong or stale signature.
    """
    if not secret:
        raise InvalidSignature("no signing secret is configured for this endpoint")
    if headers.get("webhook-signature"):
        return _verify_standard(secret, headers, body)
    if headers.get("x-whop-signature"):
        _verify_legacy(secret, headers["x-whop-signature"], body)
        return None
    raise InvalidSignature("missing webhook-signature header")
