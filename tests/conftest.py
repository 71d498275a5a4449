"""Shared fixtures: alice (a creator) and bob (another creator who must never see alice's data).

Tests use the real database and cache of the run: PostgreSQL and Redis when DATABASE_URL and
REDIS_URL are set (CI), SQLite and local memory otherwise. Tests that need Redis itself use the
`redis_url` fixture, which fails loudly when Redis does not answer.
"""

import os

import pytest
import redis
from django.core.cache import cache
from rest_framework.test import APIClient

from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_create, creator_create
from allumi.core.breaker import redis_breaker
from attribution.services import clicks_flush
from links.cache import link_cache_clear_local

PASSWORD = "correct-horse-battery-staple"
TEST_REDIS_URL = os.environ.get("TEST_REDIS_URL") or os.environ.get("REDIS_URL") or "redis://127.0.0.1:6379/15"


def pytest_collection_modifyitems(config, items):
    """Leave out tests about the other database engine (`postgres` on SQLite, `sqlite` on
    PostgreSQL): reported as deselected, never silently skipped. CI runs both."""
    from django.conf import settings

    other = "sqlite" if settings.DATABASES["default"]["ENGINE"].endswith("postgresql") else "postgres"
    left_out = [item for item in items if item.get_closest_marker(other)]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if not item.get_closest_marker(other)]


@pytest.fixture(autouse=True)
def _clean_caches():
    cache.clear()
    link_cache_clear_local()
    redis_breaker.reset()
    yield
    link_cache_clear_local()
    redis_breaker.reset()


def _make_creator(email):
    return creator_create(email=email, password=PASSWORD, name=email.split("@")[0].title(), confirmed=True)


@pytest.fixture
def alice(db):
    return _make_creator("alice@example.com")


@pytest.fixture
def bob(db):
    return _make_creator("bob@example.com")


@pytest.fixture
def alice_key(alice):
    return api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="alice server")[1]


@pytest.fixture
def bob_key(bob):
    return api_key_create(creator=bob, kind=ApiKey.Kind.SECRET, name="bob server")[1]


@pytest.fixture
def alice_api(alice_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {alice_key}")
    return client


@pytest.fixture
def bob_api(bob_key):
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {bob_key}")
    return client


@pytest.fixture
def alice_client(client, alice):
    client.force_login(alice)
    return client


@pytest.fixture
def bob_client(client, bob):
    client.force_login(bob)
    return client


@pytest.fixture
def flush():
    """Store buffered clicks now (a no-op when the run has no Redis and clicks are written directly)."""
    return clicks_flush


@pytest.fixture
def redis_url(settings):
    """Point the click buffer at a real Redis; fail, never skip, when it is unreachable."""
    client = redis.Redis.from_url(TEST_REDIS_URL, socket_connect_timeout=1)
    try:
        client.ping()
    except redis.exceptions.ConnectionError as error:
        pytest.fail(f"Redis at {TEST_REDIS_URL} does not answer ({error}); start it or set TEST_REDIS_URL.")
    from attribution.buffer import CLICK_BUFFER_KEY, FLUSH_LOCK_KEY

    def _forget():
        client.delete(CLICK_BUFFER_KEY, FLUSH_LOCK_KEY)
        for key in client.scan_iter("allumi:link*"):
            client.delete(key)

    _forget()
    settings.REDIS_URL = TEST_REDIS_URL
    yield TEST_REDIS_URL
    _forget()
