"""Rate limits, counted in a real Redis (the production cache), answered in the API error format."""

import pytest
from django.core.cache import cache

from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_create
from tests.conftest import PASSWORD


@pytest.fixture
def redis_cache(settings, redis_url):
    settings.CACHES = {"default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": redis_url, "KEY_PREFIX": "allumi-test"}}
    settings.RATELIMIT_ENABLE = True
    cache.clear()
    yield
    cache.clear()


def _limits(settings, **overrides):
    settings.RATELIMITS = {**settings.RATELIMITS, **overrides}


def test_link_creation_is_limited_per_key_with_retry_after(alice_api, bob_api, settings, redis_cache):
    _limits(settings, link_create="3/m")

    answers = [alice_api.post("/api/v1/links", {"url": f"https://shop.example/{n}"}, format="json").status_code for n in range(4)]

    assert answers == [201, 201, 201, 429]
    refused = alice_api.post("/api/v1/links", {"url": "https://shop.example/again"}, format="json")
    assert refused.json()["error"]["code"] == "rate_limited"
    assert 0 < int(refused["Retry-After"]) <= 60
    # Another key, and other endpoints of the same key, are counted apart.
    assert bob_api.post("/api/v1/links", {"url": "https://shop.example/bob"}, format="json").status_code == 201
    assert alice_api.get("/api/v1/links").status_code == 200


def test_other_api_endpoints_share_the_general_limit(alice_api, settings, redis_cache):
    _limits(settings, api="2/m")

    assert [alice_api.get("/api/v1/links").status_code for _ in range(3)] == [200, 200, 429]


def test_browser_tracking_is_limited_per_client_address(client, alice, settings, redis_cache):
    _limits(settings, track="2/m")
    key = api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="site")[1]

    def track(ip):
        return client.post(
            "/api/v1/conversions/track", {"event": "signup"}, content_type="application/json", HTTP_X_ALLUMI_KEY=key, REMOTE_ADDR=ip
        ).status_code

    assert [track("81.2.69.1") for _ in range(3)] == [202, 202, 429]
    assert track("81.2.69.2") == 202


def test_the_limits_can_be_switched_off(alice_api, settings, redis_cache):
    _limits(settings, api="1/m")
    settings.RATELIMIT_ENABLE = False

    assert [alice_api.get("/api/v1/links").status_code for _ in range(3)] == [200, 200, 200]


def test_signups_are_limited_per_address(client, db, settings, redis_cache):
    _limits(settings, signup="2/m")

    statuses = [
        client.post("/accounts/signup/", {"email": f"new{n}@example.org", "password": "plum-orchard-delta-42"}).status_code
        for n in range(3)
    ]

    assert statuses == [200, 200, 429]


def test_repeated_failed_logins_lock_the_account_from_that_address(client, alice, redis_cache):
    statuses = [client.post("/accounts/login/", {"username": alice.email, "password": "wrong-password"}).status_code for _ in range(5)]
    assert statuses == [200, 200, 200, 200, 429]  # the fifth failure locks

    locked = client.post("/accounts/login/", {"username": alice.email, "password": PASSWORD})

    assert locked.status_code == 429
    assert b"Too many failed log-ins" in locked.content
    # Another address may still log in to the account.
    other = client.post("/accounts/login/", {"username": alice.email, "password": PASSWORD}, REMOTE_ADDR="81.2.69.50")
    assert other.status_code == 302
