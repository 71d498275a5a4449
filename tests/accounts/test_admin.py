import time
from urllib.parse import urlencode

import pytest
from django.contrib import admin
from django.test import RequestFactory
from django.urls import reverse
from django.utils import timezone

from allumi.accounts.models import ApiKey, Creator
from allumi.accounts.services import api_key_create
from attribution.models import Click
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from billing.models import WhopConnection
from billing.services import whop_connection_create
from links.models import Link, Tag
from links.services import link_create
from tests.conftest import PASSWORD

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
MODELS = [Creator, ApiKey, Link, Tag, Click, WhopConnection]


def _click(link, **headers):
    request = RequestFactory().get(f"/l/{link.short_id}", {"utm_source": "yt"}, REMOTE_ADDR="81.2.69.142", **headers)
    payload = click_payload(
        request=request,
        link_id=link.pk,
        creator_id=link.creator_id,
        click_id=new_click_id(),
        visitor_id=new_visitor_id(),
        occurred_at=time.time(),
    )
    clicks_store(payloads=[payload])
    return Click.objects.get(public_id=payload["id"])


@pytest.fixture
def rows(alice, bob, alice_key):
    """A few rows of every model the admin shows, for alice and bob."""
    alice_link = link_create(creator=alice, url="https://shop.example/alice", title="Alice launch", tags=["launch"])
    bob_link = link_create(creator=bob, url="https://shop.example/bob", title="Bob sale", tags=["sale"])
    revoked, _ = api_key_create(creator=bob, kind=ApiKey.Kind.PUBLISHABLE, name="bob snippet")
    revoked.revoked_at = timezone.now()
    revoked.save(update_fields=["revoked_at"])
    return {
        Creator: alice,
        ApiKey: ApiKey.objects.get(creator=alice),
        Link: alice_link,
        Tag: Tag.objects.get(creator=alice),
        Click: [_click(alice_link, HTTP_USER_AGENT=IPHONE), _click(bob_link, HTTP_USER_AGENT="curl/8.0")][0],
        WhopConnection: [
            whop_connection_create(creator=alice, signing_secret="ws_alice_signing_secret_value"),
            whop_connection_create(creator=bob),
        ][0],
    }


@pytest.fixture
def admin_client(client, db):
    root = Creator.objects.create_superuser("root@example.com", PASSWORD)
    client.force_login(root)
    return client


def _url(model, view, *args):
    return reverse(f"admin:{model._meta.app_label}_{model._meta.model_name}_{view}", args=args)


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_it_opens_the_changelist_with_every_filter_choice(admin_client, rows, model):
    response = admin_client.get(_url(model, "changelist"))

    assert response.status_code == 200
    changelist = response.context["cl"]
    assert changelist.result_count >= 1
    choices = [choice["query_string"] for spec in changelist.filter_specs for choice in spec.choices(changelist)]
    for query_string in choices:
        filtered = admin_client.get(_url(model, "changelist") + query_string)
        # An unknown or broken filter would redirect to ?e=1 instead.
        assert filtered.status_code == 200, query_string


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_it_finds_alices_rows_and_not_bobs_by_searching_her_email(admin_client, rows, model):
    response = admin_client.get(_url(model, "changelist") + "?" + urlencode({"q": "alice@example"}))

    assert response.status_code == 200
    found = list(response.context["cl"].result_list)
    assert rows[model] in found
    assert all(getattr(row, "creator_id", row.pk) == rows[Creator].pk for row in found)


def test_it_opens_the_changelist_and_add_page_of_every_registered_model(admin_client, rows):
    for model, model_admin in admin.site._registry.items():
        changelist = admin_client.get(_url(model, "changelist"))
        assert changelist.status_code == 200, model
        add = admin_client.get(_url(model, "add"))
        assert add.status_code == (200 if model_admin.has_add_permission(add.wsgi_request) else 403), model


@pytest.mark.parametrize("model", MODELS, ids=lambda model: model.__name__)
def test_it_opens_the_change_page(admin_client, rows, model):
    response = admin_client.get(_url(model, "change", rows[model].pk))

    assert response.status_code == 200
    assert response.context["original"] == rows[model]


def test_it_narrows_links_and_clicks_by_date(admin_client, rows):
    year = timezone.now().year

    links = admin_client.get(_url(Link, "changelist") + f"?created_at__year={year}")
    clicks = admin_client.get(_url(Click, "changelist") + f"?occurred_at__year={year}")
    no_clicks = admin_client.get(_url(Click, "changelist") + f"?occurred_at__year={year - 5}")

    assert links.status_code == clicks.status_code == no_clicks.status_code == 200
    assert links.context["cl"].result_count == 2
    assert len(clicks.context["cl"].result_list) == 2
    assert len(no_clicks.context["cl"].result_list) == 0


def test_it_filters_bots_and_revoked_keys(admin_client, rows):
    bots = admin_client.get(_url(Click, "changelist") + "?is_bot__exact=1")
    revoked = admin_client.get(_url(ApiKey, "changelist") + "?revoked_at__isempty=0")

    assert [click.link.creator.email for click in bots.context["cl"].result_list] == ["bob@example.com"]
    assert [key.name for key in revoked.context["cl"].result_list] == ["bob snippet"]


def test_it_never_shows_a_whop_signing_secret_in_full(admin_client, rows):
    connection = rows[WhopConnection]

    change = admin_client.get(_url(WhopConnection, "change", connection.pk)).content.decode()
    changelist = admin_client.get(_url(WhopConnection, "changelist")).content.decode()

    assert connection.signing_secret == "ws_alice_signing_secret_value"
    for page in (change, changelist):
        assert "ws_alice_signing_secret_value" not in page
        assert "signing_secret_value" not in page
    assert 'name="signing_secret' not in change


def test_it_shows_clicks_read_only_and_offers_no_way_to_add_one(admin_client, rows):
    click = rows[Click]

    assert admin_client.get(_url(Click, "add")).status_code == 403
    admin_client.post(_url(Click, "change", click.pk), {"ip": "1.2.3.4", "is_bot": "on"})

    click.refresh_from_db()
    assert click.ip == "81.2.69.142" and not click.is_bot


def test_it_opens_the_add_page_of_a_creator(admin_client):
    response = admin_client.get(_url(Creator, "add"))

    assert response.status_code == 200
    assert 'name="email"' in response.content.decode()


@pytest.mark.parametrize("path", ["/admin/", "/admin/accounts/creator/", "/admin/billing/whopconnection/"])
def test_it_sends_a_creator_without_staff_rights_to_the_admin_login(alice_client, path):
    response = alice_client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"{reverse('admin:login')}?next={path}"


def test_it_sends_an_anonymous_visitor_to_the_admin_login(client, db):
    response = client.get("/admin/links/link/")

    assert response.status_code == 302
    assert response["Location"].startswith(reverse("admin:login"))


def test_it_adds_a_creator_who_can_then_log_in(admin_client):
    response = admin_client.post(
        _url(Creator, "add"), {"email": "carol@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 302
    carol = Creator.objects.get(email="carol@example.com")
    assert not carol.is_staff and not carol.email_confirmed
    carol.email_confirmed_at = timezone.now()
    carol.save(update_fields=["email_confirmed_at"])
    admin_client.logout()
    login = admin_client.post(reverse("accounts:login"), {"username": "carol@example.com", "password": PASSWORD})
    assert login.status_code == 302 and admin_client.session["_auth_user_id"] == str(carol.pk)


def test_it_refuses_to_add_a_second_creator_with_an_email_in_another_case(admin_client, alice):
    response = admin_client.post(
        _url(Creator, "add"), {"email": "ALICE@example.com", "password1": PASSWORD, "password2": PASSWORD}
    )

    assert response.status_code == 200
    assert Creator.objects.filter(email__iexact="alice@example.com").count() == 1


def test_it_adds_a_creator_with_a_mixed_case_email_who_can_then_log_in(admin_client):
    admin_client.post(_url(Creator, "add"), {"email": " Carol@Example.com ", "password1": PASSWORD, "password2": PASSWORD})
    carol = Creator.objects.get(email__iexact="carol@example.com")
    assert carol.email == "carol@example.com"
    carol.email_confirmed_at = timezone.now()
    carol.save(update_fields=["email_confirmed_at"])
    admin_client.logout()

    response = admin_client.post(reverse("accounts:login"), {"username": "Carol@Example.com", "password": PASSWORD})

    assert response.status_code == 302 and admin_client.session["_auth_user_id"] == str(carol.pk)
