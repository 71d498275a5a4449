from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from links.models import Link, Tag
from links.services import link_archive, link_create

SITE_URL = "https://go.allumi.test"
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15"
LINK_FIELDS = {
    "id", "short_id", "short_url", "url", "destination", "title", "utm_source", "utm_medium", "utm_campaign", "utm_term",
    "utm_content", "tags", "pass_click_id", "is_active", "archived", "expires_at", "expired_url", "created_at", "updated_at",
}


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = SITE_URL


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/offer", title="Launch", slug="launch", tags=["youtube"])


def _assert_error(response, status: int, code: str) -> dict:
    assert response.status_code == status, response.content
    error = response.json()["error"]
    assert error["code"] == code
    assert isinstance(error["message"], str) and error["message"]
    assert error["request_id"] and error["request_id"] == response["X-Request-ID"]
    return error


def _make_links(creator, count: int) -> list[Link]:
    """Many links at once, oldest first (ids ascending)."""
    now = timezone.now()
    Link.objects.bulk_create(
        Link(creator=creator, short_id=f"{creator.pk}-bulk-{n}", url=f"https://shop.example/{n}", created_at=now + timedelta(seconds=n))
        for n in range(count)
    )
    return list(Link.objects.filter(creator=creator).order_by("id"))


# --- create ---------------------------------------------------------------------------------


def test_creating_a_link_answers_201_with_the_link(alice, alice_api):
    response = alice_api.post(
        "/api/v1/links",
        {
            "url": "https://shop.example/offer?ref=1#buy",
            "title": "Launch video",
            "utm_source": "youtube",
            "utm_campaign": "summer sale",
            "tags": ["YouTube", "launch"],
            "pass_click_id": False,
            "expires_at": "2030-01-01T12:00:00Z",
            "expired_url": "https://shop.example/sold-out",
        },
        format="json",
    )

    assert response.status_code == 201, response.content
    body = response.json()
    assert set(body) == LINK_FIELDS
    link = Link.objects.get()
    assert link.creator == alice
    assert body["id"] == link.id and isinstance(body["id"], int)
    assert body["short_id"] == link.short_id and len(link.short_id) >= 7
    assert body["short_url"] == f"{SITE_URL}/l/{link.short_id}"
    assert body["url"] == "https://shop.example/offer?ref=1#buy"
    assert body["destination"] == "https://shop.example/offer?ref=1&utm_source=youtube&utm_campaign=summer%20sale#buy"
    assert body["title"] == "Launch video"
    assert (body["utm_source"], body["utm_medium"], body["utm_campaign"]) == ("youtube", "", "summer sale")
    assert body["tags"] == ["YouTube", "launch"]
    assert body["pass_click_id"] is False
    assert body["is_active"] is True and body["archived"] is False
    assert body["expires_at"] == "2030-01-01T12:00:00Z"
    assert body["expired_url"] == "https://shop.example/sold-out"
    assert body["created_at"].endswith("Z") and body["updated_at"].endswith("Z")


def test_creating_a_link_with_only_a_url_uses_the_defaults(alice_api):
    response = alice_api.post("/api/v1/links", {"url": "https://shop.example/"}, format="json")

    assert response.status_code == 201
    body = response.json()
    assert body["pass_click_id"] is True and body["tags"] == [] and body["expires_at"] is None and body["title"] == ""


def test_a_destination_of_2048_characters_is_accepted_and_2049_refused(alice_api):
    url = "https://shop.example/" + "a" * 2027
    assert len(url) == 2048

    assert alice_api.post("/api/v1/links", {"url": url}, format="json").status_code == 201
    assert alice_api.post("/api/v1/links", {"url": url + "a"}, format="json").status_code == 400
    assert Link.objects.get().url == url


def test_creating_a_link_with_a_slug_uses_it_as_the_short_id(alice_api, client):
    response = alice_api.post("/api/v1/links", {"url": "https://shop.example/", "slug": "Summer-25"}, format="json")

    assert response.status_code == 201
    assert response.json()["short_id"] == "Summer-25"
    assert response.json()["short_url"] == f"{SITE_URL}/l/Summer-25"
    assert client.get("/l/Summer-25", HTTP_USER_AGENT=BROWSER).status_code == 302


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({}, "url"),
        ({"url": ""}, "url"),
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": "data:text/html,<script>alert(1)</script>"}, "url"),
        ({"url": "ftp://files.example/offer.pdf"}, "url"),
        ({"url": "mailto:alice@example.com"}, "url"),
        ({"url": "https://shop.example/" + "a" * 2028}, "url"),
        ({"url": "https://user:pass@shop.example/"}, "url"),
        ({"url": "https://user@shop.example/"}, "url"),
        ({"url": "https:///offer"}, "url"),
        ({"url": "https://shop.example/my offer"}, "url"),
        ({"url": "https://shop.example/\x00"}, "url"),
        ({"url": f"{SITE_URL}/l/launch"}, "url"),
        ({"url": "https://shop.example/", "slug": "ab"}, "slug"),
        ({"url": "https://shop.example/", "slug": "a" * 65}, "slug"),
        ({"url": "https://shop.example/", "slug": "my slug"}, "slug"),
        ({"url": "https://shop.example/", "slug": "caf\u00e9"}, "slug"),
        ({"url": "https://shop.example/", "slug": "API"}, "slug"),
        ({"url": "https://shop.example/", "slug": "login"}, "slug"),
        ({"url": "https://shop.example/", "expired_url": "https://shop.example/sold-out"}, "expired_url"),
        ({"url": "https://shop.example/", "expires_at": "2030-01-01T00:00:00Z", "expired_url": "ftp://x.example/"}, "expired_url"),
        ({"url": "https://shop.example/", "expires_at": "next tuesday"}, "expires_at"),
        ({"url": "https://shop.example/", "title": "t" * 201}, "title"),
        ({"url": "https://shop.example/", "utm_source": "s" * 101}, "utm_source"),
        ({"url": "https://shop.example/", "tags": ["t" * 41]}, "tags"),
        ({"url": "https://shop.example/", "tags": "youtube"}, "tags"),
        ({"url": "https://shop.example/", "pass_click_id": "maybe"}, "pass_click_id"),
    ],
)
def test_each_invalid_field_is_a_400_naming_the_field_and_creates_nothing(alice_api, body, field):
    response = alice_api.post("/api/v1/links", body, format="json")

    error = _assert_error(response, 400, "invalid_request")
    assert set(error["fields"]) == {field}
    assert all(isinstance(message, str) and message for message in error["fields"][field])
    assert not Link.objects.exists()
    assert not Tag.objects.exists()


def test_a_taken_slug_is_a_400_on_slug_and_creates_nothing(link, bob_api):
    response = bob_api.post("/api/v1/links", {"url": "https://bob.example/", "slug": "launch", "tags": ["bob"]}, format="json")

    error = _assert_error(response, 400, "invalid_request")
    assert set(error["fields"]) == {"slug"}
    assert Link.objects.count() == 1
    assert list(Tag.objects.values_list("name", flat=True)) == ["youtube"]


def test_a_body_that_is_not_json_is_a_400(alice_api):
    response = alice_api.post("/api/v1/links", "{not json", content_type="application/json")

    _assert_error(response, 400, "malformed_request")
    assert not Link.objects.exists()


# --- list -----------------------------------------------------------------------------------


def test_the_list_is_newest_first(alice, alice_api):
    links = _make_links(alice, 3)

    response = alice_api.get("/api/v1/links")

    assert response.status_code == 200
    body = response.json()
    assert [row["id"] for row in body["results"]] == [link.id for link in reversed(links)]
    assert body["next"] is None
    assert set(body["results"][0]) == LINK_FIELDS
    assert body["results"][0]["short_url"] == f"{SITE_URL}/l/{links[-1].short_id}"


def test_the_list_returns_50_links_by_default(alice, alice_api):
    links = _make_links(alice, 51)

    body = alice_api.get("/api/v1/links").json()

    assert len(body["results"]) == 50
    assert body["results"][0]["id"] == links[-1].id
    assert body["next"]
    rest = alice_api.get("/api/v1/links", {"cursor": body["next"]}).json()
    assert [row["id"] for row in rest["results"]] == [links[0].id]
    assert rest["next"] is None


def test_the_list_accepts_a_limit_of_500(alice, alice_api):
    _make_links(alice, 2)

    response = alice_api.get("/api/v1/links", {"limit": 500})

    assert response.status_code == 200
    assert len(response.json()["results"]) == 2


@pytest.mark.parametrize("limit", ["501", "0", "-1", "ten", "1.5"])
def test_a_limit_outside_1_to_500_is_a_400(alice, alice_api, limit):
    _assert_error(alice_api.get("/api/v1/links", {"limit": limit}), 400, "invalid_limit")


def test_the_next_cursor_walks_every_link_once(alice, alice_api):
    links = _make_links(alice, 7)

    pages = []
    params = {"limit": 3}
    while True:
        body = alice_api.get("/api/v1/links", params).json()
        pages.append([row["id"] for row in body["results"]])
        if body["next"] is None:
            break
        assert len(pages) < 5, "the cursor never ends"
        params = {"limit": 3, "cursor": body["next"]}

    assert [len(page) for page in pages] == [3, 3, 1]
    assert [link_id for page in pages for link_id in page] == [link.id for link in reversed(links)]


def test_the_cursor_stays_valid_when_newer_links_arrive(alice, alice_api):
    links = _make_links(alice, 4)
    first = alice_api.get("/api/v1/links", {"limit": 2}).json()

    link_create(creator=alice, url="https://shop.example/newest")
    second = alice_api.get("/api/v1/links", {"limit": 2, "cursor": first["next"]}).json()

    assert [row["id"] for row in second["results"]] == [links[1].id, links[0].id]


@pytest.mark.parametrize("cursor", ["not-a-cursor", "aWQ6YWJj", "eHg6MTA", "!!!", "\u00e9"])
def test_a_cursor_the_api_did_not_return_is_a_400(alice, alice_api, cursor):
    _make_links(alice, 2)

    _assert_error(alice_api.get("/api/v1/links", {"cursor": cursor}), 400, "invalid_cursor")


def test_the_list_filters_archived_links_on_request(alice, alice_api):
    active = link_create(creator=alice, url="https://shop.example/active")
    archived = link_archive(link=link_create(creator=alice, url="https://shop.example/archived"))

    def ids(**params):
        return [row["id"] for row in alice_api.get("/api/v1/links", params).json()["results"]]

    assert ids(archived="true") == [archived.id]
    assert ids(archived="false") == [active.id]
    assert ids(archived="all") == [archived.id, active.id]


def test_the_list_searches_title_short_id_and_url(alice, alice_api):
    by_title = link_create(creator=alice, url="https://shop.example/a", title="Spring launch")
    by_slug = link_create(creator=alice, url="https://shop.example/b", slug="yt-launch")
    by_url = link_create(creator=alice, url="https://shop.example/launch-offer")
    link_create(creator=alice, url="https://shop.example/other", title="Other")

    results = alice_api.get("/api/v1/links", {"search": "LAUNCH"}).json()["results"]

    assert [row["id"] for row in results] == [by_url.id, by_slug.id, by_title.id]


# --- one link -------------------------------------------------------------------------------


def test_getting_a_link_answers_its_fields(link, alice_api):
    response = alice_api.get(f"/api/v1/links/{link.id}")

    assert response.status_code == 200
    body = response.json()
    assert set(body) == LINK_FIELDS
    assert (body["id"], body["short_id"], body["url"], body["title"]) == (link.id, "launch", "https://shop.example/offer", "Launch")
    assert body["short_url"] == f"{SITE_URL}/l/launch"
    assert body["tags"] == ["youtube"]


def test_getting_an_unknown_link_is_a_404(alice, alice_api):
    _assert_error(alice_api.get("/api/v1/links/999999"), 404, "not_found")


def test_patching_a_link_changes_only_the_fields_sent(link, alice_api, client, django_capture_on_commit_callbacks):
    assert client.get("/l/launch", HTTP_USER_AGENT=BROWSER)["Location"].startswith("https://shop.example/offer?")

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.patch(
            f"/api/v1/links/{link.id}",
            {"url": "https://shop.example/v2", "utm_medium": "video", "tags": ["Email"], "is_active": True},
            format="json",
        )

    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["url"], body["utm_medium"], body["title"], body["tags"]) == ("https://shop.example/v2", "video", "Launch", ["Email"])
    link.refresh_from_db()
    assert (link.url, link.utm_medium, link.title, link.short_id) == ("https://shop.example/v2", "video", "Launch", "launch")
    assert client.get("/l/launch", HTTP_USER_AGENT=BROWSER)["Location"].startswith("https://shop.example/v2?utm_medium=video")


def test_patching_without_tags_keeps_them(link, alice_api):
    response = alice_api.patch(f"/api/v1/links/{link.id}", {"title": "Renamed"}, format="json")

    assert response.status_code == 200
    assert response.json()["tags"] == ["youtube"]


def test_patching_is_active_false_stops_the_redirect(link, alice_api, client, django_capture_on_commit_callbacks):
    assert client.get("/l/launch", HTTP_USER_AGENT=BROWSER).status_code == 302

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.patch(f"/api/v1/links/{link.id}", {"is_active": False}, format="json")

    assert response.json()["is_active"] is False
    assert client.get("/l/launch", HTTP_USER_AGENT=BROWSER).status_code == 404


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"url": "javascript:alert(1)"}, "url"),
        ({"url": ""}, "url"),
        ({"url": f"{SITE_URL}/l/other"}, "url"),
        ({"expired_url": "https://shop.example/sold-out"}, "expired_url"),
        ({"title": "t" * 201}, "title"),
    ],
)
def test_an_invalid_patch_is_a_400_and_changes_nothing(link, alice_api, body, field):
    response = alice_api.patch(f"/api/v1/links/{link.id}", {**body, "title": body.get("title", "Changed")}, format="json")

    error = _assert_error(response, 400, "invalid_request")
    assert field in error["fields"]
    link.refresh_from_db()
    assert (link.url, link.title, link.expired_url) == ("https://shop.example/offer", "Launch", "")


def test_deleting_a_link_disables_and_archives_it(link, alice_api, client, django_capture_on_commit_callbacks):
    assert client.get("/l/launch", HTTP_USER_AGENT=BROWSER).status_code == 302

    with django_capture_on_commit_callbacks(execute=True):
        response = alice_api.delete(f"/api/v1/links/{link.id}")

    assert response.status_code == 204
    assert response.content == b""
    link.refresh_from_db()
    assert not link.is_active and link.is_archived
    assert client.get("/l/launch", HTTP_USER_AGENT=BROWSER).status_code == 404
    body = alice_api.get(f"/api/v1/links/{link.id}").json()
    assert body["is_active"] is False and body["archived"] is True


# --- authentication and ownership -----------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/api/v1/links"), ("post", "/api/v1/links"), ("get", "/api/v1/links/{id}"), ("patch", "/api/v1/links/{id}"), ("delete", "/api/v1/links/{id}")],
)
@pytest.mark.parametrize(
    ("authorization", "code"),
    [(None, "not_authenticated"), ("Bearer sk_live_notarealkey", "authentication_failed"), ("Token abc", "authentication_failed")],
)
def test_every_operation_needs_a_valid_secret_key(link, method, path, authorization, code):
    api = APIClient()
    if authorization:
        api.credentials(HTTP_AUTHORIZATION=authorization)

    response = getattr(api, method)(path.format(id=link.id), {"url": "https://shop.example/x", "title": "x"}, format="json")

    _assert_error(response, 401, code)
    assert response["WWW-Authenticate"] == "Bearer"
    link.refresh_from_db()
    assert (link.title, link.is_active, link.archived_at) == ("Launch", True, None)
    assert Link.objects.count() == 1


def test_a_logged_in_dashboard_session_is_not_an_api_credential(link, alice_client):
    assert alice_client.get("/api/v1/links").status_code == 401


def test_bob_gets_404_for_alices_link_and_it_stays_unchanged(link, bob_api, client, django_capture_on_commit_callbacks):
    url = f"/api/v1/links/{link.id}"

    with django_capture_on_commit_callbacks(execute=True):
        responses = [
            bob_api.get(url),
            bob_api.patch(url, {"title": "Bob was here", "url": "https://bob.example/", "is_active": False}, format="json"),
            bob_api.delete(url),
        ]

    for response in responses:
        _assert_error(response, 404, "not_found")
    link.refresh_from_db()
    assert (link.title, link.url, link.is_active, link.archived_at) == ("Launch", "https://shop.example/offer", True, None)
    assert client.get("/l/launch", HTTP_USER_AGENT=BROWSER).status_code == 302


def test_bobs_list_never_contains_alices_links(alice, bob, alice_api, bob_api):
    alices = {link.id for link in _make_links(alice, 3)}
    bobs = {link.id for link in _make_links(bob, 2)}

    assert {row["id"] for row in bob_api.get("/api/v1/links", {"archived": "all"}).json()["results"]} == bobs
    assert bob_api.get("/api/v1/links", {"search": f"{alice.pk}-bulk"}).json()["results"] == []
    assert {row["id"] for row in alice_api.get("/api/v1/links").json()["results"]} == alices


def test_bobs_cursor_cannot_reach_alices_links(alice, bob, bob_api):
    _make_links(bob, 2)
    _make_links(alice, 3)
    first = bob_api.get("/api/v1/links", {"limit": 1}).json()

    second = bob_api.get("/api/v1/links", {"limit": 10, "cursor": first["next"]}).json()

    assert {row["id"] for row in first["results"] + second["results"]} == set(bob.links.values_list("id", flat=True))
