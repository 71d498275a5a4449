"""Attribution tasks: the pending sweep, idempotent attribution, and resumable recomputes."""

from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import timezone

from attribution.conversions import RECOMPUTE_LEASE_SECONDS, conversion_record, recompute_run, recompute_start
from attribution.models import Click, Conversion, Credit, Recompute
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from attribution.tasks import attribute_conversion, recompute_creator, sweep_pending_conversions, sweep_recomputes
from links.services import link_create

PHONE = "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Mobile Safari/537.36"


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/offer")


@pytest.fixture
def second_link(alice):
    return link_create(creator=alice, url="https://shop.example/join")


def _click(link, *, visitor_id, hours_ago) -> Click:
    request = RequestFactory().get(f"/l/{link.short_id}", HTTP_USER_AGENT=PHONE, REMOTE_ADDR="81.2.69.142")
    click_id = new_click_id()
    at = timezone.now().replace(microsecond=0) - timedelta(hours=hours_ago)
    clicks_store(
        payloads=[
            click_payload(
                request=request, link_id=link.id, creator_id=link.creator_id, click_id=click_id, visitor_id=visitor_id,
                occurred_at=at.timestamp(),
            )
        ]
    )
    return Click.objects.get(public_id=click_id)


def _pending(creator, **fields) -> Conversion:
    """A conversion whose attribution was never run (its enqueue lost: on_commit callbacks are not run here)."""
    fields.setdefault("event", "purchase")
    conversion, _ = conversion_record(creator=creator, source=Conversion.Source.TRACK, **fields)
    assert Conversion.objects.get(pk=conversion.pk).status == Conversion.Status.PENDING
    return conversion


def _age(conversion, **delta):
    Conversion.objects.filter(pk=conversion.pk).update(created_at=timezone.now() - timedelta(**delta))


def _credit_rows(conversion):
    return sorted(Credit.objects.filter(conversion=conversion).values_list("model", "link_id", "weight", "revenue"))


# --- the pending sweep ------------------------------------------------------------------------


def test_the_sweep_attributes_conversions_left_pending_for_over_a_minute(alice, link):
    click = _click(link, visitor_id=new_visitor_id(), hours_ago=1)
    lost = _pending(alice, click_id=click.public_id, amount=Decimal("30.00"))
    orphan = _pending(alice, email="nobody@example.org")
    _age(lost, minutes=2)
    _age(orphan, minutes=5)

    assert sweep_pending_conversions() == 2

    lost.refresh_from_db()
    orphan.refresh_from_db()
    assert lost.status == Conversion.Status.ATTRIBUTED and lost.confidence == 97
    assert _credit_rows(lost)
    assert orphan.status == Conversion.Status.UNATTRIBUTED


def test_the_sweep_leaves_a_fresh_pending_conversion_to_its_own_task(alice, link):
    fresh = _pending(alice, email="new@example.org")
    _age(fresh, seconds=20)

    assert sweep_pending_conversions() == 0

    fresh.refresh_from_db()
    assert fresh.status == Conversion.Status.PENDING and fresh.attributed_at is None


def test_the_sweep_leaves_conversions_already_attributed_alone(alice, link, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        done, _ = conversion_record(creator=alice, event="purchase", source=Conversion.Source.TRACK, email="x@example.org")
    _age(done, hours=1)
    attributed_at = Conversion.objects.get(pk=done.pk).attributed_at

    assert sweep_pending_conversions() == 0
    assert Conversion.objects.get(pk=done.pk).attributed_at == attributed_at


def test_the_sweep_covers_every_creator(alice, bob, link):
    for creator in (alice, bob):
        _age(_pending(creator, email="someone@example.org"), minutes=3)

    assert sweep_pending_conversions() == 2
    assert not Conversion.objects.filter(status=Conversion.Status.PENDING).exists()


# --- attribute_conversion ---------------------------------------------------------------------


def test_attributing_twice_gives_the_same_credits_and_no_duplicates(alice, link, second_link):
    visitor = new_visitor_id()
    _click(link, visitor_id=visitor, hours_ago=30)
    _click(second_link, visitor_id=visitor, hours_ago=2)
    conversion = _pending(alice, visitor_id=visitor, amount=Decimal("100.00"))

    attribute_conversion.delay(conversion.pk)
    first = _credit_rows(conversion)
    first_state = Conversion.objects.values("status", "confidence", "identity_id", "evidence").get(pk=conversion.pk)
    attribute_conversion.delay(conversion.pk)

    assert _credit_rows(conversion) == first
    assert Conversion.objects.values("status", "confidence", "identity_id", "evidence").get(pk=conversion.pk) == first_state
    # Five models, two links each, except first and last touch which credit one link.
    assert len(first) == 8
    assert Credit.objects.filter(conversion=conversion).count() == 8
    assert first_state["status"] == Conversion.Status.ATTRIBUTED and first_state["confidence"] == 93


def test_attributing_a_deleted_conversion_is_a_no_op(alice):
    conversion = _pending(alice)
    conversion_id = conversion.pk
    conversion.delete()

    attribute_conversion.delay(conversion_id)

    assert not Conversion.objects.filter(pk=conversion_id).exists()


# --- recompute --------------------------------------------------------------------------------


@pytest.fixture
def five_pending(alice, link):
    visitor = new_visitor_id()
    _click(link, visitor_id=visitor, hours_ago=3)
    return [_pending(alice, visitor_id=visitor, amount=Decimal("10.00")) for _ in range(5)]


def test_a_recompute_works_through_every_conversion_in_chunks(alice, bob, five_pending):
    bobs = _pending(bob, email="b@example.org")
    recompute = Recompute.objects.create(creator=alice, total=5)
    progress = []

    recompute = recompute_run(recompute_id=recompute.pk, chunk=2, on_progress=lambda r: progress.append((r.done, r.last_conversion_id)))

    ids = [conversion.pk for conversion in five_pending]
    assert progress[:3] == [(2, ids[1]), (4, ids[3]), (5, ids[4])]
    assert progress[-1] == (5, ids[4])
    assert recompute.done == 5
    assert recompute.progress == 100
    assert recompute.finished_at is not None
    assert recompute.last_conversion_id == ids[4]
    statuses = set(Conversion.objects.filter(pk__in=ids).values_list("status", flat=True))
    assert statuses == {Conversion.Status.ATTRIBUTED}
    assert Conversion.objects.get(pk=bobs.pk).status == Conversion.Status.PENDING


def test_a_recompute_started_with_a_cursor_resumes_after_it(alice, five_pending):
    ids = [conversion.pk for conversion in five_pending]
    recompute = Recompute.objects.create(creator=alice, total=5, done=3, last_conversion_id=ids[2])

    recompute = recompute_run(recompute_id=recompute.pk, chunk=2)

    assert recompute.done == 5 and recompute.progress == 100 and recompute.finished_at is not None
    statuses = dict(Conversion.objects.filter(pk__in=ids).values_list("id", "status"))
    assert [statuses[pk] for pk in ids] == ["pending", "pending", "pending", "attributed", "attributed"]


def test_a_finished_recompute_does_nothing_when_run_again(alice, five_pending):
    recompute = Recompute.objects.create(creator=alice, total=5, done=5, finished_at=timezone.now())

    recompute_run(recompute_id=recompute.pk, chunk=2)

    assert not Conversion.objects.exclude(status=Conversion.Status.PENDING).exists()


def test_recompute_start_counts_the_conversions_and_runs_on_commit(alice, five_pending, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        recompute = recompute_start(creator=alice)
        assert Recompute.objects.get(pk=recompute.pk).finished_at is None

    recompute.refresh_from_db()
    assert recompute.total == 5 and recompute.done == 5
    assert recompute.progress == 100 and recompute.finished_at is not None
    assert not Conversion.objects.filter(status=Conversion.Status.PENDING).exists()


def test_the_recompute_task_runs_a_recompute_by_id(alice, five_pending):
    recompute = Recompute.objects.create(creator=alice, total=5)

    recompute_creator.delay(recompute.pk)

    recompute.refresh_from_db()
    assert recompute.finished_at is not None and recompute.done == 5


def test_the_progress_of_an_empty_recompute_is_100(alice):
    recompute = recompute_run(recompute_id=Recompute.objects.create(creator=alice, total=0).pk)

    assert recompute.progress == 100 and recompute.finished_at is not None


# --- resuming a recompute whose worker died ---------------------------------------------------


@pytest.fixture
def lease(redis_url):
    """The Redis lease of a recompute, as a running worker holds it."""
    import redis as redis_py

    client = redis_py.Redis.from_url(redis_url)
    held = []

    def _hold(recompute):
        lock = client.lock(f"allumi:recompute:{recompute.pk}:lease", timeout=RECOMPUTE_LEASE_SECONDS)
        assert lock.acquire(blocking=False)
        held.append(lock)

    yield _hold
    for lock in held:
        client.delete(lock.name)


def _interrupted(alice, five_pending, *, minutes_ago=5):
    """A recompute two conversions in whose worker was SIGKILLed: no lease, no finish."""
    ids = [conversion.pk for conversion in five_pending]
    recompute = Recompute.objects.create(creator=alice, total=5, done=2, last_conversion_id=ids[1])
    Recompute.objects.filter(pk=recompute.pk).update(started_at=timezone.now() - timedelta(minutes=minutes_ago))
    return recompute


def test_the_sweep_resumes_a_recompute_whose_worker_died(alice, five_pending, redis_url):
    recompute = _interrupted(alice, five_pending)

    assert sweep_recomputes() == 1

    recompute.refresh_from_db()
    assert recompute.finished_at is not None and recompute.done == 5 and recompute.progress == 100
    assert sweep_recomputes() == 0


def test_the_sweep_leaves_a_running_or_just_started_recompute_alone(alice, five_pending, lease):
    running = _interrupted(alice, five_pending)
    lease(running)
    _interrupted(alice, five_pending, minutes_ago=0)  # its task may still be in the queue

    assert sweep_recomputes() == 0
    assert not Recompute.objects.exclude(finished_at=None).exists()


def test_a_second_run_of_a_recompute_another_worker_holds_does_nothing(alice, five_pending, lease):
    recompute = _interrupted(alice, five_pending)
    lease(recompute)

    recompute_creator.delay(recompute.pk)  # the broker redelivering a long task, say

    recompute.refresh_from_db()
    assert (recompute.done, recompute.finished_at) == (2, None)
    assert Conversion.objects.filter(status=Conversion.Status.PENDING).count() == 5
