"""`/static/allumi.js` in a real browser, on a creator's page served from another origin.

The landing page comes from a tiny HTTP server on 127.0.0.1 while Allumi runs on the live server
(localhost, another port): the click id travels through the real redirect, the cookie is the
landing page's own, and the track call crosses origins (and sites) as it does in production.
"""

import threading
import time
from decimal import Decimal
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest

from allumi.accounts.models import ApiKey
from allumi.accounts.services import api_key_create
from attribution.models import Click, Conversion, Credit
from links.services import link_create

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

NINETY_DAYS = 90 * 24 * 60 * 60
DO_NOT_TRACK = 'Object.defineProperty(Navigator.prototype, "doNotTrack", {get: function () { return "1"; }});'
NO_BEACON = "delete Navigator.prototype.sendBeacon;"
PURCHASE = "allumi.track('purchase', {email: 'v@example.org', amount: 49, currency: 'USD', external_id: 'order-1'})"
# The landing page's own button: no currency, so the creator's (USD) applies.
BUY = "allumi.track('purchase', {email: 'v@example.org', amount: 49, external_id: 'order-1'})"

LANDING_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>Alice's course</title>
<link rel="icon" href="data:,">
<style>
  body {{ font-family: system-ui, sans-serif; max-width: 36rem; margin: 4rem auto; color: #1f2430; }}
  .buy {{ background: #2f5bea; color: #fff; border: 0; border-radius: .4rem; padding: .8rem 1.4rem; font-size: 1rem; }}
  code {{ background: #eef1f8; padding: .1rem .3rem; }}
</style>
<script>window.allumi = window.allumi || []; {queued}</script>
<script src="{snippet}" data-key="{key}"{extra} defer></script>
</head>
<body>
<h1>Ship your first course</h1>
<p>Six weeks, twelve lessons, one finished course. Taught by Alice.</p>
<button class="buy" type="button" onclick="{buy}">Buy for $49</button>
<p>Allumi click id: <code id="click-id">(snippet not loaded)</code></p>
<script>
  document.addEventListener("DOMContentLoaded", function () {{
    document.getElementById("click-id").textContent = window.allumi.clickId() || "none";
  }});
</script>
</body>
</html>
"""


class _LandingHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        body = self.server.pages.get(urlsplit(self.path).path)
        if body is None:
            self.send_error(404)
            return
        data = body.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format, *args):  # quiet test output
        pass


@pytest.fixture
def landing():
    """A creator's own site on 127.0.0.1 (random port); set `landing.pages[path] = html`."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LandingHandler)
    server.pages = {}
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def publishable_key(alice):
    return api_key_create(creator=alice, kind=ApiKey.Kind.PUBLISHABLE, name="alice site")[1]


@pytest.fixture
def artifacts(request):
    path = Path(request.config.rootpath) / "test-artifacts"
    path.mkdir(exist_ok=True)
    return path


def _landing_page(live_server, key, *, extra="", queued=""):
    snippet = f"{live_server.url}/static/allumi.js"
    return LANDING_PAGE.format(snippet=snippet, key=key, extra=extra, queued=queued, buy=BUY)


def _offer_link(alice, landing, path="/offer"):
    return link_create(creator=alice, url=f"{landing.url}{path}", utm_source="youtube")


def _click_through(chromium, tab, live_server, link, flush):
    """Follow the short link like a visitor; returns the click id the landing page received."""
    chromium.run(tab.page.goto(f"{live_server.url}/l/{link.short_id}"))
    flush()  # buffered clicks (Redis runs) reach the database, as the beat flusher would do
    landed = urlsplit(tab.page.url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == link.url
    return parse_qs(landed.query)["allumi_cid"][0]


def _wait_for(query, seconds=10.0):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        row = query()
        if row is not None:
            return row
        time.sleep(0.1)
    return None


def _cookie(chromium, tab, url):
    cookies = chromium.run(tab.context.cookies(url))
    return next((cookie for cookie in cookies if cookie["name"] == "allumi_cid"), None)


@pytest.mark.parametrize("transport", ["beacon", "fetch"])
def test_it_keeps_the_click_id_and_attributes_a_purchase_to_the_link(
    chromium, open_tab, live_server, landing, alice, publishable_key, flush, artifacts, transport
):
    landing.pages["/offer"] = _landing_page(live_server, publishable_key)
    link = _offer_link(alice, landing)
    tab = open_tab(init_script=NO_BEACON if transport == "fetch" else None)

    click_id = _click_through(chromium, tab, live_server, link, flush)
    assert chromium.run(tab.page.evaluate("allumi.clickId()")) == click_id
    assert chromium.run(tab.page.text_content("#click-id")) == click_id
    chromium.run(tab.page.screenshot(path=str(artifacts / f"snippet-landing-{transport}.png"), full_page=True))

    cookie = _cookie(chromium, tab, landing.url)
    assert cookie["value"] == click_id and cookie["path"] == "/" and cookie["sameSite"] == "Lax"
    assert not cookie["secure"]  # the landing page is plain http here
    assert abs(cookie["expires"] - (time.time() + NINETY_DAYS)) < 120

    chromium.run(tab.page.goto(f"{landing.url}/offer"))  # back later, without the query string
    assert chromium.run(tab.page.evaluate("allumi.clickId()")) == click_id

    status = chromium.run(tab.page.evaluate(f"() => Promise.resolve({PURCHASE}).then(r => r ? r.status : null)"))
    if transport == "fetch":
        assert status == 202  # a credentialed CORS fetch could read the answer: CORS is right
    conversion = _wait_for(
        lambda: Conversion.objects.filter(external_id="order-1").exclude(status=Conversion.Status.PENDING).first()
    )

    assert conversion is not None, "the conversion was not recorded and attributed within 10 s"
    assert conversion.status == Conversion.Status.ATTRIBUTED
    assert conversion.creator == alice and conversion.source == Conversion.Source.TRACK
    assert (conversion.event, conversion.email, conversion.click_id) == ("purchase", "v@example.org", click_id)
    assert (conversion.amount, conversion.currency) == (Decimal("49.00"), "USD")
    click = Click.objects.get(public_id=click_id)
    assert click.link == link and not click.is_bot
    credits = list(Credit.objects.filter(conversion=conversion, model="last_touch"))
    assert [(credit.link, credit.weight) for credit in credits] == [(link, Decimal("1"))]
    assert tab.problems == []


def test_a_new_click_replaces_the_stored_click_id(chromium, open_tab, live_server, landing, alice, publishable_key, flush):
    landing.pages["/offer"] = _landing_page(live_server, publishable_key)
    link = _offer_link(alice, landing)
    tab = open_tab()

    first = _click_through(chromium, tab, live_server, link, flush)
    second = _click_through(chromium, tab, live_server, link, flush)
    chromium.run(tab.page.goto(f"{landing.url}/offer"))

    assert first != second
    assert chromium.run(tab.page.evaluate("allumi.clickId()")) == second
    assert _cookie(chromium, tab, landing.url)["value"] == second
    assert tab.problems == []


def test_it_stores_and_sends_nothing_under_do_not_track_when_the_creator_respects_it(
    chromium, open_tab, live_server, landing, alice, publishable_key, flush, artifacts
):
    landing.pages["/offer"] = _landing_page(live_server, publishable_key, extra=' data-respect-dnt="true"')
    link = _offer_link(alice, landing)
    tab = open_tab(init_script=DO_NOT_TRACK)

    _click_through(chromium, tab, live_server, link, flush)
    assert chromium.run(tab.page.evaluate("navigator.doNotTrack")) == "1"
    assert chromium.run(tab.page.evaluate("allumi.clickId()")) is None
    assert chromium.run(tab.page.evaluate(f"typeof {PURCHASE}")) == "undefined"
    chromium.run(tab.page.wait_for_timeout(1500))  # time enough for a beacon to go out, were one sent
    chromium.run(tab.page.screenshot(path=str(artifacts / "snippet-landing-dnt.png"), full_page=True))

    assert _cookie(chromium, tab, landing.url) is None
    assert "allumi_cid" not in chromium.run(tab.page.evaluate("document.cookie"))
    assert [url for url in tab.requests if "/api/v1/conversions/track" in url] == []
    assert not Conversion.objects.exists()
    assert tab.problems == []


def test_it_tracks_do_not_track_browsers_when_the_creator_does_not_opt_in(
    chromium, open_tab, live_server, landing, alice, publishable_key, flush
):
    landing.pages["/offer"] = _landing_page(live_server, publishable_key)
    link = _offer_link(alice, landing)
    tab = open_tab(init_script=DO_NOT_TRACK)

    click_id = _click_through(chromium, tab, live_server, link, flush)
    chromium.run(tab.page.click("text=Buy for $49"))
    conversion = _wait_for(lambda: Conversion.objects.filter(external_id="order-1").first())

    assert conversion is not None and conversion.click_id == click_id
    assert (conversion.amount, conversion.currency) == (Decimal("49.00"), "USD")  # the creator's currency
    assert tab.problems == []


def test_it_sends_calls_queued_before_it_loaded(chromium, open_tab, live_server, landing, alice, publishable_key, flush):
    queued = "allumi.push(['track', 'lead', {external_id: 'lead-1', metadata: {plan: 'free'}}]);"
    landing.pages["/offer"] = _landing_page(live_server, publishable_key, queued=queued)
    link = _offer_link(alice, landing)
    tab = open_tab()

    click_id = _click_through(chromium, tab, live_server, link, flush)
    conversion = _wait_for(lambda: Conversion.objects.filter(external_id="lead-1").first())

    assert conversion is not None
    assert (conversion.event, conversion.click_id, conversion.metadata) == ("lead", click_id, {"plan": "free"})
    assert tab.problems == []


def test_it_never_throws_into_the_host_page(chromium, open_tab, live_server, landing, alice, publishable_key):
    landing.pages["/offer"] = _landing_page(live_server, publishable_key)
    tab = open_tab()
    chromium.run(tab.page.goto(f"{landing.url}/offer"))

    results = chromium.run(
        tab.page.evaluate(
            """() => {
                const circular = {}; circular.self = circular;
                return [allumi.track(), allumi.track('x', {metadata: circular}), allumi.clickId()];
            }"""
        )
    )

    assert results == [None, None, None]
    assert tab.problems == []
