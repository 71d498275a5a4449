"""The redirect's link cache: memory, then Redis, then the database, kept honest across processes."""

import pytest

from links import cache
from links.models import Link
from links.services import link_create


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/old")


def test_an_entry_is_served_from_memory_without_the_database(link, redis_url, django_assert_num_queries):
    cache.link_entry(link.short_id)

    with django_assert_num_queries(0):
        assert cache.link_entry(link.short_id)["prefix"] == "https://shop.example/old"


def test_another_process_sees_an_edit_within_the_version_check(link, redis_url, monkeypatch):
    monkeypatch.setattr(cache, "_VERSION_CHECK_SECONDS", 0.0)
    assert cache.link_entry(link.short_id)["prefix"] == "https://shop.example/old"

    # Another process edits the link: the row changes, its shared entry goes, the version moves.
    Link.objects.filter(pk=link.pk).update(url="https://shop.example/new")
    client = cache.shared_redis()
    client.delete(cache._key(link.short_id))
    client.incr(cache._VERSION_KEY)

    assert cache.link_entry(link.short_id)["prefix"] == "https://shop.example/new"


def test_without_a_version_change_memory_keeps_its_copy(link, redis_url, monkeypatch):
    monkeypatch.setattr(cache, "_VERSION_CHECK_SECONDS", 0.0)
    cache.link_entry(link.short_id)

    Link.objects.filter(pk=link.pk).update(url="https://shop.example/new")

    assert cache.link_entry(link.short_id)["prefix"] == "https://shop.example/old"


def test_unknown_ids_are_remembered_and_forgotten_when_the_link_is_created(alice, redis_url, django_capture_on_commit_callbacks):
    assert cache.link_entry("launch-day") is None
    assert cache.shared_redis().get(cache._key("launch-day")) is not None

    with django_capture_on_commit_callbacks(execute=True):
        link_create(creator=alice, url="https://shop.example/launch", slug="launch-day")

    assert cache.link_entry("launch-day")["prefix"] == "https://shop.example/launch"


def test_a_new_worker_starts_with_what_the_shared_cache_holds(alice, redis_url, django_assert_num_queries):
    links = [link_create(creator=alice, url=f"https://shop.example/{number}") for number in range(3)]
    for link in links:
        cache.link_entry(link.short_id)  # another worker's lookups fill the shared cache
    cache.link_cache_clear_local()  # this process is new

    assert cache.link_cache_warm(batch=2) == 3

    client = cache.shared_redis()
    client.delete(*(cache._key(link.short_id) for link in links))  # nor Redis, nor the database
    with django_assert_num_queries(0):
        assert [cache.link_entry(link.short_id)["prefix"] for link in links] == [
            f"https://shop.example/{number}" for number in range(3)
        ]


def test_warming_without_redis_leaves_the_worker_cold(link, settings):
    settings.REDIS_URL = ""

    assert cache.link_cache_warm() == 0
    assert cache.link_entry(link.short_id)["prefix"] == "https://shop.example/old"
