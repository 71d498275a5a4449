"""Dashboard pages: overview, links, link detail, conversions, journeys, model comparison and
settings, through the real client, for alice, for bob (who must never see alice's data) and for
nobody (who is sent to log in)."""

import re
from datetime import timedelta
from decimal import Decimal

import pytest
from django.test import RequestFactory
from django.utils import timezone

from attribution.conversions import attribution_settings_for, conversion_record
from attribution.models import Click, Conversion, Recompute
from attribution.rollups import rollups_run
from attribution.services import click_payload, clicks_store, new_click_id, new_visitor_id
from links.services import link_archive, link_create

PHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.5 Mobile/15E148 Safari/604.1"
)
DESKTOP = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0 Safari/537.36"
GOOGLEBOT = "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"

_factory = RequestFactory()


def _now():
    return timezone.now().replace(microsecond=0)


def _click(link, *, at, visitor_id=None, ua=PHONE, referrer="", ip="81.2.69.142") -> Click:
    headers = {"HTTP_USER_AGENT": ua, "HTTP_ACCEPT_LANGUAGE": "en-GB,en;q=0.9", "REMOTE_ADDR": ip}
    if referrer:
        headers["HTTP_REFERER"] = referrer
    click_id = new_click_id()
    payload = click_payload(
        request=_factory.get(f"/l/{link.short_id}", **headers), link_id=link.id, creator_id=link.creator_id,
        click_id=click_id, visitor_id=visitor_id or new_visitor_id(), occurred_at=at.timestamp(),
    )
    clicks_store(payloads=[payload])
    return Click.objects.get(public_id=click_id)


@pytest.fixture
def convert(django_capture_on_commit_callbacks):
    def _convert(creator, **fields) -> Conversion:
        fields.setdefault("event", "purchase")
        fields.setdefault("source", Conversion.Source.TRACK)
        with django_capture_on_commit_callbacks(execute=True):
            conversion, _ = conversion_record(creator=creator, **fields)
        conversion.refresh_from_db()
        return conversion

    return _convert


@pytest.fixture
def month(alice, convert):
    """Alice's last 30 days: 4 human clicks (3 visitors) and 1 bot on two links; a sale of 100 on
    the video (confidence 97), 50 on the bio link (93) and an unattributed one of 30. Before that,
    one click and one sale of 60. Half of it rolled up, half still in the live tail."""
    now = _now()
    video = link_create(creator=alice, url="https://shop.example/launch", title="Launch video", utm_source="youtube")
    bio = link_create(creator=alice, url="https://shop.example/bio", title="Bio link")
    ann, ben, cat, dan = (new_visitor_id() for _ in range(4))
    # Ann at her own home (the others' later clicks from hers would make her journey less sure).
    first = _click(video, at=now - timedelta(days=3), visitor_id=ann, referrer="https://www.youtube.com/watch?v=1", ip="86.0.0.1")
    _click(video, at=now - timedelta(days=3, minutes=-10), visitor_id=ann, ip="86.0.0.1")
    _click(video, at=now - timedelta(days=2), visitor_id=ben, ua=DESKTOP)
    _click(video, at=now - timedelta(days=2), ua=GOOGLEBOT)
    _click(video, at=now - timedelta(days=40), visitor_id=dan)
    rollups_run()
    _click(bio, at=now - timedelta(days=2), visitor_id=cat)
    sale = convert(alice, click_id=first.public_id, amount=Decimal("100.00"), occurred_at=now - timedelta(days=1))
    bio_sale = convert(alice, visitor_id=cat, amount=Decimal("50.00"), occurred_at=now - timedelta(days=1), event="subscription")
    lost = convert(alice, visitor_id=new_visitor_id(), amount=Decimal("30.00"), occurred_at=now - timedelta(days=1), source=Conversion.Source.WHOP)
    old = convert(alice, visitor_id=dan, amount=Decimal("60.00"), occurred_at=now - timedelta(days=39))
    assert [c.status for c in (sale, bio_sale, lost, old)] == ["attributed", "attributed", "unattributed", "attributed"]
    return {"video": video, "bio": bio, "sale": sale, "bio_sale": bio_sale, "lost": lost, "old": old}


def _kpi(content: bytes, key: str) -> str:
    match = re.search(rf'id="kpi-{key}">.*?<span class="value">([^<]*)</span>', content.decode(), re.DOTALL)
    assert match, f"no KPI {key}"
    return match.group(1)


def _detail_kpi(content: bytes, key: str) -> str:
    match = re.search(rf'<span class="value" id="kpi-{key}">([^<]*)</span>', content.decode())
    assert match, f"no KPI {key}"
    return match.group(1)


# --- login and isolation --------------------------------------------------------------------

PAGES = [
    "/overview/", "/links/", "/links/{video}/", "/conversions/", "/identities/{identity}/", "/models/", "/settings/",
    "/exports/links.csv", "/exports/clicks.csv", "/exports/conversions.csv",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_dashboard_page_needs_a_login(client, month, path):
    path = path.format(video=month["video"].id, identity=month["sale"].identity_id)

    response = client.get(path)

    assert response.status_code == 302
    assert response["Location"] == f"/accounts/login/?next={path}"


def test_saving_settings_needs_a_login(client, alice):
    response = client.post("/settings/", {"default_model": "linear", "window_days": "7", "half_life_days": "3"})

    assert response.status_code == 302
    assert response["Location"].startswith("/accounts/login/")
    assert attribution_settings_for(alice.id).window_days == 30
    assert not Recompute.objects.exists()


@pytest.mark.parametrize(
    "path",
    ["/links/{video}/", "/links/{video}/edit/", "/identities/{identity}/", "/conversions/?link={video}", "/exports/clicks.csv?link={video}",
     "/exports/conversions.csv?link={video}", "/links/{video}/qr.png", "/links/{video}/qr.svg"],
)
def test_bob_gets_404_on_alices_pages(bob_client, month, path):
    response = bob_client.get(path.format(video=month["video"].id, identity=month["sale"].identity_id))

    assert response.status_code == 404
    assert b"Launch video" not in response.content


def test_bobs_overview_never_shows_alices_numbers(bob, bob_client, month):
    link_create(creator=bob, url="https://bob.example/", title="Bob's page")

    response = bob_client.get("/overview/", {"range": "90d"})

    assert response.status_code == 200
    assert (_kpi(response.content, "clicks"), _kpi(response.content, "conversions"), _kpi(response.content, "revenue")) == ("0", "0", "0.00")
    assert _kpi(response.content, "bots") == "0"
    for secret in (b"Launch video", b"Bio link", b"youtube", b"150.00", b"100.00"):
        assert secret not in response.content
    assert all(row["value"] in (0, None, Decimal(0)) for row in response.context["kpis"])


def test_bobs_lists_and_exports_leave_out_alices_rows(bob_client, month):
    for path in ("/links/", "/conversions/?range=90d", "/models/?range=90d"):
        response = bob_client.get(path)
        assert response.status_code == 200
        assert b"Launch video" not in response.content and b"Bio link" not in response.content
    for path in ("/exports/links.csv", "/exports/clicks.csv?range=90d", "/exports/conversions.csv?range=90d"):
        rows = b"".join(bob_client.get(path).streaming_content).decode().splitlines()
        assert len(rows) == 1  # the header alone


# --- overview -------------------------------------------------------------------------------


def test_the_overview_shows_alices_figures_and_top_links(alice_client, month):
    response = alice_client.get("/overview/")

    assert response.status_code == 200
    content = response.content
    assert {key: _kpi(content, key) for key in ("clicks", "unique", "conversions", "revenue", "conversion_rate", "attribution_rate", "confidence", "bots")} == {
        "clicks": "4", "unique": "3", "conversions": "3", "revenue": "150.00", "conversion_rate": "75.0%",
        "attribution_rate": "66.7%", "confidence": "95", "bots": "1",
    }
    assert b"+300% vs previous period" in content  # clicks: 4 against 1
    assert b"+150% vs previous period" in content  # revenue: 150 against 60
    top = [row["link"] for row in response.context["top_links"]]
    assert top == [month["video"], month["bio"]]
    assert f'href="/links/{month["video"].id}/?'.encode() in content
    assert b"Launch video" in content and b"Bio link" in content
    assert b"Welcome! Make your first tracked link" not in content
    assert b'<svg class="chart clicks"' in content


def test_the_overview_of_the_last_24_hours_has_hourly_clicks_and_no_revenue_chart(alice, alice_client):
    link = link_create(creator=alice, url="https://shop.example/a", title="Story")
    _click(link, at=(_now() - timedelta(hours=3)).replace(minute=15))

    response = alice_client.get("/overview/", {"range": "24h"})

    assert len(response.context["series"]) == 24
    assert sum(row["clicks"] for row in response.context["series"]) == 1
    assert response.context["revenue_chart"] is None
    assert _kpi(response.content, "clicks") == "1"


def test_a_custom_period_without_dates_says_what_is_missing(alice_client, month):
    response = alice_client.get("/overview/", {"range": "custom"})

    assert response.status_code == 200
    assert b"A custom period needs a start and an end date." in response.content


def test_a_custom_period_shows_only_its_days(alice_client, month):
    day = (_now() - timedelta(days=40)).date()

    response = alice_client.get("/overview/", {"range": "custom", "start": day.isoformat(), "end": day.isoformat()})

    assert _kpi(response.content, "clicks") == "1"


def test_the_model_selector_changes_who_earned_the_revenue(alice, alice_client, convert):
    now = _now()
    opener = link_create(creator=alice, url="https://shop.example/opener", title="Opener")
    closer = link_create(creator=alice, url="https://shop.example/closer", title="Closer")
    visitor = new_visitor_id()
    _click(opener, at=now - timedelta(days=3), visitor_id=visitor)
    _click(closer, at=now - timedelta(days=2), visitor_id=visitor)
    convert(alice, visitor_id=visitor, amount=Decimal("100.00"), occurred_at=now - timedelta(days=1))

    first = alice_client.get("/overview/", {"model": "first_touch"})
    last = alice_client.get("/overview/", {"model": "last_touch"})

    assert [(row["link"], row["revenue"]) for row in first.context["top_links"]] == [(opener, Decimal("100.00")), (closer, Decimal(0))]
    assert [(row["link"], row["revenue"]) for row in last.context["top_links"]] == [(closer, Decimal("100.00")), (opener, Decimal(0))]
    assert b"First touch" in first.content and b"Last touch" in last.content
    opener_first = alice_client.get(f"/links/{opener.id}/", {"model": "first_touch"})
    opener_last = alice_client.get(f"/links/{opener.id}/", {"model": "last_touch"})
    assert opener_first.context["money"] == {"conversions": 1, "revenue": Decimal("100.00")}
    assert opener_last.context["money"] == {"conversions": 0, "revenue": Decimal(0)}
    assert b"Revenue (First touch)</span><span class=\"value\">100.00" in opener_first.content
    assert b"Revenue (Last touch)</span><span class=\"value\">0.00" in opener_last.content


def test_the_default_model_comes_from_the_settings(alice, alice_client, month):
    prefs = attribution_settings_for(alice.id)
    prefs.default_model = "first_touch"
    prefs.save()

    response = alice_client.get("/overview/")

    assert response.context["model"] == "first_touch"
    assert b"First touch" in response.content


# --- empty states ---------------------------------------------------------------------------


def test_a_new_creator_is_taught_to_make_a_link_on_every_page(bob_client):
    overview = bob_client.get("/overview/")
    assert b"Welcome! Make your first tracked link" in overview.content
    assert b'href="/links/new/"' in overview.content
    assert b"No traffic in this period yet." in overview.content
    assert b"No clicks in this period." in overview.content

    links = bob_client.get("/links/")
    assert b"Create your first tracked link" in links.content

    conversions = bob_client.get("/conversions/")
    assert b"No conversions yet" in conversions.content
    assert b'href="/settings/"' in conversions.content  # where the snippet is
    assert b'href="/settings/billing/' in conversions.content  # or connect Whop

    models = bob_client.get("/models/")
    assert b"No attributed revenue in this period yet." in models.content


def test_a_link_without_clicks_says_how_to_get_some(alice, alice_client):
    link = link_create(creator=alice, url="https://shop.example/a", title="Fresh")

    response = alice_client.get(f"/links/{link.id}/")

    assert response.status_code == 200
    assert b"No clicks yet. Share" in response.content
    assert link.short_url.encode() in response.content


def test_filters_without_matches_say_so_rather_than_the_empty_state(alice_client, month):
    response = alice_client.get("/conversions/", {"event": "refund-that-never-was"})

    assert b"No conversions match these filters." in response.content
    assert b"No conversions yet" not in response.content


# --- links ----------------------------------------------------------------------------------


def test_the_link_list_shows_alices_links_with_their_clicks(alice_client, month):
    response = alice_client.get("/links/")

    rows = {link.title: counts for link, counts in response.context["rows"]}
    assert rows == {"Launch video": {"clicks": 4, "unique_visitors": 3}, "Bio link": {"clicks": 1, "unique_visitors": 1}}


def test_the_link_detail_shows_its_own_traffic_revenue_and_clicks(alice_client, month):
    video = month["video"]

    response = alice_client.get(f"/links/{video.id}/")

    assert response.status_code == 200
    assert (_detail_kpi(response.content, "clicks"), _detail_kpi(response.content, "unique"), _detail_kpi(response.content, "bots")) == ("3", "2", "1")
    assert response.context["money"] == {"conversions": 1, "revenue": Decimal("100.00")}
    assert b"Launch video" in response.content
    assert b"Bio link" not in response.content
    assert f'href="/conversions/?link={video.id}"'.encode() in response.content
    assert f"/links/{video.id}/qr.svg".encode() in response.content
    assert b"bot (crawler)" in response.content
    breakdowns = dict(response.context["breakdowns"])
    assert breakdowns["UTM source"] == [("youtube", 3)]
    assert sorted(breakdowns["Referrer"]) == [("direct", 2), ("youtube.com", 1)]


# --- conversions ----------------------------------------------------------------------------


def _listed(response) -> set[int]:
    return {conversion.id for conversion in response.context["page"].object_list}


def test_the_conversions_page_lists_the_periods_conversions_with_evidence(alice_client, month):
    response = alice_client.get("/conversions/")

    assert response.status_code == 200
    assert _listed(response) == {month["sale"].id, month["bio_sale"].id, month["lost"].id}
    assert b"click_id" in response.content and b"visitor_cookie" in response.content
    assert f'href="/identities/{month["sale"].identity_id}/"'.encode() in response.content
    assert alice_client.get("/conversions/", {"range": "90d"}).context["page"].paginator.count == 4


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({"status": "unattributed"}, {"lost"}),
        ({"status": "attributed"}, {"sale", "bio_sale"}),
        ({"source": "whop"}, {"lost"}),
        ({"event": "subscription"}, {"bio_sale"}),
        ({"link": "video"}, {"sale"}),
        ({"link": "video", "range": "90d"}, {"sale", "old"}),
        ({"link": "bio", "model": "first_touch"}, {"bio_sale"}),
        ({"range": "7d", "status": "attributed", "source": "track"}, {"sale", "bio_sale"}),
    ],
)
def test_the_conversions_page_filters(alice_client, month, filters, expected):
    if "link" in filters:
        filters = {**filters, "link": month[filters["link"]].id}

    response = alice_client.get("/conversions/", filters)

    assert _listed(response) == {month[name].id for name in expected}
    if "link" in filters:
        assert response.context["link"].id == filters["link"]


def test_the_identity_page_shows_the_journey_in_order(alice_client, month):
    response = alice_client.get(f"/identities/{month['sale'].identity_id}/")

    assert response.status_code == 200
    kinds = [kind for kind, _, _ in response.context["events"]]
    assert kinds == ["click", "click", "conversion"]
    assert b"Launch video" in response.content
    assert b"100.00 USD" in response.content
    assert b"confidence 97" in response.content


def test_an_identity_of_another_creator_is_404_even_for_its_number(alice, bob_client, month):
    assert bob_client.get(f"/identities/{month['lost'].identity_id}/").status_code == 404
    assert bob_client.get("/identities/999999999/").status_code == 404


# --- model comparison -----------------------------------------------------------------------


def test_the_models_page_compares_revenue_per_link_under_every_model(alice, alice_client, convert):
    now = _now()
    opener = link_create(creator=alice, url="https://shop.example/opener", title="Opener")
    closer = link_create(creator=alice, url="https://shop.example/closer", title="Closer")
    visitor = new_visitor_id()
    _click(opener, at=now - timedelta(days=3), visitor_id=visitor)
    _click(closer, at=now - timedelta(days=2), visitor_id=visitor)
    convert(alice, visitor_id=visitor, amount=Decimal("100.00"), occurred_at=now - timedelta(days=1))

    response = alice_client.get("/models/", {"model": "first_touch"})

    models = [key for key, _ in response.context["models"]]
    table = {row["link"]: dict(zip(models, row["revenue"], strict=True)) for row in response.context["table"]}
    assert table[opener]["first_touch"] == table[closer]["last_touch"] == Decimal("100.00")
    assert table[opener]["last_touch"] == table[closer]["first_touch"] == Decimal(0)
    assert table[opener]["linear"] == table[closer]["linear"] == Decimal("50.00")
    assert [row["link"] for row in response.context["table"]] == [opener, closer]  # by the chosen model
    assert [row["spread"] for row in response.context["table"]] == [Decimal("100.00"), Decimal("100.00")]
    rollups_run()
    rolled = alice_client.get("/models/", {"model": "first_touch"})
    assert [row["revenue"] for row in rolled.context["table"]] == [row["revenue"] for row in response.context["table"]]


# --- settings -------------------------------------------------------------------------------


def _settings_form(**overrides) -> dict:
    data = {"default_model": "last_touch", "window_days": "30", "half_life_days": "7.00"}
    data.update(overrides)
    return data


def test_the_settings_page_shows_the_current_choices_and_the_snippet(alice_client):
    response = alice_client.get("/settings/")

    assert response.status_code == 200
    assert response.context["form"].initial["window_days"] == 30
    assert b'name="window_days"' in response.content and b'name="half_life_days"' in response.content
    assert b"/static/allumi.js" in response.content
    assert b'id="recompute"' not in response.content


@pytest.mark.parametrize("change", [{"window_days": "14"}, {"half_life_days": "2.5"}])
def test_changing_window_or_half_life_starts_a_recompute_whose_progress_the_page_shows(alice, alice_client, month, change):
    response = alice_client.post("/settings/", _settings_form(**change))

    assert response.status_code == 302 and response["Location"] == "/settings/"
    recompute = Recompute.objects.get(creator=alice)
    assert (recompute.total, recompute.done, recompute.finished_at) == (4, 0, None)
    page = alice_client.get("/settings/")
    assert b"being re-attributed" in page.content
    assert b"Re-attributing your conversions: 0 of 4 (0%)" in page.content
    assert b'<progress max="100" value="0">' in page.content
    Recompute.objects.filter(pk=recompute.pk).update(done=2)
    assert b"2 of 4 (50%)" in alice_client.get("/settings/").content


def test_a_recompute_that_ran_shows_when_it_finished(alice, alice_client, month, django_capture_on_commit_callbacks):
    with django_capture_on_commit_callbacks(execute=True):
        alice_client.post("/settings/", _settings_form(window_days="1"))

    recompute = Recompute.objects.get(creator=alice)
    assert recompute.finished_at is not None and recompute.done == 4
    assert b"Last re-attribution finished" in alice_client.get("/settings/").content
    # With a one-day window, clicks two days before the sale no longer earn it.
    month["sale"].refresh_from_db()
    assert month["sale"].status == Conversion.Status.UNATTRIBUTED


def test_changing_only_the_model_saves_without_a_recompute(alice, alice_client, month):
    response = alice_client.post("/settings/", _settings_form(default_model="linear"), follow=True)

    assert b"Settings saved." in response.content
    assert attribution_settings_for(alice.id).default_model == "linear"
    assert not Recompute.objects.exists()


@pytest.mark.parametrize(("field", "value"), [("window_days", "0"), ("window_days", "91"), ("half_life_days", "0"), ("half_life_days", "400")])
def test_settings_out_of_range_are_refused(alice, alice_client, field, value):
    response = alice_client.post("/settings/", _settings_form(**{field: value}))

    assert response.status_code == 200
    assert response.context["form"].errors[field]
    prefs = attribution_settings_for(alice.id)
    assert (prefs.window_days, prefs.half_life_days) == (30, Decimal("7.00"))
    assert not Recompute.objects.exists()


def test_bob_saving_his_settings_leaves_alices_alone(alice, bob, bob_client, month):
    bob_client.post("/settings/", _settings_form(window_days="5"))

    assert attribution_settings_for(alice.id).window_days == 30
    assert attribution_settings_for(bob.id).window_days == 5
    assert list(Recompute.objects.values_list("creator_id", "total")) == [(bob.id, 0)]


def test_an_archived_link_still_has_its_detail_page(alice, alice_client, month):
    link_archive(link=month["bio"])

    response = alice_client.get(f"/links/{month['bio'].id}/")

    assert response.status_code == 200
    assert b"archived" in response.content
