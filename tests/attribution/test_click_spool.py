"""The click spool: each web process appends its clicks to a local file and ships them in batches.

What must hold: every spooled click reaches the database, through the Redis buffer or, when Redis
does not answer, directly; a process killed with clicks spooled leaves them to another one.
"""

import json
import logging
import os
import signal
import subprocess
import sys
import textwrap
import time

import pytest
from django.conf import settings as django_settings

from attribution import buffer, services
from attribution.models import Click
from attribution.services import clicks_flush, new_click_id
from attribution.spool import ClickSpool
from links.services import link_create

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/offer")


@pytest.fixture
def spool_dir(settings, tmp_path, redis_url):
    """Redirects spool into a fresh directory; the spool's own thread waits an hour between
    shipments, so each test ships when it says so."""
    settings.CLICK_SPOOL_DIR = str(tmp_path)
    settings.CLICK_SPOOL_INTERVAL = 3600
    yield tmp_path
    services.click_spool_close()
    services._spools.clear()


def _follow(client, link, times=1):
    for _ in range(times):
        assert client.get(f"/l/{link.short_id}", HTTP_USER_AGENT=BROWSER).status_code == 302


def _spooled_lines(directory):
    return [line for path in directory.glob("*.clicks") for line in path.read_bytes().splitlines()]


def _payload(link, i):
    return {
        "id": new_click_id(), "link": link.id, "creator": link.creator_id, "ts": time.time() - i, "method": "GET",
        "ip": f"81.2.69.{i % 250 + 1}", "ua": BROWSER, "al": "en-US", "vid": f"{i:022d}",
    }


def test_a_redirect_spools_its_click_and_a_shipment_moves_it_to_the_buffer(client, link, spool_dir):
    _follow(client, link, times=3)

    assert len(_spooled_lines(spool_dir)) == 3
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 0  # the redirect did not talk to Redis

    assert services._click_spool().ship() == 3
    assert _spooled_lines(spool_dir) == []
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 3
    assert clicks_flush() == 3
    assert Click.objects.filter(link=link).count() == 3


def test_the_spools_thread_ships_on_its_own(client, link, spool_dir, settings):
    settings.CLICK_SPOOL_INTERVAL = 0.05
    _follow(client, link, times=2)

    deadline = time.monotonic() + 5
    while buffer.client().llen(buffer.CLICK_BUFFER_KEY) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 2
    assert _spooled_lines(spool_dir) == []


def test_a_shipment_when_redis_does_not_answer_goes_to_the_database(client, link, spool_dir, settings):
    _follow(client, link, times=4)
    settings.REDIS_URL = "redis://127.0.0.1:6390/0"  # nothing listens here

    assert services._click_spool().ship() == 4

    assert Click.objects.filter(link=link).count() == 4
    assert _spooled_lines(spool_dir) == []


def test_a_shipment_nobody_takes_stays_spooled_for_the_next_round(link, spool_dir):
    failing = True

    def deliver(lines):
        if failing:
            raise ConnectionError("neither Redis nor the database answers")
        delivered.extend(lines)

    delivered = []
    spool = ClickSpool(spool_dir, deliver=deliver, interval=3600)
    spool.append('{"n":1}')
    spool.append('{"n":2}')
    with pytest.raises(ConnectionError):
        spool.ship()
    spool.append('{"n":3}')
    assert len(_spooled_lines(spool_dir)) == 3

    failing = False
    assert spool.ship() == 3
    assert delivered == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    spool.close()
    assert list(spool_dir.iterdir()) == []


def test_a_killed_process_leaves_its_clicks_to_another_one(link, spool_dir, redis_url):
    """A web process spools clicks and is killed before it ships them (SIGKILL: no exit hook runs).
    While it lives, its file is its own; once it is dead, the next shipment adopts the file."""
    total = 500
    payloads = [_payload(link, i) for i in range(total)]
    writer = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(
            """
            import json, sys, time
            import django
            django.setup()
            from django.conf import settings
            settings.CLICK_SPOOL_DIR, settings.CLICK_SPOOL_INTERVAL = sys.argv[1], 3600
            from attribution.services import click_capture
            for line in sys.stdin:
                click_capture(payload=json.loads(line))
            print("spooled", flush=True)
            time.sleep(60)
            """
        ), str(spool_dir)],
        cwd=django_settings.BASE_DIR, env=dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", REDIS_URL=redis_url),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        writer.stdin.write("".join(json.dumps(payload) + "\n" for payload in payloads))
        writer.stdin.close()
        assert writer.stdout.readline().strip() == "spooled"
        assert len(_spooled_lines(spool_dir)) == total

        here = ClickSpool(spool_dir, deliver=services._deliver_spooled, interval=3600)
        here.append(json.dumps(_payload(link, total)))  # this process's own click
        assert here.ship() == 1  # the living writer's file is left alone
        assert len(_spooled_lines(spool_dir)) == total

        writer.send_signal(signal.SIGKILL)
        writer.wait(10)
        here._adopted_at = 0.0  # the next look for orphans is due
        assert here.ship() == total
        here.close()
    finally:
        if writer.poll() is None:
            writer.kill()

    assert list(spool_dir.iterdir()) == []
    assert clicks_flush() == total + 1
    stored = set(Click.objects.values_list("public_id", flat=True))
    assert {payload["id"] for payload in payloads} <= stored


def test_a_partial_last_line_is_dropped_and_the_whole_ones_shipped(spool_dir, caplog):
    # A process killed in the middle of its write(2) leaves half a line (never seen from a
    # single short write in practice, but the reader must not choke on it).
    (spool_dir / "elsewhere-1-1.clicks").write_bytes(b'{"n":1}\n{"n":2}\n{"n":')
    delivered = []
    spool = ClickSpool(spool_dir, deliver=delivered.extend, interval=3600)

    with caplog.at_level(logging.ERROR, logger="attribution.spool"):
        spool.append('{"n":3}')
        assert spool.ship() == 3

    assert sorted(delivered) == [b'{"n":1}', b'{"n":2}', b'{"n":3}']
    assert "partial spooled click" in caplog.text
    spool.close()
    assert list(spool_dir.iterdir()) == []


def test_a_forked_process_spools_into_a_file_of_its_own(spool_dir, caplog):
    delivered = []
    spool = ClickSpool(spool_dir, deliver=delivered.extend, interval=3600)
    spool.append('{"from":"parent"}')

    child = os.fork()
    if child == 0:  # a worker forked from a master that had spooled: appends, then dies
        try:
            spool.append('{"from":"child"}')
        finally:
            os._exit(0)
    os.waitpid(child, 0)

    with caplog.at_level(logging.INFO, logger="attribution.spool"):
        assert spool.ship() == 2
    assert sorted(delivered) == [b'{"from":"child"}', b'{"from":"parent"}']
    assert f"-{child}-1.clicks" in caplog.text  # adopted from the dead child's own file
    spool.close()
    assert list(spool_dir.iterdir()) == []


def test_closing_ships_what_is_left(link, spool_dir):
    delivered = []
    spool = ClickSpool(spool_dir, deliver=delivered.extend, interval=3600)
    for n in range(5):
        spool.append(json.dumps({"n": n}))

    spool.close()  # gunicorn's worker_exit

    assert len(delivered) == 5
    assert list(spool_dir.iterdir()) == []


def test_a_click_the_spool_cannot_write_goes_to_the_buffer_directly(client, link, spool_dir, monkeypatch):
    def disk_full(line):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(services._click_spool(), "append", disk_full)

    _follow(client, link)

    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 1
    assert clicks_flush() == 1


def test_a_spool_directory_that_cannot_be_made_sends_clicks_to_the_buffer(client, link, spool_dir, settings):
    (spool_dir / "taken").write_text("a file where the directory should be")
    settings.CLICK_SPOOL_DIR = str(spool_dir / "taken" / "clicks")

    _follow(client, link, times=2)  # the second one tries again, and fails the same way

    assert buffer.client().llen(buffer.CLICK_BUFFER_KEY) == 2
    assert clicks_flush() == 2
