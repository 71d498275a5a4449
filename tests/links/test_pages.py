from datetime import UTC, datetime, timedelta

import pytest
from django.test import Client
from django.utils import timezone

from links.models import Link, Tag
from links.services import link_archive, link_create

SITE_URL = "https://go.allumi.test"
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"


@pytest.fixture(autouse=True)
def _site_url(settings):
    settings.SITE_URL = SITE_URL


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/offer", title="Launch video", slug="launch", tags=["YouTube"])


def _visit(client, link, user_agent=BROWSER):
    response = client.get(f"/l/{link.short_id}", HTTP_USER_AGENT=user_agent)
    assert response.status_code == 302
    return response


def _listed(response) -> list[str]:
    return [link.short_id for link, _counts in response.context["rows"]]


def _form_data(**overrides) -> dict:
    data = {
        "url": "https://shop.example/offer",
        "title": "",
        "slug": "",
        "tags": "",
        "utm_source": "",
        "utm_medium": "",
        "utm_campaign": "",
        "utm_term": "",
        "utm_content": "",
        "pass_click_id": "on",
        "expires_at": "",
        "expired_url": "",
    }
    data.update(overrides)
    return {name: value for name, value in data.items() if value is not None}


# --- login ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "path"),
    [("get", "/links/"), ("get", "/links/new/"), ("post", "/links/new/"), ("get", "/links/{id}/"), ("get", "/links/{id}/edit/"),
     ("post", "/links/{id}/edit/"), ("post", "/links/{id}/archive/")],
)
def test_every_link_page_needs_a_login(client, link, method, path):
    path = path.format(id=link.id)

    response = client.post(path, _form_data(title="Anonymous")) if method == "post" else client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"
    link.refresh_from_db()
    assert (link.title, link.archived_at) == ("Launch video", None)
    assert Link.objects.count() == 1


# --- list -----------------------------------------------------------------------------------


def test_a_new_creator_sees_the_empty_state(alice_client):
    response = alice_client.get("/links/")

    assert response.status_code == 200
    assert b"Create your first tracked link" in response.content
    assert b'href="/links/new/"' in response.content


def test_the_list_shows_active_links_newest_first(alice, alice_client):
    older = link_create(creator=alice, url="https://shop.example/older", title="Older")
    newer = link_create(creator=alice, url="https://shop.example/newer", title="Newer")
    link_archive(link=link_create(creator=alice, url="https://shop.example/gone", title="Gone"))

    response = alice_client.get("/links/")

    assert response.status_code == 200
    assert _listed(response) == [newer.short_id, older.short_id]
    assert b"Create your first tracked link" not in response.content
    assert f'href="/links/{newer.id}/"'.encode() in response.content
    assert f"/l/{older.short_id}".encode() in response.content
    assert b"Gone" not in response.content


def test_the_list_searches_title_short_id_and_destination(alice, alice_client):
    by_title = link_create(creator=alice, url="https://shop.example/a", title="Spring LAUNCH")
    by_slug = link_create(creator=alice, url="https://shop.example/b", slug="yt-launch")
    by_url = link_create(creator=alice, url="https://shop.example/launch-offer")
    link_create(creator=alice, url="https://shop.example/other", title="Other")

    response = alice_client.get("/links/", {"q": "launch"})

    assert _listed(response) == [by_url.short_id, by_slug.short_id, by_title.short_id]


def test_a_search_without_matches_says_so(link, alice_client):
    response = alice_client.get("/links/", {"q": "nothing-like-this"})

    assert _listed(response) == []
    assert b"No links match these filters." in response.content


def test_the_list_filters_by_tag_whatever_its_case(alice, alice_client, link):
    email = link_create(creator=alice, url="https://shop.example/email", tags=["Email", "youtube"])
    link_create(creator=alice, url="https://shop.example/untagged")

    response = alice_client.get("/links/", {"tag": "youtube"})

    assert _listed(response) == [email.short_id, link.short_id]
    assert _listed(alice_client.get("/links/", {"tag": "EMAIL"})) == [email.short_id]
    assert list(response.context["tags"]) == ["Email", "YouTube"]


def test_the_list_shows_archived_links_on_request(alice, alice_client, link):
    archived = link_archive(link=link_create(creator=alice, url="https://shop.example/old", title="Old offer"))

    only_archived = alice_client.get("/links/", {"show": "archived"})
    everything = alice_client.get("/links/", {"show": "all"})

    assert _listed(only_archived) == [archived.short_id]
    assert b"archived</span>" in only_archived.content
    assert _listed(everything) == [archived.short_id, link.short_id]


def test_the_list_counts_human_clicks_and_unique_visitors(alice, alice_client, link, flush):
    quiet = link_create(creator=alice, url="https://shop.example/quiet")
    _visit(alice_client, link)
    _visit(alice_client, link)
    _visit(Client(), link)
    _visit(Client(), link, user_agent=GOOGLEBOT)
    flush()

    response = alice_client.get("/links/")

    counts = {link.short_id: counts for link, counts in response.context["rows"]}
    assert counts[link.short_id] == {"clicks": 3, "unique_visitors": 2}
    assert counts[quiet.short_id] == {"clicks": 0, "unique_visitors": 0}
    assert b'<td class="num">3</td>\n      <td class="num">2</td>' in response.content


# --- create ---------------------------------------------------------------------------------


def test_the_create_page_shows_an_empty_form(alice_client):
    response = alice_client.get("/links/new/")

    assert response.status_code == 200
    assert b'name="url"' in response.content and b'name="slug"' in response.content
    assert b'name="is_active"' not in response.content


def test_creating_a_valid_link_redirects_to_its_detail_page(alice, alice_client):
    response = alice_client.post(
        "/links/new/",
        _form_data(
            url="https://shop.example/offer?ref=1",
            title="Launch video",
            slug="launch",
            tags="YouTube, launch, youtube",
            utm_source="youtube",
            expires_at="2030-01-01T12:00",
            expired_url="https://shop.example/sold-out",
        ),
    )

    link = Link.objects.get()
    assert response.status_code == 302
    assert response["Location"] == f"/links/{link.id}/"
    assert link.creator == alice
    assert (link.short_id, link.url, link.title, link.utm_source) == ("launch", "https://shop.example/offer?ref=1", "Launch video", "youtube")
    assert link.pass_click_id and link.is_active
    assert link.expires_at == datetime(2030, 1, 1, 12, 0, tzinfo=UTC)
    assert link.expired_url == "https://shop.example/sold-out"
    assert sorted(tag.name for tag in link.tags.all()) == ["YouTube", "launch"]
    detail = alice_client.get(response["Location"])
    assert f"Link created: {SITE_URL}/l/launch".encode() in detail.content


def test_creating_a_link_without_a_slug_draws_a_short_id(alice_client):
    response = alice_client.post("/links/new/", _form_data())

    link = Link.objects.get()
    assert response["Location"] == f"/links/{link.id}/"
    assert len(link.short_id) >= 7


@pytest.mark.parametrize(
    ("data", "field", "message"),
    [
        ({"url": "javascript:alert(1)"}, "url", "Only http:// and https:// destinations are allowed."),
        ({"url": ""}, "url", "This field is required."),
        ({"url": "https://user:pass@shop.example/"}, "url", "URLs may not contain a user name or password."),
        ({"url": f"{SITE_URL}/l/other"}, "url", "A link cannot point to another Allumi short link."),
        ({"slug": "admin"}, "slug", "is reserved; choose another slug."),
        ({"slug": "a b"}, "slug", "Use 3 to 64 letters, digits"),
        ({"expired_url": "https://shop.example/sold-out"}, "expired_url", "A fallback URL needs an expiry time."),
        ({"tags": "ok, " + "t" * 41}, "tags", "Tags may be at most 40 characters."),
    ],
)
def test_an_invalid_link_shows_the_error_and_creates_nothing(alice_client, data, field, message):
    response = alice_client.post("/links/new/", _form_data(**{"title": "Should not exist", "tags": "new-tag", **data}))

    assert response.status_code == 200
    assert any(message in error for error in response.context["form"].errors[field])
    assert b'class="field has-error' in response.content
    assert message.encode() in response.content
    assert not Link.objects.exists()
    assert not Tag.objects.exists()


def test_a_taken_slug_shows_an_error_on_the_slug(link, bob_client):
    response = bob_client.post("/links/new/", _form_data(slug="launch"))

    assert response.status_code == 200
    assert response.context["form"].errors["slug"] == ["This slug is already taken."]
    assert Link.objects.count() == 1


# --- edit -----------------------------------------------------------------------------------


def test_the_edit_page_shows_the_links_values(link, alice_client):
    response = alice_client.get(f"/links/{link.id}/edit/")

    assert response.status_code == 200
    assert b'value="https://shop.example/offer"' in response.content
    assert b'value="YouTube"' in response.content
    assert b'name="slug"' not in response.content
    assert b"Edit /l/launch" in response.content


def test_editing_a_link_saves_it_and_redirects_to_its_detail_page(link, alice_client, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        response = alice_client.post(
            f"/links/{link.id}/edit/",
            _form_data(url="https://shop.example/v2", title="Renamed", tags="Email", utm_medium="video", is_active="on"),
        )

    assert response.status_code == 302
    assert response["Location"] == f"/links/{link.id}/"
    link.refresh_from_db()
    assert (link.url, link.title, link.utm_medium, link.short_id) == ("https://shop.example/v2", "Renamed", "video", "launch")
    assert link.is_active and link.pass_click_id
    assert [tag.name for tag in link.tags.all()] == ["Email"]
    assert _visit(Client(), link)["Location"].startswith("https://shop.example/v2?utm_medium=video")


def test_an_invalid_edit_shows_the_error_and_changes_nothing(link, alice_client):
    response = alice_client.post(
        f"/links/{link.id}/edit/", _form_data(url="ftp://files.example/", title="Renamed", tags="Email", is_active="on")
    )

    assert response.status_code == 200
    assert response.context["form"].errors["url"] == ["Only http:// and https:// destinations are allowed."]
    assert b"Only http:// and https:// destinations are allowed." in response.content
    link.refresh_from_db()
    assert (link.url, link.title) == ("https://shop.example/offer", "Launch video")
    assert [tag.name for tag in link.tags.all()] == ["YouTube"]


# --- archive and restore --------------------------------------------------------------------


def test_archiving_and_restoring_a_link(link, alice_client):
    archived = alice_client.post(f"/links/{link.id}/archive/", {"action": "archive"})

    assert archived.status_code == 302 and archived["Location"] == f"/links/{link.id}/"
    link.refresh_from_db()
    assert link.is_archived and link.is_active
    assert _listed(alice_client.get("/links/")) == []

    restored = alice_client.post(f"/links/{link.id}/archive/", {"action": "unarchive"})

    assert restored.status_code == 302
    link.refresh_from_db()
    assert not link.is_archived
    assert _listed(alice_client.get("/links/")) == ["launch"]


def test_archiving_needs_a_post(link, alice_client):
    assert alice_client.get(f"/links/{link.id}/archive/").status_code == 405

    link.refresh_from_db()
    assert not link.is_archived


# --- detail ---------------------------------------------------------------------------------


def test_the_detail_page_shows_the_short_url_and_the_counts(link, alice_client, flush):
    _visit(alice_client, link)
    _visit(alice_client, link)
    _visit(Client(), link)
    _visit(Client(), link, user_agent=GOOGLEBOT)
    flush()

    response = alice_client.get(f"/links/{link.id}/")

    assert response.status_code == 200
    assert f'<code id="short-url">{SITE_URL}/l/launch</code>'.encode() in response.content
    assert b'id="kpi-clicks">3<' in response.content
    assert b'id="kpi-unique">2<' in response.content
    assert b'id="kpi-bots">1<' in response.content
    assert b"No clicks yet." not in response.content


def test_the_detail_page_of_a_link_without_clicks_explains_what_to_do(link, alice_client):
    response = alice_client.get(f"/links/{link.id}/")

    assert b'id="kpi-clicks">0<' in response.content
    assert b"No clicks yet." in response.content
    assert b"https://shop.example/offer" in response.content


def test_the_detail_page_marks_an_expired_archived_and_disabled_link(alice, alice_client):
    link = link_create(
        creator=alice, url="https://shop.example/offer", expires_at=timezone.now() - timedelta(days=1),
    )
    Link.objects.filter(pk=link.pk).update(is_active=False)
    link_archive(link=Link.objects.get(pk=link.pk))

    content = alice_client.get(f"/links/{link.id}/").content

    assert b">disabled<" in content and b">archived<" in content and b">expired " in content
    assert b">Restore<" in content


# --- another creator ------------------------------------------------------------------------


def test_bob_gets_404_on_every_one_of_alices_link_pages(link, bob_client):
    assert bob_client.get(f"/links/{link.id}/").status_code == 404
    assert bob_client.get(f"/links/{link.id}/edit/").status_code == 404
    assert bob_client.post(f"/links/{link.id}/edit/", _form_data(url="https://bob.example/", title="Bob", is_active="")).status_code == 404
    assert bob_client.post(f"/links/{link.id}/archive/", {"action": "archive"}).status_code == 404
    assert bob_client.post(f"/links/{link.id}/archive/", {"action": "unarchive"}).status_code == 404

    link.refresh_from_db()
    assert (link.url, link.title, link.is_active, link.archived_at) == ("https://shop.example/offer", "Launch video", True, None)


def test_bobs_list_never_shows_alices_links_or_tags(link, bob, bob_client):
    bobs = link_create(creator=bob, url="https://bob.example/", title="Bob's offer")

    response = bob_client.get("/links/", {"show": "all"})

    assert _listed(response) == [bobs.short_id]
    assert list(response.context["tags"]) == []
    assert b"Launch video" not in response.content and b"/l/launch" not in response.content
    assert _listed(bob_client.get("/links/", {"q": "launch", "show": "all"})) == []
