from urllib.parse import parse_qs, urlsplit

import pytest
from django.utils import timezone

from attribution.models import Click
from attribution.services import visitor_cookie_value
from links.services import link_create, link_update

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)


@pytest.fixture
def link(alice):
    return link_create(
        creator=alice,
        url="https://shop.example/offer?ref=yt&utm_source=old#buy",
        utm_source="youtube",
        utm_campaign="launch",
    )


def _follow(client, link, **headers):
    headers.setdefault("HTTP_USER_AGENT", IPHONE)
    return client.get(f"/l/{link.short_id}", **headers)


def test_it_redirects_with_utm_merged_and_click_id_appended(client, link, flush):
    response = _follow(client, link)
    flush()

    assert response.status_code == 302
    assert response["Cache-Control"] == "private, no-store"
    location = urlsplit(response["Location"])
    query = parse_qs(location.query)
    click = Click.objects.get()
    assert location.netloc == "shop.example" and location.path == "/offer"
    assert location.fragment == "buy"
    assert query == {"ref": ["yt"], "utm_source": ["youtube"], "utm_campaign": ["launch"], "allumi_cid": [click.public_id]}


def test_it_records_every_signal_of_a_human_click(client, link, flush):
    _follow(
        client,
        link,
        HTTP_ACCEPT_LANGUAGE="de-DE,de;q=0.9",
        HTTP_REFERER="https://www.youtube.com/watch?v=abc",
        REMOTE_ADDR="81.2.69.142",
        QUERY_STRING="utm_content=pinned",
    )
    flush()

    click = Click.objects.get()
    assert click.link == link and click.creator == link.creator
    assert click.ip == "81.2.69.142" and click.network == "81.2.69.0/24"
    assert (click.browser, click.os, click.device_type) == ("Mobile Safari", "iOS", "mobile")
    assert click.language == "de-DE" and click.accept_language == "de-DE,de;q=0.9"
    assert click.referrer_domain == "youtube.com"
    assert click.utm_content == "pinned"
    assert click.country == "GB"
    assert len(click.fingerprint) == 64 and click.visitor_id
    assert not click.is_bot and click.is_unique
    assert abs((timezone.now() - click.occurred_at).total_seconds()) < 60


def test_it_sets_the_visitor_cookie_and_keeps_a_valid_one(client, link, flush):
    first = _follow(client, link)
    cookie = first.cookies["allumi_vid"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax" and int(cookie["max-age"]) >= 364 * 86400

    second = _follow(client, link)
    flush()

    assert second.cookies["allumi_vid"].value == cookie.value
    visitors = set(Click.objects.values_list("visitor_id", flat=True))
    assert len(visitors) == 1
    assert list(Click.objects.order_by("occurred_at").values_list("is_unique", flat=True)) == [True, False]


def test_it_replaces_a_forged_visitor_cookie(client, link, flush):
    forged = visitor_cookie_value("a" * 22)[:-3] + "xyz"
    client.cookies["allumi_vid"] = forged

    response = _follow(client, link)
    flush()

    assert response.cookies["allumi_vid"].value != forged
    assert Click.objects.get().visitor_id != "a" * 22


def test_it_records_head_requests_as_bots(client, link, flush):
    response = client.head(f"/l/{link.short_id}", HTTP_USER_AGENT=IPHONE)
    flush()

    assert response.status_code == 302
    click = Click.objects.get()
    assert click.is_bot and click.bot_reason == "head_request" and not click.is_unique


@pytest.mark.parametrize(
    ("agent", "reason"),
    [
        ("Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", "crawler"),
        ("facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)", "link_preview"),
        ("Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", "link_preview"),
        ("WhatsApp/2.23.20.0", "link_preview"),
        ("", "no_user_agent"),
    ],
)
def test_it_stores_crawler_and_preview_requests_flagged(client, link, flush, agent, reason):
    response = _follow(client, link, HTTP_USER_AGENT=agent)
    flush()

    assert response.status_code == 302
    click = Click.objects.get()
    assert click.is_bot and click.bot_reason == reason


def test_it_ignores_x_forwarded_for_from_an_untrusted_peer(client, link, flush, settings):
    settings.TRUSTED_PROXIES = []
    _follow(client, link, REMOTE_ADDR="81.2.69.142", HTTP_X_FORWARDED_FOR="8.8.8.8")
    flush()

    assert Click.objects.get().ip == "81.2.69.142"


def test_it_reads_the_client_from_x_forwarded_for_behind_a_trusted_proxy(client, link, flush, settings):
    import ipaddress

    settings.TRUSTED_PROXIES = [ipaddress.ip_network("10.0.0.0/8")]
    _follow(client, link, REMOTE_ADDR="10.0.0.5", HTTP_X_FORWARDED_FOR="1.2.3.4, 81.2.69.142, 10.0.0.9")
    flush()

    assert Click.objects.get().ip == "81.2.69.142"


def test_it_omits_the_click_id_when_the_link_does_not_pass_it(client, alice, flush):
    link = link_create(creator=alice, url="https://shop.example/?allumi_cid=stale", pass_click_id=False)

    response = _follow(client, link)

    assert response["Location"] == "https://shop.example/"


@pytest.mark.parametrize("short_id", ["unknown1", "../etc", "x" * 80])
def test_it_answers_404_for_unknown_links(client, db, short_id):
    response = client.get(f"/l/{short_id}?next=https://evil.example/")

    assert response.status_code == 404
    assert "Location" not in response


def test_it_answers_404_for_a_disabled_link(client, link, flush, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        link_update(link=link, is_active=False)

    response = _follow(client, link)
    flush()

    assert response.status_code == 404
    assert not Click.objects.exists()


def test_an_expired_link_goes_to_its_fallback_or_404(client, alice):
    past = timezone.now() - timezone.timedelta(minutes=1)
    with_fallback = link_create(creator=alice, url="https://shop.example/", expires_at=past, expired_url="https://shop.example/ended")
    without = link_create(creator=alice, url="https://shop.example/", expires_at=past)

    assert _follow(client, with_fallback)["Location"] == "https://shop.example/ended"
    assert _follow(client, without).status_code == 404


def test_the_cache_forgets_a_link_when_it_is_edited(client, link, django_capture_on_commit_callbacks):
    assert _follow(client, link)["Location"].startswith("https://shop.example/offer")

    with django_capture_on_commit_callbacks(execute=True):
        link_update(link=link, url="https://shop.example/new")

    assert _follow(client, link)["Location"].startswith("https://shop.example/new?")


def test_post_is_not_allowed(client, link):
    assert client.post(f"/l/{link.short_id}").status_code == 405
