"""The dashboard in a real browser: a creator's first journey, every page at two widths, the keyboard.

Every page is checked for console errors, uncaught exceptions and Content Security Policy
violations (the policy allows no inline script or style): a `securitypolicyviolation` listener
installed before any page script records them into `window.__csp` and reports them to the test
through an exposed binding, so a violation on a page left by a form submission is not lost.

Screenshots go to test-artifacts/screenshots/<page>-<width>.png (not committed), for a person to look at.
"""

import csv
import io
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from django.core import mail
from django.core.management import call_command
from django.db.models import Count

from attribution.management.commands.seed_demo import DEMO_EMAIL, DEMO_PASSWORD
from attribution.models import Click, Conversion
from links.models import Link
from tests.conftest import PASSWORD

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

DESKTOP = {"width": 1280, "height": 900}
PHONE = {"width": 390, "height": 844}
CSP_PROBE = """
window.__csp = [];
document.addEventListener("securitypolicyviolation", function (event) {
  var text = event.violatedDirective + " blocked " + (event.blockedURI || "inline") + " at "
    + (event.sourceFile || location.pathname) + ":" + event.lineNumber;
  window.__csp.push(text);
  if (window.__reportCsp) { window.__reportCsp(text); }
}, true);
"""
CONVERSIONS_CSV_HEADER = [
    "id", "external_id", "event", "source", "status", "occurred_at", "amount", "refunded_amount", "currency",
    "confidence", "model", "short_id", "weight", "revenue",
]
LANDING_PAGE = b"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Maya's course</title><link rel="icon" href="data:,"></head>
<body><h1>Ship your first course</h1></body></html>
"""


# --- a creator's own site, on another origin --------------------------------------------------------


class _LandingHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(LANDING_PAGE)))
        self.end_headers()
        self.wfile.write(LANDING_PAGE)

    def log_message(self, format, *args):  # quiet test output
        pass


@pytest.fixture
def landing_site():
    """A tiny site on 127.0.0.1 (random port) that answers every path with one page."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _LandingHandler)
    server.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def screenshots(request):
    path = Path(request.config.rootpath) / "test-artifacts" / "screenshots"
    path.mkdir(parents=True, exist_ok=True)
    return path


# --- a watched dashboard tab ---------------------------------------------------------------------


def _dashboard_tab(chromium, open_tab):
    """A tab whose CSP violations (events and console messages of any level) are kept in tab.csp."""
    tab = open_tab(init_script=CSP_PROBE)
    tab.csp = []
    chromium.run(tab.page.expose_function("__reportCsp", lambda text: tab.csp.append(f"event: {text}")))
    tab.page.on(
        "console",
        lambda message: "Content Security Policy" in message.text and tab.csp.append(f"console: {message.text}"),
    )
    return tab


def _trouble(chromium, tab) -> list[str]:
    """Everything wrong so far: console errors, page errors, CSP violations (this page's included)."""
    on_page = chromium.run(tab.page.evaluate("window.__csp || []"))
    recorded = set(tab.csp)
    # A CSP console error is in both lists: say it once.
    return list(
        dict.fromkeys(
            tab.problems + tab.csp + [f"window.__csp: {text}" for text in on_page if f"event: {text}" not in recorded]
        )
    )


def _visit(chromium, tab, url):
    response = chromium.run(tab.page.goto(url))
    chromium.run(tab.page.wait_for_load_state("load"))
    return response


async def _submit(page, selector):
    async with page.expect_navigation():
        await page.click(selector)


def _log_in(chromium, tab, live_server, email, password):
    _visit(chromium, tab, f"{live_server.url}/accounts/login/")
    chromium.run(tab.page.fill("#id_username", email))
    chromium.run(tab.page.fill("#id_password", password))
    chromium.run(_submit(tab.page, "form button.primary"))
    assert urlsplit(tab.page.url).path == "/overview/", chromium.run(tab.page.text_content("main"))


async def _download(page, selector):
    async with page.expect_download() as info:
        await page.click(selector)
    download = await info.value
    return download.url, download.suggested_filename, Path(await download.path()).read_text(encoding="utf-8")


# --- 1. the first journey ------------------------------------------------------------------------------


def test_a_new_creator_signs_up_makes_a_link_sees_its_click_and_exports(
    chromium, open_tab, live_server, landing_site, flush
):
    tab = _dashboard_tab(chromium, open_tab)
    page = tab.page

    _visit(chromium, tab, f"{live_server.url}/accounts/signup/")
    chromium.run(page.fill("#id_name", "Maya"))
    chromium.run(page.fill("#id_email", "Maya@Example.org"))
    chromium.run(page.fill("#id_password", "plum-orchard-delta-42"))
    chromium.run(_submit(page, "form button.primary"))
    assert "Check your email" in chromium.run(page.text_content("main"))

    assert len(mail.outbox) == 1 and mail.outbox[0].to == ["maya@example.org"]
    confirm_path = re.search(r"https?://[^/\s]+(/accounts/confirm/[^/\s]+/)", mail.outbox[0].body).group(1)
    _visit(chromium, tab, f"{live_server.url}{confirm_path}")
    assert urlsplit(page.url).path == "/links/"
    assert "Your email is confirmed" in chromium.run(page.text_content(".messages"))

    _visit(chromium, tab, f"{live_server.url}/links/new/")
    chromium.run(page.fill("#id_url", f"{landing_site.url}/offer"))
    chromium.run(page.fill("#id_title", "Launch video"))
    chromium.run(page.fill("#id_utm_source", "youtube"))
    chromium.run(page.fill("#id_tags", "youtube, launch"))
    chromium.run(_submit(page, "form button.primary"))
    link = Link.objects.get(creator__email="maya@example.org")
    assert urlsplit(page.url).path == f"/links/{link.id}/"
    assert (link.url, link.title, link.utm_source) == (f"{landing_site.url}/offer", "Launch video", "youtube")
    assert sorted(tag.name for tag in link.tags.all()) == ["launch", "youtube"]

    # A visitor, in a browser of their own, follows the short link to the creator's page.
    visitor = open_tab()
    _visit(chromium, visitor, f"{live_server.url}/l/{link.short_id}")
    landed = urlsplit(visitor.page.url)
    assert f"{landed.scheme}://{landed.netloc}{landed.path}" == link.url
    assert parse_qs(landed.query)["utm_source"] == ["youtube"]
    flush()
    click = Click.objects.get(link=link)
    assert parse_qs(landed.query)["allumi_cid"] == [click.public_id] and not click.is_bot
    assert visitor.problems == []

    _visit(chromium, tab, f"{live_server.url}/overview/")
    assert chromium.run(page.text_content("#kpi-clicks .value")).strip() == "1"

    chromium.run(page.select_option("#id_model", "first_touch"))
    chromium.run(_submit(page, "form.filters button[type=submit]"))
    assert parse_qs(urlsplit(page.url).query)["model"] == ["first_touch"]
    assert chromium.run(page.input_value("#id_model")) == "first_touch"
    assert chromium.run(page.text_content("#kpi-clicks .value")).strip() == "1"

    url, filename, text = chromium.run(_download(page, "a.button[href^='/exports/conversions.csv']"))
    assert parse_qs(urlsplit(url).query)["model"] == ["first_touch"]  # the export follows the filters
    assert filename == "conversions.csv"
    rows = list(csv.reader(io.StringIO(text)))
    assert rows == [CONVERSIONS_CSV_HEADER]  # no conversions yet: the header alone

    assert _trouble(chromium, tab) == []


# --- 2. every page, at two widths, with demo data --------------------------------------------------


def _demo_pages():
    """(name, path) of every dashboard page, for the demo creator made by `seed_demo`."""
    creator_clicks = Click.objects.filter(creator__email=DEMO_EMAIL, is_bot=False)
    busiest = creator_clicks.values("link").annotate(n=Count("id")).order_by("-n", "link").first()["link"]
    journey = (
        Conversion.objects.filter(creator__email=DEMO_EMAIL, identity__isnull=False).order_by("id").first().identity_id
    )
    return [
        ("overview", "/overview/"),
        ("links", "/links/"),
        ("link-detail", f"/links/{busiest}/"),
        ("link-new", "/links/new/"),
        ("conversions", "/conversions/"),
        ("identity", f"/identities/{journey}/"),
        ("models", "/models/"),
        ("settings", "/settings/"),
        ("api-keys", "/accounts/keys/"),
        ("profile", "/accounts/profile/"),
        ("whop-settings", "/settings/billing/whop/"),
    ]


@pytest.mark.parametrize("viewport", [DESKTOP, PHONE], ids=["desktop", "phone"])
def test_every_dashboard_page_renders_cleanly_with_demo_data(chromium, open_tab, live_server, screenshots, viewport):
    call_command("seed_demo", clicks=200, seed=2026, stdout=io.StringIO())
    assert Conversion.objects.filter(creator__email=DEMO_EMAIL, amount__isnull=False).exists()
    pages = _demo_pages()
    tab = _dashboard_tab(chromium, open_tab)
    chromium.run(tab.page.set_viewport_size(viewport))
    _log_in(chromium, tab, live_server, DEMO_EMAIL, DEMO_PASSWORD)
    width = viewport["width"]

    failures = []
    for name, path in pages:
        tab.problems.clear()
        tab.csp.clear()
        response = _visit(chromium, tab, f"{live_server.url}{path}")
        chromium.run(tab.page.screenshot(path=str(screenshots / f"{name}-{width}.png"), full_page=True))
        if response.status != 200 or urlsplit(tab.page.url).path != path:
            failures.append(f"{path}: status {response.status} at {tab.page.url}")
        failures += [f"{path}: {problem}" for problem in _trouble(chromium, tab)]
        scroll_width, inner_width = chromium.run(
            tab.page.evaluate("[document.documentElement.scrollWidth, window.innerWidth]")
        )
        if inner_width != width:
            failures.append(f"{path}: window.innerWidth is {inner_width}, not {width}")
        if viewport is PHONE and scroll_width > inner_width + 1:
            failures.append(f"{path}: overflows sideways on a phone ({scroll_width}px wide in {inner_width}px)")

    assert failures == []


# --- 3. the keyboard ---------------------------------------------------------------------------------


FOCUSED = """() => {
  const element = document.activeElement;
  return {id: element.id, tag: element.tagName.toLowerCase(), type: element.type || "",
          outline: getComputedStyle(element).outlineStyle, inside: !element.matches(":focus")};
}"""
FORM_CONTROLS = """() => Array.from(document.querySelectorAll("main form[method=post] :is(input, select, textarea)"))
  .filter((element) => element.type !== "hidden").map((element) => element.id)"""
TYPED = {
    "id_url": "https://maya.example/offer",
    "id_title": "Keyboard link",
    "id_utm_source": "newsletter",
    "id_slug": "typed-link",
    "id_tags": "email, weekly",
}


def test_the_new_link_form_works_from_the_keyboard(chromium, open_tab, live_server, alice):
    tab = _dashboard_tab(chromium, open_tab)
    page = tab.page
    _log_in(chromium, tab, live_server, alice.email, PASSWORD)
    _visit(chromium, tab, f"{live_server.url}/links/new/")
    controls = chromium.run(page.evaluate(FORM_CONTROLS))
    assert controls[0] == "id_url"

    # Tab from the top of the page into the form, then through it, typing on the way.
    order = []
    for _ in range(80):  # the skip link, the navigation, then fields (a date field takes several stops)
        chromium.run(page.keyboard.press("Tab"))
        focused = chromium.run(page.evaluate(FOCUSED))
        if focused["tag"] == "button" and focused["type"] == "submit" and order:
            break
        if not order and focused["id"] != "id_url":
            continue
        # The app's focus ring, except on a date field's own picker button, which the browser rings.
        assert focused["inside"] or focused["outline"] != "none", f"no visible focus on #{focused['id']}"
        if not order or order[-1] != focused["id"]:
            order.append(focused["id"])
            if focused["id"] in TYPED:
                chromium.run(page.keyboard.type(TYPED[focused["id"]]))
    else:
        pytest.fail(f"Tab never reached the submit button; focus went through {order}")
    assert order == controls  # every field, in the order they are shown

    chromium.run(page.keyboard.press("Shift+Tab"))
    assert chromium.run(page.evaluate(FOCUSED))["id"] == "id_tags"

    async def _press_enter():
        async with page.expect_navigation():
            await page.keyboard.press("Enter")

    chromium.run(_press_enter())
    link = Link.objects.get(creator=alice)
    assert urlsplit(page.url).path == f"/links/{link.id}/"
    assert (link.url, link.title, link.utm_source, link.short_id) == (
        "https://maya.example/offer", "Keyboard link", "newsletter", "typed-link"
    )
    assert sorted(tag.name for tag in link.tags.all()) == ["email", "weekly"]
    assert _trouble(chromium, tab) == []
