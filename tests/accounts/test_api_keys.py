import hashlib
import re
from datetime import timedelta

import pytest
from django.urls import reverse
from django.utils import timezone
from rest_framework.test import APIClient

from allumi.accounts.keys import BASE62
from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_authenticate, api_key_create, api_key_revoke

KEYS = reverse("accounts:api_keys")
LINKS_API = "/api/v1/links"
KEY_PATTERN = {
    ApiKey.Kind.SECRET: re.compile(r"^sk_live_[0-9A-Za-z]{32,}$"),
    ApiKey.Kind.PUBLISHABLE: re.compile(r"^pk_live_[0-9A-Za-z]{32,}$"),
}


def _api(raw=None, **headers):
    client = APIClient()
    if raw is not None:
        headers.setdefault("HTTP_AUTHORIZATION", f"Bearer {raw}")
    client.credentials(**headers)
    return client


def _assert_api_error(response, status, code):
    assert response.status_code == status
    assert response["Content-Type"] == "application/json"
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert body["error"]["message"]
    assert body["error"]["request_id"] == response["X-Request-ID"]


# --- services ---------------------------------------------------------------------------------


@pytest.mark.parametrize("kind", [ApiKey.Kind.SECRET, ApiKey.Kind.PUBLISHABLE])
def test_it_creates_a_prefixed_key_of_at_least_32_random_base62_characters(alice, kind):
    raws = [api_key_create(creator=alice, kind=kind, name=f"key {i}")[1] for i in range(40)]

    assert all(KEY_PATTERN[kind].match(raw) for raw in raws)
    assert len(set(raws)) == len(raws)
    randoms = "".join(raw[len("sk_live_") :] for raw in raws)
    # 1280 draws from 62 symbols: every class of character shows up unless the draw is broken.
    assert set(randoms) <= set(BASE62)
    assert len(set(randoms)) > 50


def test_it_stores_only_a_sha256_of_the_key(alice):
    api_key, raw = api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="  server  ")

    api_key.refresh_from_db()
    assert api_key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert api_key.prefix == raw[:12]
    assert api_key.name == "server"
    assert api_key.creator == alice and api_key.is_active and api_key.last_used_at is None
    row = ApiKey.objects.filter(pk=api_key.pk).values().get()
    secret_part = raw[len("sk_live_") :]
    assert not any(secret_part in str(value) for value in row.values())


def test_it_names_a_key_after_its_kind_when_no_name_is_given(alice):
    api_key, _ = api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="   ")

    assert api_key.name == "Publishable"


def test_it_authenticates_a_key_of_the_right_kind_only(alice):
    secret, secret_raw = api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="s")
    publishable, publishable_raw = api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="p")

    assert api_key_authenticate(raw=secret_raw, kind=ApiKey.Kind.SECRET) == secret
    assert api_key_authenticate(raw=secret_raw, kind=ApiKey.Kind.SECRET).creator == alice
    assert api_key_authenticate(raw=publishable_raw, kind=ApiKey.Kind.PUBLISHABLE) == publishable
    assert api_key_authenticate(raw=publishable_raw, kind=ApiKey.Kind.SECRET) is None
    assert api_key_authenticate(raw=secret_raw, kind=ApiKey.Kind.PUBLISHABLE) is None


@pytest.mark.parametrize("raw", ["", "sk_live_" + "a" * 32, "x" * 101])
def test_it_refuses_an_unknown_key(alice_key, raw):
    assert api_key_authenticate(raw=raw, kind=ApiKey.Kind.SECRET) is None


def test_it_refuses_a_key_with_one_character_changed(alice_key):
    changed = alice_key[:-1] + ("a" if alice_key[-1] != "a" else "b")

    assert api_key_authenticate(raw=changed, kind=ApiKey.Kind.SECRET) is None


def test_it_refuses_a_revoked_key(alice):
    api_key, raw = api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="s")

    api_key_revoke(api_key=api_key)

    api_key.refresh_from_db()
    assert api_key.revoked_at is not None and not api_key.is_active
    assert api_key_authenticate(raw=raw, kind=ApiKey.Kind.SECRET) is None


def test_it_keeps_the_first_revocation_time(alice):
    api_key, _ = api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="s")
    api_key_revoke(api_key=api_key)
    api_key.refresh_from_db()
    first = api_key.revoked_at

    api_key_revoke(api_key=api_key)

    api_key.refresh_from_db()
    assert api_key.revoked_at == first


def test_it_refuses_the_key_of_a_deactivated_creator(alice, alice_key):
    alice.is_active = False
    alice.save(update_fields=["is_active"])

    assert api_key_authenticate(raw=alice_key, kind=ApiKey.Kind.SECRET) is None


def test_it_records_when_a_key_was_last_used_at_most_once_a_minute(alice):
    api_key, raw = api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="s")

    before = timezone.now()
    api_key_authenticate(raw=raw, kind=ApiKey.Kind.SECRET)
    api_key.refresh_from_db()
    assert before <= api_key.last_used_at <= timezone.now()

    recent = timezone.now() - timedelta(seconds=30)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=recent)
    api_key_authenticate(raw=raw, kind=ApiKey.Kind.SECRET)
    api_key.refresh_from_db()
    assert api_key.last_used_at == recent

    stale = timezone.now() - timedelta(seconds=61)
    ApiKey.objects.filter(pk=api_key.pk).update(last_used_at=stale)
    api_key_authenticate(raw=raw, kind=ApiKey.Kind.SECRET)
    api_key.refresh_from_db()
    assert api_key.last_used_at > stale + timedelta(seconds=30)


# --- the dashboard page -----------------------------------------------------------------------


@pytest.mark.parametrize("kind", [ApiKey.Kind.SECRET, ApiKey.Kind.PUBLISHABLE])
def test_it_shows_a_new_key_once(alice_client, alice, kind):
    response = alice_client.post(KEYS, {"name": "Zapier", "kind": kind})

    assert response.status_code == 200
    api_key = ApiKey.objects.get(creator=alice)
    assert (api_key.name, api_key.kind) == ("Zapier", kind)
    raw = response.context["new_key"]
    assert KEY_PATTERN[kind].match(raw)
    assert api_key.key_hash == hashlib.sha256(raw.encode()).hexdigest()
    assert raw in response.content.decode()
    assert "it will not be shown again" in response.content.decode()

    later = alice_client.get(KEYS)

    assert later.status_code == 200
    assert raw not in later.content.decode()
    assert raw[len("sk_live_") :] not in later.content.decode()
    assert f"{api_key.prefix}…" in later.content.decode()


def test_it_refuses_a_key_without_a_name_or_with_an_unknown_kind(alice_client, alice):
    assert alice_client.post(KEYS, {"name": "", "kind": "secret"}).status_code == 200
    assert alice_client.post(KEYS, {"name": "x", "kind": "admin"}).status_code == 200

    assert not ApiKey.objects.filter(creator=alice).exists()


def test_it_lists_only_the_creators_own_keys(alice_client, alice, bob):
    api_key_create(creator=alice, kind=ApiKey.Kind.SECRET, name="alice server")
    bob_row, _ = api_key_create(creator=bob, kind=ApiKey.Kind.SECRET, name="bob server")

    body = alice_client.get(KEYS).content.decode()

    assert "alice server" in body
    assert "bob server" not in body and bob_row.prefix not in body


def test_it_revokes_a_key_through_the_page(alice_client, alice, alice_key):
    api_key = ApiKey.objects.get(creator=alice)
    assert _api(alice_key).get(LINKS_API).status_code == 200

    response = alice_client.post(reverse("accounts:api_key_revoke", args=[api_key.pk]))

    assert response.status_code == 302 and response["Location"] == KEYS
    api_key.refresh_from_db()
    assert api_key.revoked_at is not None
    _assert_api_error(_api(alice_key).get(LINKS_API), 401, "authentication_failed")
    page = alice_client.get(KEYS).content.decode()
    assert "revoked" in page
    assert reverse("accounts:api_key_revoke", args=[api_key.pk]) not in page


def test_it_does_not_revoke_on_get(alice_client, alice, alice_key):
    api_key = ApiKey.objects.get(creator=alice)

    response = alice_client.get(reverse("accounts:api_key_revoke", args=[api_key.pk]))

    assert response.status_code == 405
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


def test_it_answers_404_when_bob_revokes_alices_key(bob_client, alice, alice_key):
    api_key = ApiKey.objects.get(creator=alice)

    response = bob_client.post(reverse("accounts:api_key_revoke", args=[api_key.pk]))

    assert response.status_code == 404
    api_key.refresh_from_db()
    assert api_key.revoked_at is None
    assert _api(alice_key).get(LINKS_API).status_code == 200


def test_it_answers_404_for_a_key_that_does_not_exist(alice_client):
    assert alice_client.post(reverse("accounts:api_key_revoke", args=[999999])).status_code == 404


def test_it_requires_login_for_the_keys_pages(client, alice, alice_key):
    api_key = ApiKey.objects.get(creator=alice)

    assert client.get(KEYS).status_code == 302
    assert client.post(KEYS, {"name": "x", "kind": "secret"}).status_code == 302
    assert client.post(reverse("accounts:api_key_revoke", args=[api_key.pk])).status_code == 302
    assert ApiKey.objects.count() == 1
    api_key.refresh_from_db()
    assert api_key.revoked_at is None


# --- the API ----------------------------------------------------------------------------------


def test_it_lets_a_secret_key_into_the_api_and_records_its_use(alice, alice_key):
    response = _api(alice_key).get(LINKS_API)

    assert response.status_code == 200
    assert ApiKey.objects.get(creator=alice).last_used_at is not None


def test_it_answers_401_in_the_api_error_format_for_a_revoked_key(alice, alice_key):
    api_key_revoke(api_key=ApiKey.objects.get(creator=alice))

    response = _api(alice_key).get(LINKS_API)

    _assert_api_error(response, 401, "authentication_failed")
    assert response["WWW-Authenticate"] == "Bearer"


def test_it_answers_401_for_a_publishable_key_used_as_bearer(alice):
    _, publishable = api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="snippet")

    response = _api(publishable).get(LINKS_API)

    _assert_api_error(response, 401, "authentication_failed")


def test_it_answers_401_without_an_authorization_header(db):
    response = _api().get(LINKS_API)

    _assert_api_error(response, 401, "not_authenticated")
    assert response["WWW-Authenticate"] == "Bearer"


@pytest.mark.parametrize("header", ["Bearer", "Bearer    ", "Token {key}", "Basic {key}", "bearer{key}"])
def test_it_answers_401_for_a_malformed_authorization_header(alice_key, header):
    response = _api(HTTP_AUTHORIZATION=header.format(key=alice_key)).get(LINKS_API)

    _assert_api_error(response, 401, "authentication_failed")


def test_it_does_not_let_a_dashboard_session_into_the_api(alice_client):
    response = alice_client.get(LINKS_API)

    _assert_api_error(response, 401, "not_authenticated")
