"""conversion_record: one conversion per external id, whoever asks and however often."""

import threading
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from django.db import connection

from allumi.accounts.models import Creator
from attribution.conversions import conversion_record
from attribution.models import Conversion

TRACK = "/api/v1/conversions/track"


def _record(creator, **fields):
    fields.setdefault("event", "purchase")
    fields.setdefault("source", Conversion.Source.TRACK)
    return conversion_record(creator=creator, **fields)


def test_it_stores_a_conversion_with_its_fields(alice):
    when = datetime(2026, 2, 3, 4, 5, 6, tzinfo=UTC)

    conversion, created = _record(
        alice, external_id="order-1", amount=Decimal("49.00"), currency="usd", occurred_at=when, metadata={"plan": "pro"}
    )

    assert created
    conversion.refresh_from_db()
    assert conversion.creator == alice
    assert (conversion.event, conversion.source, conversion.external_id) == ("purchase", "track", "order-1")
    assert conversion.amount == Decimal("49.00") and conversion.refunded_amount == Decimal("0")
    assert conversion.currency == "USD"
    assert conversion.occurred_at == when
    assert conversion.metadata == {"plan": "pro"}
    assert conversion.status == Conversion.Status.PENDING


def test_the_same_external_id_twice_is_one_conversion(alice):
    first, first_created = _record(alice, external_id="order-1", amount=Decimal("10.00"))
    second, second_created = _record(alice, external_id="order-1", amount=Decimal("99.00"), email="other@example.org")

    assert (first_created, second_created) == (True, False)
    assert second.pk == first.pk
    assert Conversion.objects.count() == 1
    assert Conversion.objects.get().amount == Decimal("10.00")


def test_the_same_external_id_for_two_creators_is_two_conversions(alice, bob):
    _record(alice, external_id="order-1")
    _, created = _record(bob, external_id="order-1")

    assert created
    assert Conversion.objects.count() == 2


def test_conversions_without_an_external_id_are_never_deduplicated(alice):
    _record(alice)
    _, created = _record(alice, external_id="")

    assert created
    assert Conversion.objects.count() == 2
    assert set(Conversion.objects.values_list("external_id", flat=True)) == {None}


def test_the_email_is_trimmed_and_lower_cased(alice):
    conversion, _ = _record(alice, email="  Sam.Buyer@Example.ORG ")

    conversion.refresh_from_db()
    assert conversion.email == "sam.buyer@example.org"


def test_the_currency_defaults_to_the_creators(alice):
    Creator.objects.filter(pk=alice.pk).update(currency="EUR")
    alice.refresh_from_db()

    conversion, _ = _record(alice, amount=Decimal("5.00"))

    conversion.refresh_from_db()
    assert conversion.currency == "EUR"


def test_a_currency_sent_is_upper_cased_and_wins_over_the_default(alice):
    Creator.objects.filter(pk=alice.pk).update(currency="EUR")
    alice.refresh_from_db()

    conversion, _ = _record(alice, amount=Decimal("5.00"), currency="gbp")

    conversion.refresh_from_db()
    assert conversion.currency == "GBP"


def test_the_track_api_defaults_the_currency_to_the_creators(alice, alice_api):
    Creator.objects.filter(pk=alice.pk).update(currency="EUR")

    response = alice_api.post(TRACK, {"event": "purchase", "amount": "12.50"}, format="json")

    assert response.status_code == 202
    assert Conversion.objects.get(pk=response.json()["id"]).currency == "EUR"


def test_attribution_is_enqueued_when_the_transaction_commits(alice, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        conversion, _ = _record(alice, external_id="order-1")
    assert len(callbacks) == 1
    assert Conversion.objects.get(pk=conversion.pk).status == Conversion.Status.PENDING

    for callback in callbacks:
        callback()

    assert Conversion.objects.get(pk=conversion.pk).status == Conversion.Status.UNATTRIBUTED


def test_a_duplicate_enqueues_nothing(alice, django_capture_on_commit_callbacks):
    _record(alice, external_id="order-1")

    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        _record(alice, external_id="order-1")

    assert callbacks == []


def test_the_track_api_answers_202_then_200_with_the_first_id(alice_api, django_capture_on_commit_callbacks):
    body = {"event": "purchase", "external_id": "order-7", "amount": "19.00"}

    with django_capture_on_commit_callbacks(execute=True):
        first = alice_api.post(TRACK, body, format="json")
    second = alice_api.post(TRACK, dict(body, amount="21.00"), format="json")

    assert first.status_code == 202
    assert second.status_code == 200
    assert second.json()["id"] == first.json()["id"]
    assert second.json()["status"] == Conversion.objects.get().status == Conversion.Status.UNATTRIBUTED
    assert set(first.json()) == {"id", "status"}
    assert Conversion.objects.count() == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_concurrent_duplicates_make_exactly_one_conversion(alice):
    threads_count = 8
    barrier = threading.Barrier(threads_count)
    results, errors = [], []

    def _worker():
        try:
            barrier.wait(timeout=10)
            conversion, created = _record(alice, external_id="pay_concurrent", amount=Decimal("49.00"))
            results.append((conversion.pk, created))
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
    assert len(results) == threads_count
    assert Conversion.objects.filter(creator=alice, external_id="pay_concurrent").count() == 1
    assert sum(created for _, created in results) == 1
    assert {pk for pk, _ in results} == {Conversion.objects.get(external_id="pay_concurrent").pk}
