"""Reconciliation: payments no webhook brought are fetched from Whop's API and recorded once.

`billing.reconciliation.whop_api_get` is the only call that leaves the machine; it is replaced by
recorded responses shaped like Whop's v1 list-payments answer:
{"data": [payment, ...], "page_info": {"end_cursor": "...", "has_next_page": bool}}.
"""

import urllib.error
from datetime import timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.utils import timezone

from attribution.models import Conversion
from billing.models import WhopConnection, WhopEvent
from billing.reconciliation import PAGES_PER_RUN, whop_api_get, whop_payments_reconcile
from billing.services import whop_connection_update
from billing.tasks import reconcile_whop_payments
from tests.billing.whop import PAYMENT_ID, fresh, payment, refund, sample, whop_time

API_KEY = "apik_alice_reads_payments_7Hq2"
COMPANY = "biz_7hGf2LkQ9sNe"


@pytest.fixture
def api_connection(connection):
    return whop_connection_update(connection=connection, api_key=API_KEY, company_id=COMPANY)


def _payment(name: str = "payment.succeeded", *, when=None, **fields) -> dict:
    """A payment object as the list endpoint returns it (the webhook's `data`)."""
    data = fresh(sample(name), when=when)["data"]
    data.update(fields)
    return data


def _page(payments: list[dict], *, cursor: str | None = None, more: bool = False) -> dict:
    return {"data": payments, "page_info": {"end_cursor": cursor, "has_next_page": more}}


@pytest.fixture
def whop_api():
    with mock.patch("billing.reconciliation.whop_api_get", autospec=True) as api:
        yield api


@pytest.fixture
def reconcile(django_capture_on_commit_callbacks):
    def _reconcile(connection) -> int:
        with django_capture_on_commit_callbacks(execute=True):
            return whop_payments_reconcile(connection=connection)

    return _reconcile


def _snapshot(conversion: Conversion) -> tuple:
    conversion.refresh_from_db()
    return (
        conversion.pk, conversion.amount, conversion.refunded_amount, conversion.currency, conversion.occurred_at,
        conversion.click_id, conversion.status, conversion.confidence, conversion.identity_id,
    )


def test_it_records_the_payment_a_webhook_missed_and_leaves_the_other_alone(
    api_connection, deliver, link, follow, whop_api, reconcile
):
    delivered = payment(click_id=follow(link))
    deliver(delivered)
    existing = Conversion.objects.get(external_id=PAYMENT_ID)
    before = _snapshot(existing)
    missed = _payment("payment.succeeded.no-metadata", id="pay_missed_by_webhook")
    failed = _payment(id="pay_card_declined", status="open", substatus="failed")
    draft = _payment(id="pay_checkout_abandoned", status="draft", substatus="draft")
    whop_api.side_effect = [
        _page([delivered["data"]], cursor="cursor_page_2", more=True),
        _page([missed, failed, draft], cursor="cursor_page_3", more=False),
    ]

    seen = reconcile(api_connection)

    assert seen == 2
    assert Conversion.objects.count() == 2
    assert _snapshot(existing) == before
    recorded = Conversion.objects.get(external_id="pay_missed_by_webhook")
    assert (recorded.event, recorded.source) == ("purchase", "whop")
    assert recorded.amount == Decimal("129.00") and recorded.currency == "EUR"
    assert recorded.email == "jonas.weber@example.com"
    assert not Conversion.objects.filter(external_id__in=["pay_card_declined", "pay_checkout_abandoned"]).exists()
    assert whop_api.call_args_list == [
        mock.call(api_key=API_KEY, path="/payments", params={"company_id": COMPANY, "first": 100}),
        mock.call(api_key=API_KEY, path="/payments", params={"company_id": COMPANY, "first": 100, "after": "cursor_page_2"}),
    ]


def test_a_second_run_over_the_same_payments_records_nothing_new(api_connection, whop_api, reconcile):
    pages = [
        _page([_payment(id="pay_one")], cursor="cursor_page_2", more=True),
        _page([_payment(id="pay_two")], cursor=None, more=False),
    ]
    whop_api.side_effect = pages + pages

    reconcile(api_connection)
    first = sorted(Conversion.objects.values_list("id", "external_id"))
    reconcile(api_connection)

    assert sorted(Conversion.objects.values_list("id", "external_id")) == first
    assert [external_id for _, external_id in first] == ["pay_one", "pay_two"]
    assert whop_api.call_count == 4


def test_it_sets_last_reconciled_at(api_connection, whop_api, reconcile):
    whop_api.return_value = _page([], more=False)
    started = timezone.now()

    reconcile(api_connection)

    api_connection.refresh_from_db()
    assert api_connection.last_reconciled_at is not None and api_connection.last_reconciled_at >= started


def test_it_stops_at_payments_older_than_the_lookback(api_connection, whop_api, reconcile):
    old = _payment(id="pay_last_month", when=timezone.now() - timedelta(days=30))
    whop_api.side_effect = [_page([_payment(id="pay_today"), old], cursor="cursor_page_2", more=True)]

    reconcile(api_connection)

    assert whop_api.call_count == 1
    assert set(Conversion.objects.values_list("external_id", flat=True)) == {"pay_today", "pay_last_month"}


def test_it_reads_at_most_a_few_pages_per_run(api_connection, whop_api, reconcile):
    whop_api.side_effect = [_page([_payment(id=f"pay_page_{n}")], cursor=f"cursor_{n}", more=True) for n in range(PAGES_PER_RUN + 3)]

    reconcile(api_connection)

    assert whop_api.call_count == PAGES_PER_RUN
    assert Conversion.objects.count() == PAGES_PER_RUN


def test_a_refund_the_webhook_missed_arrives_with_its_payment(api_connection, deliver, link, follow, whop_api, reconcile):
    delivered = payment(click_id=follow(link))
    deliver(delivered)
    refunded = {**delivered["data"], "refunded_amount": 49.0, "refunded_at": whop_time(), "substatus": "refunded"}
    whop_api.return_value = _page([refunded], more=False)

    reconcile(api_connection)

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("49.00")
    assert set(conversion.credits.values_list("revenue", flat=True)) == {Decimal("0.00")}


def test_a_reconciled_payment_naming_a_click_is_attributed(api_connection, link, follow, whop_api, reconcile):
    whop_api.return_value = _page([_payment(id="pay_missed", metadata={"allumi_cid": follow(link)})], more=False)

    reconcile(api_connection)

    conversion = Conversion.objects.get()
    assert conversion.status == Conversion.Status.ATTRIBUTED and conversion.confidence == 97
    assert set(conversion.credits.values_list("link_id", flat=True)) == {link.id}


def test_the_task_reconciles_only_connections_with_an_api_key_and_company(
    api_connection, bob_connection, whop_api, django_capture_on_commit_callbacks
):
    whop_api.return_value = _page([_payment(id="pay_from_alices_store")], more=False)

    with django_capture_on_commit_callbacks(execute=True):
        reconcile_whop_payments()

    assert [call.kwargs["api_key"] for call in whop_api.call_args_list] == [API_KEY]
    assert Conversion.objects.get().creator == api_connection.creator
    bob_connection.refresh_from_db()
    assert bob_connection.last_reconciled_at is None



def test_one_stores_failing_api_call_does_not_stop_the_others(api_connection, bob_connection, whop_api):
    whop_connection_update(connection=bob_connection, api_key="apik_bob_reads_payments_3Kd8", company_id="biz_bobsStore")

    def _answer(*, api_key, path, params):
        if api_key == API_KEY:
            raise urllib.error.HTTPError("https://api.whop.com/api/v1/payments", 401, "Unauthorized", {}, None)
        return _page([_payment(id="pay_from_bobs_store")], more=False)

    whop_api.side_effect = _answer

    reconcile_whop_payments()

    assert whop_api.call_count == 2
    assert Conversion.objects.get().creator == bob_connection.creator
    bob_connection.refresh_from_db()
    api_connection.refresh_from_db()
    assert bob_connection.last_reconciled_at is not None
    assert api_connection.last_reconciled_at is None


def test_a_refund_waiting_for_its_payment_applies_when_reconciliation_finds_the_payment(
    api_connection, deliver, whop_api, reconcile
):
    deliver(refund(amount=49.0))
    assert WhopEvent.objects.get().status == WhopEvent.Status.WAITING
    whop_api.return_value = _page([_payment()], more=False)

    reconcile(api_connection)

    assert Conversion.objects.get(external_id=PAYMENT_ID).refunded_amount == Decimal("49.00")
    assert WhopEvent.objects.get().status == WhopEvent.Status.PROCESSED

def test_the_task_skips_a_connection_with_a_key_but_no_company(connection, whop_api):
    whop_connection_update(connection=connection, api_key=API_KEY, company_id="")

    reconcile_whop_payments()

    whop_api.assert_not_called()


def test_the_settings_page_shows_when_reconciliation_last_ran(alice_client, api_connection, whop_api, reconcile):
    whop_api.return_value = _page([], more=False)
    reconcile(api_connection)

    page = alice_client.get("/settings/billing/whop/").content.decode()

    assert "An API key is set for reconciliation (last run" in page
    assert API_KEY not in page
    assert WhopConnection.objects.get().last_reconciled_at.strftime("%Y-%m-%d %H:%M") in page


def test_the_real_api_call_is_a_bearer_get_on_whops_v1_api():
    """whop_api_get itself, with the network replaced by a recorded answer."""
    answer = mock.MagicMock()
    answer.__enter__.return_value.read.return_value = b'{"data": [], "page_info": {"end_cursor": null, "has_next_page": false}}'
    with mock.patch("billing.reconciliation.urllib.request.urlopen", autospec=True, return_value=answer) as urlopen:
        result = whop_api_get(api_key=API_KEY, path="/payments", params={"company_id": COMPANY, "first": 100})

    assert result == {"data": [], "page_info": {"end_cursor": None, "has_next_page": False}}
    request = urlopen.call_args.args[0]
    assert request.full_url.startswith("https://api.whop.com/api/v1/payments?")
    assert "company_id=biz_7hGf2LkQ9sNe" in request.full_url and "first=100" in request.full_url
    assert request.get_header("Authorization") == f"Bearer {API_KEY}"
    assert request.get_method() == "GET"
