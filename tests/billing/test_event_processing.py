"""Processing stored Whop deliveries: payments, refunds (in any order), memberships, other events,
failures and retries. Every delivery goes through the real endpoint, signed at test time; Celery
runs eagerly when the delivery's transaction commits."""

import json
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from unittest import mock

import pytest
from django.contrib.auth import get_user_model
from django.urls import reverse
from django.utils import timezone
from django.utils.dateparse import parse_datetime

import billing.services
from attribution.credit import MODELS
from attribution.models import Conversion, Credit, Identifier
from billing.models import WhopEvent, WhopMembership, WhopRefund
from billing.services import whop_event_process, whop_event_reprocess
from billing.tasks import MAX_ATTEMPTS, process_whop_event, sweep_whop_events
from tests.billing.whop import PAYMENT_ID, SECRET, payment, refund, sample, signed_headers
from tests.conftest import PASSWORD

MAYA = {"id": "user_Lp3Kx8Vq2Wn", "email": "maya.lopez@example.org"}


def _credits_by_model(conversion) -> dict[str, Decimal]:
    """model -> the sum of the revenue credited under it."""
    totals = {}
    for credit in Credit.objects.filter(conversion=conversion):
        totals[credit.model] = totals.get(credit.model, Decimal("0")) + credit.revenue
    return totals


def _event(event_type: str) -> WhopEvent:
    return WhopEvent.objects.get(event_type=event_type)


# --- payments ---------------------------------------------------------------------------------


def test_a_succeeded_payment_becomes_a_purchase_conversion(deliver, link, follow, alice):
    click_id = follow(link)
    body = payment(click_id=click_id)

    response = deliver(body)

    assert response.status_code == 200
    conversion = Conversion.objects.get()
    assert conversion.creator == alice
    assert (conversion.event, conversion.source, conversion.external_id) == ("purchase", "whop", PAYMENT_ID)
    assert conversion.amount == Decimal("49.00") and conversion.refunded_amount == Decimal("0.00")
    assert conversion.currency == "USD"
    assert conversion.occurred_at == parse_datetime(body["data"]["paid_at"])
    assert conversion.email == "maya.lopez@example.org"
    assert conversion.whop_user_id == "user_Lp3Kx8Vq2Wn"
    assert conversion.click_id == click_id
    assert conversion.metadata["product_id"] == "prod_6Tq2Wm9Ly" and conversion.metadata["plan_id"] == "plan_3Vb7Nc1Xk"
    assert _event("payment.succeeded").status == WhopEvent.Status.PROCESSED


def test_a_payment_naming_a_click_is_credited_to_its_link_at_97(deliver, link, follow):
    deliver(payment(click_id=follow(link)))

    conversion = Conversion.objects.get()
    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert conversion.confidence == 97
    assert set(Credit.objects.filter(conversion=conversion).values_list("model", "link_id")) == {(model, link.id) for model in MODELS}
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("49.00"))


def test_a_payment_without_metadata_is_recorded_from_its_email(deliver):
    body = payment(name="payment.succeeded.no-metadata")

    response = deliver(body)

    assert response.status_code == 200
    conversion = Conversion.objects.get()
    assert conversion.external_id == "pay_3Mc8Vx1Nq5Ze"
    assert conversion.amount == Decimal("129.00") and conversion.currency == "EUR"
    assert conversion.email == "jonas.weber@example.com"
    assert conversion.whop_user_id == "user_Qz2Bn7Tc4Lm"
    assert conversion.click_id == ""
    assert conversion.occurred_at == parse_datetime(body["data"]["paid_at"])
    assert conversion.status == Conversion.Status.UNATTRIBUTED and conversion.confidence is None
    assert _event("payment.succeeded").status == WhopEvent.Status.PROCESSED


def test_a_payment_without_metadata_is_credited_through_the_buyers_known_email(deliver, link, follow):
    jonas = {"id": "user_Qz2Bn7Tc4Lm", "email": "Jonas.Weber@Example.com", "name": "Jonas Weber", "username": "jweber"}
    deliver(payment(click_id=follow(link), id="pay_first_of_jonas", user=jonas))

    deliver(payment(name="payment.succeeded.no-metadata"))

    later = Conversion.objects.get(external_id="pay_3Mc8Vx1Nq5Ze")
    assert later.status == Conversion.Status.ATTRIBUTED
    assert later.confidence == 88
    assert set(Credit.objects.filter(conversion=later).values_list("link_id", flat=True)) == {link.id}
    assert later.identity_id == Conversion.objects.get(external_id="pay_first_of_jonas").identity_id


@pytest.mark.parametrize(
    ("paid_at", "created_at", "expected"),
    [
        ("2026-11-20T14:03:09.000Z", "2026-11-20T14:02:57.000Z", datetime(2026, 11, 20, 14, 3, 9, tzinfo=UTC)),
        (None, "2026-11-20T14:02:57.000Z", datetime(2026, 11, 20, 14, 2, 57, tzinfo=UTC)),
        (None, None, datetime(2026, 11, 20, 14, 3, 11, 482000, tzinfo=UTC)),
    ],
    ids=["paid_at", "created_at", "envelope-timestamp"],
)
def test_the_conversion_time_is_paid_at_else_created_at_else_the_envelopes(deliver, paid_at, created_at, expected):
    body = sample("payment.succeeded")
    body["data"].update(paid_at=paid_at, created_at=created_at)

    deliver(body)

    assert Conversion.objects.get().occurred_at == expected


def test_a_payment_with_a_malformed_amount_fails_and_says_why(deliver, worker_retries):
    deliver(payment(total="forty-nine"))

    event = _event("payment.succeeded")
    assert event.status == WhopEvent.Status.FAILED
    assert event.attempts == MAX_ATTEMPTS + 1
    assert "not an amount" in event.last_error
    assert not Conversion.objects.exists()


# --- refunds ----------------------------------------------------------------------------------


def test_a_refund_before_its_payment_waits_then_applies(deliver, link, follow):
    click_id = follow(link)

    deliver(refund(amount=49.0))

    waiting = _event("refund.created")
    assert waiting.status == WhopEvent.Status.WAITING
    assert not Conversion.objects.exists()
    assert WhopRefund.objects.get().amount == Decimal("49.00")

    deliver(payment(click_id=click_id))

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("49.00")
    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("0.00"))
    waiting.refresh_from_db()
    assert waiting.status == WhopEvent.Status.PROCESSED and waiting.processed_at is not None


def test_a_partial_refund_leaves_the_rest_credited_under_every_model(deliver, link, second_link, follow):
    follow(link)
    deliver(payment(click_id=follow(second_link)))

    deliver(refund(amount=20.0))

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("20.00")
    assert set(Credit.objects.filter(conversion=conversion).values_list("link_id", flat=True)) == {link.id, second_link.id}
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("29.00"))
    assert _event("refund.created").status == WhopEvent.Status.PROCESSED


def test_a_payments_own_refunded_amount_is_applied(deliver, link, follow):
    deliver(payment(click_id=follow(link), refunded_amount=12.5))

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("12.50")
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("36.50"))


def test_a_refund_reported_twice_counts_once(deliver, link, follow):
    deliver(payment(click_id=follow(link)))
    deliver(refund(amount=20.0))

    updated = refund(amount=20.0)
    updated["type"] = "refund.updated"
    deliver(updated)

    assert Conversion.objects.get().refunded_amount == Decimal("20.00")
    assert WhopRefund.objects.count() == 1


def test_two_refunds_of_one_payment_add_up(deliver, link, follow):
    deliver(payment(click_id=follow(link)))

    deliver(refund(amount=20.0, refund_id="rfnd_first"))
    deliver(refund(amount=10.0, refund_id="rfnd_second"))

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("30.00")
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("19.00"))


def test_a_canceled_refund_gives_the_revenue_back(deliver, link, follow):
    deliver(payment(click_id=follow(link)))
    deliver(refund(amount=20.0))

    canceled = refund(amount=20.0, status="canceled")
    canceled["type"] = "refund.updated"
    deliver(canceled)

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("0.00")
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("49.00"))


def test_the_sample_refund_after_the_sample_payment_refunds_it_in_full(deliver, link, follow):
    deliver(payment(click_id=follow(link)))

    deliver(sample("refund.created"))

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("49.00")
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("0.00"))



def test_a_late_copy_of_a_payment_does_not_undo_its_refund(deliver, link, follow):
    """Whop does not keep order: a payment already known as refunded (Whop's own refunded_amount,
    e.g. from reconciliation) may be followed by an older delivery of it that still says 0.0."""
    click_id = follow(link)
    original = payment(click_id=click_id)
    deliver({**original, "data": {**original["data"], "refunded_amount": 20.0}})

    deliver(original)

    conversion = Conversion.objects.get()
    assert conversion.refunded_amount == Decimal("20.00")
    assert _credits_by_model(conversion) == dict.fromkeys(MODELS, Decimal("29.00"))

# --- memberships ------------------------------------------------------------------------------


def test_an_activated_membership_is_recorded_with_an_identity(deliver, alice):
    deliver(sample("membership.activated"))

    membership = WhopMembership.objects.get()
    assert membership.creator == alice
    assert membership.membership_id == "mem_8Jd2Rf6Ua"
    assert membership.status == "active"
    assert membership.started_at == datetime(2026, 11, 20, 14, 3, 9, tzinfo=UTC)
    assert membership.ended_at is None
    assert (membership.whop_user_id, membership.email) == ("user_Lp3Kx8Vq2Wn", "maya.lopez@example.org")
    assert (membership.plan_id, membership.product_id) == ("plan_3Vb7Nc1Xk", "prod_6Tq2Wm9Ly")
    identifiers = set(Identifier.objects.filter(identity_id=membership.identity_id).values_list("kind", "value"))
    assert {("whop_user", "user_Lp3Kx8Vq2Wn"), ("email", "maya.lopez@example.org")} <= identifiers
    assert _event("membership.activated").status == WhopEvent.Status.PROCESSED


def test_a_deactivated_membership_ends_the_same_row(deliver):
    deliver(sample("membership.activated"))

    deliver(sample("membership.deactivated"))

    membership = WhopMembership.objects.get()
    assert membership.status == "expired"
    assert membership.started_at == datetime(2026, 11, 20, 14, 3, 9, tzinfo=UTC)
    # The membership ended when Whop says the event happened, not when Allumi processed it.
    assert membership.ended_at == datetime(2027, 1, 20, 14, 3, 15, 500000, tzinfo=UTC)
    assert _event("membership.deactivated").status == WhopEvent.Status.PROCESSED


def test_an_activation_arriving_after_its_deactivation_does_not_reopen_the_membership(deliver):
    deliver(sample("membership.deactivated"))

    deliver(sample("membership.activated"))

    membership = WhopMembership.objects.get()
    assert membership.status == "expired"
    assert membership.ended_at == datetime(2027, 1, 20, 14, 3, 15, 500000, tzinfo=UTC)


def test_a_membership_and_a_payment_of_one_member_share_an_identity(deliver, link, follow):
    deliver(sample("membership.activated"))
    deliver(payment(click_id=follow(link)))

    assert Conversion.objects.get().identity_id == WhopMembership.objects.get().identity_id


# --- other events -----------------------------------------------------------------------------


@pytest.mark.parametrize("event_type", ["app.installed", "membership.metadata_updated", "invoice.voided"])
def test_an_unknown_event_type_is_stored_and_ignored(deliver, event_type):
    body = sample("payment.succeeded")
    body["type"] = event_type

    response = deliver(body)

    assert response.status_code == 200
    event = WhopEvent.objects.get()
    assert event.event_type == event_type
    assert event.status == WhopEvent.Status.IGNORED
    assert not Conversion.objects.exists()


@pytest.mark.parametrize("event_type", ["payment.failed", "payment.pending", "dispute.created", "dispute.updated"])
def test_failed_payments_and_disputes_are_kept_and_processed_without_a_conversion(deliver, event_type):
    body = payment(status="open", substatus="failed")
    body["type"] = event_type
    if event_type.startswith("dispute."):
        body["data"] = {"id": "dspt_4Mn8Qa2", "status": "needs_response", "amount": 49.0, "payment": {"id": PAYMENT_ID}}

    response = deliver(body)

    assert response.status_code == 200
    event = WhopEvent.objects.get()
    assert event.status == WhopEvent.Status.PROCESSED
    assert not Conversion.objects.exists()


# --- failures and retries ---------------------------------------------------------------------


def test_a_processing_failure_is_recorded_with_its_attempts_and_error(failing_payment):
    failing_payment.refresh_from_db()
    assert failing_payment.status == WhopEvent.Status.FAILED
    assert failing_payment.attempts == MAX_ATTEMPTS + 1  # the first try and every Celery retry
    assert failing_payment.last_error == "RuntimeError: boom"
    assert failing_payment.processed_at is None
    assert not Conversion.objects.exists()


def test_a_failure_once_is_retried_by_celery(deliver, worker_retries):
    real = billing.services.payment_record
    calls = []

    def _fails_once(**kwargs):
        calls.append(kwargs["payment"]["id"])
        if len(calls) == 1:
            raise RuntimeError("boom")
        return real(**kwargs)

    with mock.patch("billing.services.payment_record", autospec=True, side_effect=_fails_once):
        response = deliver(payment())

    assert response.status_code == 200
    assert calls == [PAYMENT_ID, PAYMENT_ID]
    event = WhopEvent.objects.get()
    assert event.status == WhopEvent.Status.PROCESSED
    assert event.attempts == 2
    assert event.last_error == ""
    assert Conversion.objects.count() == 1


def test_processing_records_a_failure_before_raising(connection, deliver):
    deliver(payment(), webhook_id="msg_direct_failure_0001")
    event = WhopEvent.objects.get()
    WhopEvent.objects.filter(pk=event.pk).update(status=WhopEvent.Status.PENDING, body=event.body.replace('"total": 49.0', '"total": "x"'))

    with pytest.raises(billing.services.EventError):
        whop_event_process(event_id=event.pk)

    event.refresh_from_db()
    assert event.status == WhopEvent.Status.FAILED
    assert event.attempts == 2
    assert "not an amount" in event.last_error


def test_reprocessing_a_failed_event_processes_it(failing_payment, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        whop_event_reprocess(event=failing_payment)

    failing_payment.refresh_from_db()
    assert failing_payment.status == WhopEvent.Status.PROCESSED
    assert failing_payment.last_error == ""
    assert Conversion.objects.get().external_id == PAYMENT_ID


def test_reprocessing_a_processed_event_changes_nothing(deliver, django_capture_on_commit_callbacks):
    deliver(payment())
    event = WhopEvent.objects.get()
    before = (event.status, event.attempts, event.processed_at)

    with django_capture_on_commit_callbacks(execute=True):
        whop_event_reprocess(event=event)

    event.refresh_from_db()
    assert (event.status, event.attempts, event.processed_at) == before
    assert Conversion.objects.count() == 1


def test_processing_the_same_event_again_is_a_no_op(deliver):
    deliver(payment())
    event = WhopEvent.objects.get()

    again = whop_event_process(event_id=event.pk)

    assert again.attempts == 1 and again.status == WhopEvent.Status.PROCESSED
    assert Conversion.objects.count() == 1


def test_the_task_ignores_an_event_that_no_longer_exists(db):
    process_whop_event.delay(987654321)

    assert not WhopEvent.objects.exists()


def test_the_sweep_processes_deliveries_whose_enqueue_was_lost(connection, webhook_client):
    # Posted without running on-commit work: as if the broker was down when the delivery arrived.
    raw = json.dumps(payment(id="pay_lost_enqueue")).encode()
    webhook_client.post(connection.webhook_path, data=raw, content_type="application/json", headers=signed_headers(SECRET, raw))
    raw_new = json.dumps(payment(id="pay_just_arrived")).encode()
    webhook_client.post(connection.webhook_path, data=raw_new, content_type="application/json", headers=signed_headers(SECRET, raw_new))
    WhopEvent.objects.filter(object_id="pay_lost_enqueue").update(received_at=timezone.now() - timedelta(minutes=3))

    swept = sweep_whop_events()

    assert swept == 1
    assert WhopEvent.objects.get(object_id="pay_lost_enqueue").status == WhopEvent.Status.PROCESSED
    assert WhopEvent.objects.get(object_id="pay_just_arrived").status == WhopEvent.Status.PENDING
    assert list(Conversion.objects.values_list("external_id", flat=True)) == ["pay_lost_enqueue"]


# --- the admin --------------------------------------------------------------------------------


@pytest.fixture
def admin_client(client, db):
    root = get_user_model().objects.create_superuser("root@example.com", PASSWORD)
    client.force_login(root)
    return client


def test_the_admin_shows_a_failed_events_attempts_and_error(failing_payment, admin_client):
    changelist = admin_client.get(reverse("admin:billing_whopevent_changelist") + "?status__exact=failed")
    change = admin_client.get(reverse("admin:billing_whopevent_change", args=[failing_payment.pk]))

    assert changelist.status_code == 200
    assert [event.pk for event in changelist.context["cl"].result_list] == [failing_payment.pk]
    assert change.status_code == 200
    assert "RuntimeError: boom" in change.content.decode()
    assert f"<div class=\"readonly\">{MAX_ATTEMPTS + 1}</div>" in change.content.decode()


def test_the_admin_action_reprocesses_the_selected_deliveries(failing_payment, admin_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            reverse("admin:billing_whopevent_changelist"), {"action": "reprocess", "_selected_action": [failing_payment.pk]}
        )

    assert response.status_code == 302
    failing_payment.refresh_from_db()
    assert failing_payment.status == WhopEvent.Status.PROCESSED
    assert Conversion.objects.count() == 1


def test_bob_never_sees_alices_deliveries_in_his_dashboard(failing_payment, bob_client):
    page = bob_client.get("/settings/billing/whop/")

    assert page.status_code == 200
    assert PAYMENT_ID not in page.content.decode() and "boom" not in page.content.decode()
    assert MAYA["email"] not in page.content.decode()
