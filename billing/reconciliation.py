"""Reconciliation: Whop retries a failed delivery for only about a minute, so every few minutes
Allumi lists each connected store's recent payments through Whop's API and records the ones no
webhook brought. Recording is idempotent on the payment id, so overlap costs nothing."""

import json
import logging
import urllib.parse
import urllib.request
from datetime import timedelta

from django.utils import timezone

from billing.models import WhopConnection
from billing.services import payment_record

logger = logging.getLogger(__name__)

WHOP_API = "https://api.whop.com/api/v1"
PAGES_PER_RUN = 5
LOOKBACK = timedelta(days=3)


def whop_api_get(*, api_key: str, path: str, params: dict) -> dict:
    """One GET against Whop's API (the only call that leaves the machine; tests replace it)."""
    url = f"{WHOP_API}{path}?{urllib.parse.urlencode(params)}"
    request = urllib.request.Request(url, headers={"Authorization": f"Bearer {api_key}", "Accept": "application/json"})  # noqa: S310
    with urllib.request.urlopen(request, timeout=15) as response:  # noqa: S310 (a fixed https URL)
        return json.loads(response.read(5_000_000))


def whop_payments_reconcile(*, connection: WhopConnection) -> int:
    """Record the store's succeeded payments of the last few days; returns how many were looked at."""
    since = timezone.now() - LOOKBACK
    params = {"company_id": connection.company_id, "first": 100}
    seen = 0
    for _ in range(PAGES_PER_RUN):
        page = whop_api_get(api_key=connection.api_key, path="/payments", params=params)
        for payment in page.get("data") or []:
            if payment.get("status") != "paid" and payment.get("substatus") not in ("succeeded", "paid"):
                continue
            payment_record(creator=connection.creator, payment=payment)
            seen += 1
        info = page.get("page_info") or {}
        oldest = (page.get("data") or [{}])[-1].get("created_at")
        if not info.get("has_next_page") or not info.get("end_cursor") or (isinstance(oldest, str) and oldest < since.isoformat()):
            break
        params = {**params, "after": info["end_cursor"]}
    WhopConnection.objects.filter(pk=connection.pk).update(last_reconciled_at=timezone.now())
    return seen
