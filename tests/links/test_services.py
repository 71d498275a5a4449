import re
from datetime import timedelta

import pytest
from django.core.exceptions import ValidationError
from django.utils import timezone

from links.models import Link, Tag
from links.services import link_archive, link_create, link_delete, link_unarchive, link_update

BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"


def _follow(client, link):
    return client.get(f"/l/{link.short_id}", HTTP_USER_AGENT=BROWSER)


@pytest.fixture
def link(alice):
    return link_create(creator=alice, url="https://shop.example/offer", title="Launch", tags=["youtube"])


# --- link_create ----------------------------------------------------------------------------


def test_it_generates_short_ids_of_at_least_seven_base62_characters(alice):
    links = [link_create(creator=alice, url="https://shop.example/offer") for _ in range(20)]

    for link in links:
        assert re.fullmatch(r"[0-9A-Za-z]{7,}", link.short_id)
    assert len({link.short_id for link in links}) == 20


def test_it_stores_the_link_with_stripped_fields(alice):
    expires_at = timezone.now() + timedelta(days=7)

    link = link_create(
        creator=alice,
        url="  https://shop.example/offer?ref=1  ",
        title=" Launch video ",
        utm_source=" youtube ",
        utm_medium="video",
        utm_campaign="launch",
        utm_term="course",
        utm_content="pinned",
        pass_click_id=False,
        expires_at=expires_at,
        expired_url=" https://shop.example/sold-out ",
    )

    link.refresh_from_db()
    assert link.creator == alice
    assert link.url == "https://shop.example/offer?ref=1"
    assert link.title == "Launch video"
    assert link.utm() == {
        "utm_source": "youtube", "utm_medium": "video", "utm_campaign": "launch", "utm_term": "course", "utm_content": "pinned",
    }
    assert link.pass_click_id is False
    assert link.is_active and not link.is_archived
    assert link.expires_at == expires_at
    assert link.expired_url == "https://shop.example/sold-out"


def test_it_uses_a_custom_slug(alice, client):
    link = link_create(creator=alice, url="https://shop.example/offer", slug=" Launch-2025 ")

    assert Link.objects.get(pk=link.pk).short_id == "Launch-2025"
    assert _follow(client, link).status_code == 302


def test_a_taken_slug_is_a_validation_error_on_slug_and_creates_nothing(alice, bob):
    link_create(creator=alice, url="https://shop.example/offer", slug="launch")

    with pytest.raises(ValidationError) as error:
        link_create(creator=bob, url="https://bob.example/", slug="launch", tags=["new-tag"])

    assert set(error.value.message_dict) == {"slug"}
    assert Link.objects.count() == 1
    assert not Tag.objects.filter(creator=bob).exists()


@pytest.mark.parametrize(("slug", "code"), [("api", "reserved_slug"), ("ab", "invalid_slug"), ("my slug", "invalid_slug")])
def test_an_invalid_slug_is_a_validation_error_on_the_short_id(alice, slug, code):
    with pytest.raises(ValidationError) as error:
        link_create(creator=alice, url="https://shop.example/offer", slug=slug)

    assert error.value.error_dict["short_id"][0].code == code
    assert not Link.objects.exists()


def test_an_invalid_destination_is_a_validation_error_on_url_and_creates_nothing(alice):
    with pytest.raises(ValidationError) as error:
        link_create(creator=alice, url="javascript:alert(1)", tags=["youtube"])

    assert set(error.value.message_dict) == {"url"}
    assert not Link.objects.exists()
    assert not Tag.objects.exists()


def test_it_draws_again_when_a_generated_id_collides(alice, monkeypatch):
    existing = link_create(creator=alice, url="https://shop.example/first", slug="Taken12")
    drawn = iter(["Taken12", "Fresh34"])
    lengths = []

    def fake_random_base62(length):
        lengths.append(length)
        return next(drawn)

    monkeypatch.setattr("links.services.random_base62", fake_random_base62)

    link = link_create(creator=alice, url="https://shop.example/second")

    assert link.short_id == "Fresh34"
    assert lengths == [7, 7]
    assert Link.objects.get(pk=link.pk).url == "https://shop.example/second"
    existing.refresh_from_db()
    assert existing.url == "https://shop.example/first"
    assert Link.objects.count() == 2


def test_it_gives_up_when_every_drawn_id_is_taken(alice, monkeypatch):
    link_create(creator=alice, url="https://shop.example/first", slug="Taken12")
    monkeypatch.setattr("links.services.random_base62", lambda length: "Taken12")

    with pytest.raises(RuntimeError):
        link_create(creator=alice, url="https://shop.example/second")

    assert Link.objects.count() == 1


def test_it_creates_tags_case_insensitively_once_per_creator(alice, bob):
    first = link_create(creator=alice, url="https://shop.example/a", tags=["YouTube", "youtube", " launch ", "", "  "])
    second = link_create(creator=alice, url="https://shop.example/b", tags=["YOUTUBE", "Email"])
    bobs = link_create(creator=bob, url="https://bob.example/", tags=["youtube"])

    assert sorted(Tag.objects.filter(creator=alice).values_list("name", flat=True)) == ["Email", "YouTube", "launch"]
    assert sorted(tag.name for tag in first.tags.all()) == ["YouTube", "launch"]
    assert sorted(tag.name for tag in second.tags.all()) == ["Email", "YouTube"]
    assert [tag.name for tag in bobs.tags.all()] == ["youtube"]
    assert bobs.tags.get().creator == bob


def test_it_refuses_a_tag_longer_than_40_characters(alice):
    with pytest.raises(ValidationError) as error:
        link_create(creator=alice, url="https://shop.example/", tags=["t" * 41])

    assert set(error.value.message_dict) == {"tags"}
    assert not Link.objects.exists()


def test_it_refuses_a_fallback_url_without_an_expiry(alice):
    with pytest.raises(ValidationError) as error:
        link_create(creator=alice, url="https://shop.example/offer", expired_url="https://shop.example/sold-out")

    assert set(error.value.message_dict) == {"expired_url"}
    assert not Link.objects.exists()


def test_it_accepts_a_fallback_url_with_an_expiry(alice):
    link = link_create(
        creator=alice,
        url="https://shop.example/offer",
        expires_at=timezone.now() + timedelta(days=1),
        expired_url="https://shop.example/sold-out",
    )

    assert link.expired_url == "https://shop.example/sold-out"


def test_it_validates_the_fallback_url_like_a_destination(alice):
    with pytest.raises(ValidationError) as error:
        link_create(
            creator=alice,
            url="https://shop.example/offer",
            expires_at=timezone.now() + timedelta(days=1),
            expired_url="javascript:alert(1)",
        )

    assert set(error.value.message_dict) == {"expired_url"}


def test_a_new_link_replaces_a_cached_unknown_id(alice, client, django_capture_on_commit_callbacks):
    assert client.get("/l/brand-new", HTTP_USER_AGENT=BROWSER).status_code == 404

    with django_capture_on_commit_callbacks(execute=True):
        link = link_create(creator=alice, url="https://shop.example/offer", slug="brand-new")

    assert _follow(client, link).status_code == 302


# --- link_update ----------------------------------------------------------------------------


def test_it_updates_editable_fields_and_strips_strings(link):
    link_update(link=link, url=" https://shop.example/v2 ", title=" New title ", utm_source="yt", pass_click_id=False)

    link.refresh_from_db()
    assert (link.url, link.title, link.utm_source, link.pass_click_id) == ("https://shop.example/v2", "New title", "yt", False)


def test_it_replaces_tags_when_given_and_keeps_them_when_not(link):
    link_update(link=link, title="Same tags")
    assert [tag.name for tag in link.tags.all()] == ["youtube"]

    link_update(link=link, tags=["Email", "YOUTUBE"])
    assert sorted(tag.name for tag in link.tags.all()) == ["Email", "youtube"]

    link_update(link=link, tags=[])
    assert not link.tags.exists()


def test_it_refuses_to_edit_the_short_id_or_the_creator(link, bob):
    with pytest.raises(TypeError):
        link_update(link=link, short_id="other-id")
    with pytest.raises(TypeError):
        link_update(link=link, creator=bob)

    link.refresh_from_db()
    assert link.short_id != "other-id" and link.creator != bob


@pytest.mark.parametrize(
    ("changes", "field"),
    [
        ({"url": "ftp://files.example/"}, "url"),
        ({"url": ""}, "url"),
        ({"expired_url": "https://shop.example/sold-out"}, "expired_url"),
        ({"title": "t" * 201}, "title"),
    ],
)
def test_an_invalid_update_is_a_validation_error_and_saves_nothing(link, changes, field):
    with pytest.raises(ValidationError) as error:
        link_update(link=link, **changes)

    assert field in error.value.message_dict
    stored = Link.objects.get(pk=link.pk)
    assert (stored.url, stored.title, stored.expired_url) == ("https://shop.example/offer", "Launch", "")


def test_removing_the_expiry_of_a_link_with_a_fallback_url_is_refused(alice):
    link = link_create(
        creator=alice,
        url="https://shop.example/offer",
        expires_at=timezone.now() + timedelta(days=1),
        expired_url="https://shop.example/sold-out",
    )

    with pytest.raises(ValidationError) as error:
        link_update(link=link, expires_at=None)

    assert set(error.value.message_dict) == {"expired_url"}
    assert Link.objects.get(pk=link.pk).expires_at is not None


def test_an_update_reaches_the_redirect_once_committed(link, client, django_capture_on_commit_callbacks):
    assert _follow(client, link)["Location"].startswith("https://shop.example/offer?")

    with django_capture_on_commit_callbacks(execute=True):
        link_update(link=link, url="https://shop.example/v2")

    assert _follow(client, link)["Location"].startswith("https://shop.example/v2?")


def test_disabling_a_link_makes_it_answer_404(link, client, django_capture_on_commit_callbacks):
    assert _follow(client, link).status_code == 302

    with django_capture_on_commit_callbacks(execute=True):
        link_update(link=link, is_active=False)

    assert _follow(client, link).status_code == 404


# --- archive, unarchive, delete -------------------------------------------------------------


def test_archiving_hides_a_link_but_keeps_it_redirecting(link, client):
    link_archive(link=link)

    link.refresh_from_db()
    assert link.is_archived and link.is_active
    assert _follow(client, link).status_code == 302


def test_archiving_twice_keeps_the_first_archive_time(link):
    link_archive(link=link)
    first = Link.objects.get(pk=link.pk).archived_at

    link_archive(link=Link.objects.get(pk=link.pk))

    assert first is not None
    assert Link.objects.get(pk=link.pk).archived_at == first


def test_unarchiving_restores_a_link(link):
    link_archive(link=link)

    link_unarchive(link=link)
    link_unarchive(link=link)

    link.refresh_from_db()
    assert link.archived_at is None and link.is_active


def test_deleting_disables_and_archives_a_link_and_stops_its_redirect(link, client, flush, django_capture_on_commit_callbacks):
    assert _follow(client, link).status_code == 302
    flush()

    with django_capture_on_commit_callbacks(execute=True):
        link_delete(link=link)

    link.refresh_from_db()
    assert not link.is_active and link.is_archived
    assert _follow(client, link).status_code == 404
    assert link.clicks.count() == 1


def test_deleting_an_archived_link_keeps_its_archive_time(link):
    link_archive(link=link)
    archived_at = Link.objects.get(pk=link.pk).archived_at

    link_delete(link=Link.objects.get(pk=link.pk))

    stored = Link.objects.get(pk=link.pk)
    assert stored.archived_at == archived_at and not stored.is_active
