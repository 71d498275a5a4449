import json
import re
from io import StringIO

import pytest
from django.core import mail
from django.core.management import call_command
from django.core.management.base import CommandError
from django.db import connections
from django.test import TestCase
from rest_framework.test import APIClient

from allumi.accounts.models import ApiKey, Creator
from allumi.accounts.services import api_key_authenticate
from billing.management.commands.create_creator import Command
from billing.models import WhopConnection
from links.services import link_create
from tests.conftest import PASSWORD

KEYS = {"creator_id", "email", "api_key", "publishable_key", "whop_webhook_url", "whop_webhook_secret"}


def _create(*args) -> dict:
    out, err = StringIO(), StringIO()
    call_command("create_creator", *args, "--json", stdout=out, stderr=err)
    assert err.getvalue() == ""
    assert out.getvalue().endswith("\n") and out.getvalue().count("\n") == 1, out.getvalue()
    return json.loads(out.getvalue())


def _run_as_manage_py(monkeypatch, *args) -> int:
    """Run the command as `manage.py create_creator ...` does, in this process and on the test database.

    run_from_argv closes every connection when it ends, which would end the test's transaction."""
    monkeypatch.setattr(connections, "close_all", lambda: None)
    with pytest.raises(SystemExit) as exit_info:
        Command().run_from_argv(["manage.py", "create_creator", *args])
        raise SystemExit(0)
    return exit_info.value.code


@pytest.mark.django_db
def test_it_prints_one_json_object_with_the_credentials():
    result = _create("--email", "Carol@Example.com")

    assert set(result) == KEYS
    creator = Creator.objects.get()
    assert result["creator_id"] == str(creator.pk)
    assert result["email"] == creator.email == "carol@example.com"
    assert creator.email_confirmed and creator.is_active and not creator.is_staff
    assert re.fullmatch(r"sk_live_[0-9A-Za-z]{32,}", result["api_key"])
    assert re.fullmatch(r"pk_live_[0-9A-Za-z]{32,}", result["publishable_key"])
    connection = WhopConnection.objects.get(creator=creator)
    assert result["whop_webhook_url"] == f"/webhooks/whop/{connection.token}"
    assert len(connection.token) >= 24
    assert result["whop_webhook_secret"] == connection.signing_secret
    assert len(result["whop_webhook_secret"]) >= 32


@pytest.mark.django_db
def test_it_creates_one_key_of_each_kind_that_authenticates():
    result = _create("--email", "carol@example.com")

    creator = Creator.objects.get()
    assert sorted(creator.api_keys.values_list("kind", flat=True)) == ["publishable", "secret"]
    assert api_key_authenticate(raw=result["api_key"], kind=ApiKey.Kind.SECRET).creator == creator
    assert api_key_authenticate(raw=result["publishable_key"], kind=ApiKey.Kind.PUBLISHABLE).creator == creator
    assert api_key_authenticate(raw=result["publishable_key"], kind=ApiKey.Kind.SECRET) is None


def test_it_gives_an_api_key_that_sees_only_the_new_creators_links(alice):
    link_create(creator=alice, url="https://shop.example/alice")
    result = _create("--email", "carol@example.com")
    api = APIClient()
    api.credentials(HTTP_AUTHORIZATION=f"Bearer {result['api_key']}")

    empty = api.get("/api/v1/links")
    created = api.post("/api/v1/links", {"url": "https://shop.example/carol"}, format="json")
    listed = api.get("/api/v1/links")

    assert empty.status_code == 200 and empty.json()["results"] == []
    assert created.status_code == 201
    assert [link["url"] for link in listed.json()["results"]] == ["https://shop.example/carol"]


@pytest.mark.django_db
def test_it_uses_the_whop_secret_as_given():
    result = _create("--email", "carol@example.com", "--whop-secret", "ws_from_whop_dashboard_123")

    assert result["whop_webhook_secret"] == "ws_from_whop_dashboard_123"
    assert WhopConnection.objects.get().signing_secret == "ws_from_whop_dashboard_123"


@pytest.mark.django_db
def test_it_draws_a_different_token_and_secret_for_each_creator():
    first = _create("--email", "carol@example.com")
    second = _create("--email", "dave@example.com")

    assert first["whop_webhook_url"] != second["whop_webhook_url"]
    assert first["whop_webhook_secret"] != second["whop_webhook_secret"]
    assert first["api_key"] != second["api_key"]


@pytest.mark.django_db
def test_it_sets_the_password_when_given(client):
    _create("--email", "carol@example.com", "--password", PASSWORD)

    response = client.post("/accounts/login/", {"username": "carol@example.com", "password": PASSWORD})

    assert response.status_code == 302 and response["Location"] == "/overview/"


@pytest.mark.django_db
def test_it_leaves_the_password_unusable_when_none_is_given():
    _create("--email", "carol@example.com")

    assert not Creator.objects.get().has_usable_password()


@pytest.mark.django_db
def test_it_prints_one_line_per_value_without_json():
    out = StringIO()
    call_command("create_creator", "--email", "carol@example.com", stdout=out)

    lines = out.getvalue().splitlines()
    assert len(lines) == len(KEYS)
    assert {line.split(": ", 1)[0] for line in lines} == KEYS
    assert "email: carol@example.com" in lines


@pytest.mark.parametrize("email", ["alice@example.com", "ALICE@Example.COM"])
def test_it_refuses_an_existing_email_and_creates_nothing(alice, email):
    out = StringIO()
    with pytest.raises(CommandError, match="already exists") as error:
        call_command("create_creator", "--email", email, "--whop-secret", "ws_x", "--json", stdout=out)

    assert error.value.returncode == 1
    assert out.getvalue() == ""
    assert Creator.objects.count() == 1
    assert not ApiKey.objects.exists() and not WhopConnection.objects.exists()


def test_it_exits_1_with_the_message_on_stderr_for_an_existing_email(monkeypatch, capsys, alice):
    code = _run_as_manage_py(monkeypatch, "--email", "Alice@Example.com", "--json")

    out, err = capsys.readouterr()
    assert code == 1
    assert out == ""
    assert "CommandError: A creator with the email Alice@Example.com already exists." in err
    assert Creator.objects.count() == 1 and not ApiKey.objects.exists()


@pytest.mark.django_db
def test_it_exits_0_when_run_as_manage_py(monkeypatch, capsys):
    code = _run_as_manage_py(monkeypatch, "--email", "carol@example.com", "--json")

    out, err = capsys.readouterr()
    assert code == 0 and err == ""
    assert json.loads(out)["email"] == "carol@example.com"


@pytest.mark.django_db
@pytest.mark.parametrize("email", ["not-an-email", "carol@", "@example.com", "carol example.com", ""])
def test_it_refuses_an_invalid_email_and_creates_nothing(email):
    out = StringIO()
    with pytest.raises(CommandError, match="is not a valid email address"):
        call_command("create_creator", "--email", email, "--json", stdout=out)

    assert out.getvalue() == ""
    assert not Creator.objects.exists() and not WhopConnection.objects.exists()


@pytest.mark.django_db
def test_it_requires_an_email():
    with pytest.raises(CommandError, match="--email"):
        call_command("create_creator", "--json")

    assert not Creator.objects.exists()


@pytest.mark.django_db
def test_it_lets_a_creator_provisioned_without_password_choose_one_by_password_reset(client):
    _create("--email", "carol@example.com")

    with TestCase.captureOnCommitCallbacks(execute=True):  # the email is queued on commit
        client.post("/accounts/password-reset/", {"email": "carol@example.com"})

    assert [message.to for message in mail.outbox] == [["carol@example.com"]]
    path = re.search(r"https?://[^/\s]+(/accounts/password-reset/\S+/)", mail.outbox[0].body).group(1)
    set_url = client.get(path, follow=True).redirect_chain[-1][0]
    client.post(set_url, {"new_password1": PASSWORD, "new_password2": PASSWORD})
    response = client.post("/accounts/login/", {"username": "carol@example.com", "password": PASSWORD})
    assert response.status_code == 302 and response["Location"] == "/overview/"
