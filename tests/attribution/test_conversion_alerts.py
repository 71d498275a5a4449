"""Conversion alerts: optional per creator, batched so that a burst of sales sends one email."""

import threading
from datetime import timedelta
from decimal import Decimal

import pytest
from django.core import mail
from django.db import connection
from django.db.models import F

from allumi.accounts.emails import unsubscribe_url
from allumi.accounts.models import EmailBatch, EmailLog
from attribution.conversions import conversion_record
from attribution.models import AttributionModel, Conversion, Credit
from attribution.notifications import conversion_alert_send
from attribution.tasks import send_conversion_alerts
from links.services import link_create


@pytest.fixture
def alerts_on(alice):
    alice.conversion_alerts = True
    alice.save(update_fields=["conversion_alerts"])
    return alice


@pytest.fixture
def record(django_capture_on_commit_callbacks):
    def _record(creator, n=1, amount="10.00", currency="USD", event="purchase"):
        with django_capture_on_commit_callbacks(execute=True):
            return [
                conversion_record(
                    creator=creator, event=event, source=Conversion.Source.TRACK, amount=Decimal(amount) if amount else None,
                    currency=currency,
                )[0]
                for _ in range(n)
            ]

    return _record


@pytest.fixture
def window_passes(django_capture_on_commit_callbacks):
    """Let `minutes` pass (everything recorded so far moves back by that much), then run the beat task."""

    def _pass(minutes=11):
        ago = timedelta(minutes=minutes)
        EmailBatch.objects.update(opened_at=F("opened_at") - ago, closed_at=F("closed_at") - ago)
        Conversion.objects.update(created_at=F("created_at") - ago)
        with django_capture_on_commit_callbacks(execute=True):
            return send_conversion_alerts()

    return _pass


def test_a_burst_of_fifty_sales_sends_one_email_listing_them_all(alerts_on, record, window_passes):
    record(alerts_on, n=50)

    assert EmailBatch.objects.filter(closed_at__isnull=True).count() == 1
    assert send_conversion_alerts() == 0  # the window is still open
    assert mail.outbox == []

    assert window_passes() == 1

    [message] = mail.outbox
    assert message.to == ["alice@example.com"]
    assert message.subject == "50 new conversions: USD 500.00"
    assert "50 new conversions in the last few minutes, worth USD 500.00:" in message.body
    assert message.body.count("purchase  USD 10.00") == 50
    [(html, _)] = message.alternatives
    assert html.count("<td style=\"padding:4px\">purchase</td>") == 50
    assert message.extra_headers["List-Unsubscribe"] == f"<{unsubscribe_url(creator=alerts_on, kind=EmailLog.Kind.CONVERSION_ALERT)}>"
    assert EmailLog.objects.get().kind == EmailLog.Kind.CONVERSION_ALERT
    assert window_passes() == 0  # nothing more to send


def test_a_sale_after_the_window_closed_opens_the_next_one(alerts_on, record, window_passes):
    record(alerts_on, n=2)
    window_passes()
    mail.outbox.clear()

    record(alerts_on, amount="99.00", currency="EUR")
    record(alerts_on, event="signup", amount=None)
    window_passes()

    [message] = mail.outbox
    assert message.subject == "2 new conversions: EUR 99.00"
    assert "EUR 99.00" in message.body and "signup" in message.body
    assert "USD" not in message.body  # the first window's sales are not listed again
    assert EmailBatch.objects.filter(closed_at__isnull=True).count() == 0


def test_revenue_in_several_currencies_is_shown_per_currency(alerts_on, record, window_passes):
    record(alerts_on, amount="10.00", currency="USD")
    record(alerts_on, amount="20.00", currency="EUR")
    window_passes()

    assert mail.outbox[0].subject == "2 new conversions: EUR 20.00, USD 10.00"


def test_a_long_burst_lists_the_first_fifty_and_counts_the_rest(alerts_on, record, window_passes):
    record(alerts_on, n=53, amount="1.00")
    window_passes()

    [message] = mail.outbox
    assert message.subject == "53 new conversions: USD 53.00"
    assert "…and 3 more." in message.body


def test_the_link_that_earned_a_sale_is_named(alerts_on, record, window_passes):
    link = link_create(creator=alerts_on, url="https://shop.example/course", title="Launch video")
    [conversion] = record(alerts_on)
    Credit.objects.create(conversion=conversion, model=AttributionModel.LAST_TOUCH, link=link, weight=1, revenue=Decimal("10"))
    window_passes()

    [message] = mail.outbox
    assert f"via Launch video ({link.short_url})" in message.body
    assert f'<a href="{link.short_url}">Launch video</a>' in message.alternatives[0][0]


def test_nothing_for_a_creator_who_has_alerts_off(alice, record, window_passes):
    record(alice, n=3)

    assert not EmailBatch.objects.exists()
    assert window_passes() == 0
    assert mail.outbox == []


def test_nothing_when_the_creator_turns_alerts_off_during_the_window(alerts_on, record, window_passes):
    record(alerts_on, n=2)
    alerts_on.conversion_alerts = False
    alerts_on.save(update_fields=["conversion_alerts"])

    window_passes()

    assert mail.outbox == [] and not EmailLog.objects.exists()
    assert EmailBatch.objects.get().closed_at is not None


def test_each_creator_hears_only_of_their_own_sales(alerts_on, bob, record, window_passes):
    bob.conversion_alerts = True
    bob.save(update_fields=["conversion_alerts"])
    record(alerts_on, n=2, amount="10.00")
    record(bob, n=1, amount="7.00")

    assert window_passes() == 2

    by_recipient = {message.to[0]: message for message in mail.outbox}
    assert by_recipient["alice@example.com"].subject == "2 new conversions: USD 20.00"
    assert by_recipient["bob@example.com"].subject == "1 new conversion: USD 7.00"


def test_a_twin_task_for_the_same_window_sends_nothing(alerts_on, record, django_capture_on_commit_callbacks):
    record(alerts_on)
    batch = EmailBatch.objects.get()

    with django_capture_on_commit_callbacks(execute=True):
        first = conversion_alert_send(batch_id=batch.id)
        second = conversion_alert_send(batch_id=batch.id)

    assert len(first) == 1 and second == []
    assert len(mail.outbox) == 1


def test_a_duplicate_conversion_does_not_open_a_window(alerts_on, record, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        conversion_record(creator=alerts_on, event="purchase", source=Conversion.Source.TRACK, external_id="pay_1")
    EmailBatch.objects.update(closed_at=F("opened_at"))

    with django_capture_on_commit_callbacks(execute=True):
        _, created = conversion_record(creator=alerts_on, event="purchase", source=Conversion.Source.TRACK, external_id="pay_1")

    assert created is False
    assert not EmailBatch.objects.filter(closed_at__isnull=True).exists()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_sales_open_exactly_one_window(alerts_on):
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    errors = []

    def _worker():
        try:
            barrier.wait(timeout=10)
            conversion_record(creator=alerts_on, event="purchase", source=Conversion.Source.TRACK, amount=Decimal("5"))
        except Exception as error:  # reported below, with the thread's own failure
            errors.append(error)
        finally:
            connection.close()

    threads = [threading.Thread(target=_worker) for _ in range(threads_count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert errors == []
    assert Conversion.objects.filter(creator=alerts_on).count() == threads_count
    assert EmailBatch.objects.filter(creator=alerts_on, closed_at__isnull=True).count() == 1
