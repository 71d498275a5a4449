"""The Celery tasks: `deliver` (one attempt, claimed by its attempts count) and the `deliver_due`
sweep (retries, lost enqueues, deliveries whose worker died), both idempotent."""

import threading
from datetime import timedelta
from unittest import mock

import pytest
from django.conf import settings
from django.contrib.admin.sites import site
from django.db import connection
from django.utils import timezone

from allumi.celery import app
from allumi.integrations import services
from allumi.integrations.models import EventType, WebhookDelivery, WebhookEndpoint
from allumi.integrations.services import delivery_attempt, endpoint_create, webhook_event_emit
from allumi.integrations.tasks import deliver, deliver_due


def _make_due(delivery):
    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))


def test_beat_runs_the_sweep_and_the_worker_knows_both_tasks():
    assert {"task": "integrations.tasks.deliver_due", "schedule": 15.0} in settings.CELERY_BEAT_SCHEDULE.values()
    app.loader.import_default_modules()
    assert {"integrations.tasks.deliver", "integrations.tasks.deliver_due"} <= set(app.tasks)


def test_both_models_are_in_the_admin():
    assert site.is_registered(WebhookEndpoint) and site.is_registered(WebhookDelivery)


def test_a_duplicate_or_late_task_sends_nothing(alice, alice_endpoint, receiver, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    deliver(delivery.pk, 0)  # the same task again
    deliver(delivery.pk, 1)  # a task for an attempt that never needed to happen
    assert delivery_attempt(delivery_id=delivery.pk) is None  # delivered: nothing left to do

    assert len(receiver.requests) == 1
    delivery.refresh_from_db()
    assert delivery.attempts == 1


def test_the_sweep_sends_a_delivery_whose_enqueue_was_lost_exactly_once(alice, alice_endpoint, receiver):
    # No on-commit callbacks run: as if the broker was down when the event was emitted.
    (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})
    assert receiver.requests == []

    assert deliver_due() == 1
    assert deliver_due() == 0

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED
    assert len(receiver.requests) == 1


def test_a_claimed_delivery_whose_worker_died_is_taken_again_after_its_lease(alice, alice_endpoint, receiver):
    (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})
    # a worker claimed attempt 1 and died before answering
    WebhookDelivery.objects.filter(pk=delivery.pk).update(attempts=1, next_attempt_at=timezone.now() + services.ATTEMPT_LEASE)
    assert deliver_due() == 0

    _make_due(delivery)
    assert deliver_due() == 1

    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED and delivery.attempts == 2


def test_with_the_broker_down_the_sweep_keeps_a_delivery_for_the_next_round(alice, alice_endpoint, receiver, caplog):
    (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})

    with mock.patch.object(deliver, "delay", autospec=True, side_effect=ConnectionError("broker down")):
        assert deliver_due() == 1
    assert "could not enqueue webhook delivery" in caplog.text
    assert deliver_due() == 0  # claimed for a while: the next sweeps leave it alone

    WebhookDelivery.objects.filter(pk=delivery.pk).update(next_attempt_at=timezone.now() - timedelta(seconds=1))
    assert deliver_due() == 1
    delivery.refresh_from_db()
    assert delivery.status == WebhookDelivery.Status.DELIVERED and delivery.attempts == 1


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_two_workers_claiming_one_attempt_at_once_make_one_claim(alice, receiver, allow_private):
    endpoint_create(creator=alice, url=receiver.url(), events=[EventType.LINK_CREATED])
    with mock.patch.object(deliver, "delay", autospec=True):  # leave the first attempt to the workers below
        (delivery,) = webhook_event_emit(creator_id=alice.id, event_type=EventType.LINK_CREATED, data={})
    barrier = threading.Barrier(8)
    results = []

    def _worker():
        try:
            barrier.wait()
            results.append(services._claim(delivery_id=delivery.pk, attempts=0))
        finally:
            connection.close()

    threads = [threading.Thread(target=_worker) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert sorted(results) == [False] * 7 + [True]
    delivery.refresh_from_db()
    assert delivery.attempts == 1
