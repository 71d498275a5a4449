"""The click buffer: Redis in front of the database, and what happens when parts of it fail."""

import json
import os
import signal
import subprocess
import sys
import time

import pytest
from django.conf import settings as django_settings
from django.db import connection

from allumi.core.breaker import redis_breaker
from attribution import buffer
from attribution.models import Click
from attribution.services import clicks_flush, new_click_id
from links.services import link_create

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/offer")


def _follow(client, link, times=1):
    for _ in range(times):
        assert client.get(f"/l/{link.short_id}", HTTP_USER_AGENT=BROWSER).status_code == 302


def test_a_click_waits_in_redis_until_the_flusher_stores_it(client, link, redis_url):
    _follow(client, link, times=3)

    assert Click.objects.count() == 0
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 3

    assert clicks_flush() == 3
    assert Click.objects.count() == 3
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 0


def test_flushing_twice_stores_each_click_once(client, link, redis_url):
    _follow(client, link, times=2)
    raw = buffer.client().lrange(buffer.CLICK_BUFFER_KEY, 0, -1)
    clicks_flush()

    # A flusher that died after its insert but before trimming leaves the same batch behind,
    # with newer clicks after it: the stored ones are skipped, the new one is stored.
    buffer.client().rpush(buffer.CLICK_BUFFER_KEY, *raw)
    _follow(client, link)
    clicks_flush()

    assert Click.objects.count() == 3


def test_a_flusher_that_holds_the_lock_keeps_others_out(client, link, redis_url):
    _follow(client, link)
    held = buffer.client().lock(buffer.FLUSH_LOCK_KEY, timeout=5)
    assert held.acquire(blocking=False)
    try:
        assert clicks_flush() == 0
        assert Click.objects.count() == 0
    finally:
        held.release()
    assert clicks_flush() == 1


def test_redirects_work_and_store_clicks_when_redis_is_unreachable(client, link, settings):
    # Nothing listens on this port: the buffer and the shared link cache both fail to connect.
    dead = "redis://127.0.0.1:6390/0"
    settings.REDIS_URL = dead
    settings.CACHES = {
        "default": {
            "BACKEND": "django.core.cache.backends.redis.RedisCache",
            "LOCATION": dead,
            "OPTIONS": {"socket_connect_timeout": 0.1, "socket_timeout": 0.1},
        }
    }
    started = time.monotonic()

    _follow(client, link, times=20)

    assert Click.objects.count() == 20
    # The breaker stops the hot path from paying a connect timeout on every request.
    assert time.monotonic() - started < 2


@pytest.mark.django_db(transaction=True)
def test_killing_the_flusher_midway_loses_no_click(link, redis_url, tmp_path):
    total = 6000
    client = buffer.client()
    payloads = [
        json.dumps(
            {"id": new_click_id(), "link": link.id, "creator": link.creator_id, "ts": time.time() - i,
             "method": "GET", "ip": f"81.2.69.{i % 250 + 1}", "ua": BROWSER, "al": "en-US", "vid": f"{i % 900:022d}"}
        )
        for i in range(total)
    ]
    client.rpush(buffer.CLICK_BUFFER_KEY, *payloads)

    db = connection.settings_dict
    if db["ENGINE"].endswith("sqlite3"):
        database_url = f"sqlite:///{db['NAME']}"
    else:
        database_url = f"postgres://{db['USER']}@{db['HOST'] or '127.0.0.1'}:{db['PORT'] or 5432}/{db['NAME']}"
    env = dict(
        os.environ,
        DJANGO_SETTINGS_MODULE="tests.settings",
        DATABASE_URL=database_url,
        REDIS_URL=redis_url,
        CLICK_FLUSH_LOCK_TIMEOUT="2",
    )
    flusher = subprocess.Popen(
        [sys.executable, "manage.py", "flush_clicks", "--batch-size", "250"],
        cwd=django_settings.BASE_DIR, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        while Click.objects.count() == 0 and flusher.poll() is None and time.monotonic() < deadline:
            time.sleep(0.02)
        flusher.send_signal(signal.SIGKILL)
        flusher.wait(10)
    finally:
        if flusher.poll() is None:
            flusher.kill()
    stored_before = Click.objects.count()
    assert 0 < stored_before < total, "the flusher should have been killed midway"

    # The dead flusher's lock expires; the next flush run picks up where it stopped.
    time.sleep(2.2)
    clicks_flush()

    assert Click.objects.count() == total
    assert Click.objects.values("public_id").distinct().count() == total
    assert client.llen(buffer.CLICK_BUFFER_KEY) == 0


def test_an_unreadable_buffered_click_does_not_block_the_rest(client, link, redis_url):
    buffer.client().rpush(buffer.CLICK_BUFFER_KEY, b"{not json")
    _follow(client, link)

    clicks_flush()

    assert Click.objects.count() == 1
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 0


def test_buffered_clicks_of_a_link_deleted_meanwhile_do_not_block_the_others(client, alice, link, redis_url):
    doomed = link_create(creator=alice, url="https://shop.example/gone")
    _follow(client, doomed)
    _follow(client, link, times=2)
    doomed.delete()  # no stored click protects it yet

    assert clicks_flush() == 2
    assert list(Click.objects.values_list("link_id", flat=True)) == [link.id, link.id]
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 0


def test_a_redirect_whose_redis_connection_broke_stores_its_click_and_the_next_one_reconnects(client, link, redis_url):
    _follow(client, link)  # opens this thread's buffer connection
    buffer._hot.connection._sock.close()  # the socket dies under it (Redis restarted, say)

    _follow(client, link)  # this click cannot reach Redis: written to the database instead
    assert Click.objects.count() == 1
    assert buffer._hot.connection is None
    assert redis_breaker.is_open  # and Redis is left alone for a few seconds

    redis_breaker.reset()  # those seconds pass
    _follow(client, link)  # the next one is buffered on a new connection
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 2
    assert clicks_flush() == 2
    assert Click.objects.count() == 3


def test_the_unique_flag_looks_at_the_visitors_clicks_stored_by_earlier_flushes(alice, link, redis_url):
    other = link_create(creator=alice, url="https://shop.example/other")
    now = time.time()

    def buffered(on, seconds_ago, visitor="v" * 22):
        payload = {"id": new_click_id(), "link": on.id, "creator": alice.id, "ts": now - seconds_ago, "method": "GET",
                   "ip": "81.2.69.160", "ua": BROWSER, "al": "en-US", "vid": visitor}
        buffer.client().rpush(buffer.CLICK_BUFFER_KEY, json.dumps(payload))
        return payload["id"]

    first = buffered(link, 2 * 3600)
    clicks_flush()
    after_an_hour_and_a_half = buffered(link, 1800)
    clicks_flush()
    within_the_hour = buffered(link, 0)
    another_link = buffered(other, 0)
    another_visitor = buffered(link, 0, visitor="w" * 22)
    clicks_flush()

    unique = dict(Click.objects.values_list("public_id", "is_unique"))
    assert unique == {first: True, after_an_hour_and_a_half: True, within_the_hour: False, another_link: True, another_visitor: True}


def test_the_flusher_pauses_between_batches_as_long_as_the_last_one_took(client, link, redis_url, settings, monkeypatch):
    settings.CLICK_FLUSH_BATCH_SIZE = 2
    settings.CLICK_FLUSH_PAUSE_RATIO = 1.0
    _follow(client, link, times=5)
    pauses = []
    monkeypatch.setattr("attribution.services.time.sleep", pauses.append)

    assert clicks_flush() == 5

    assert len(pauses) == 2  # three batches: 2 + 2 + 1
    assert all(0 < pause <= 1.0 for pause in pauses)
    settings.CLICK_FLUSH_PAUSE_RATIO = 0
    pauses.clear()
    _follow(client, link, times=5)
    assert clicks_flush() == 5
    assert pauses == []


def test_without_database_foreign_keys_django_still_protects_clicked_links(client, alice, link, redis_url):
    from django.db.models import ProtectedError

    unclicked = link_create(creator=alice, url="https://shop.example/never")
    _follow(client, link)
    clicks_flush()

    with pytest.raises(ProtectedError):
        link.delete()
    with pytest.raises(ProtectedError):  # nor its creator, with the link
        alice.delete()
    unclicked.delete()

    assert list(Click.objects.values_list("link_id", flat=True)) == [link.id]
