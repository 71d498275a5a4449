"""Headless Chromium for browser tests (`pytest.mark.browser`).

Playwright's sync API keeps an asyncio loop marked as running in the main thread for as long as
Playwright is started, and Django then refuses every ORM call as "async unsafe", in these tests and
in every later test of the session. So the browser is driven through the async API on a private
loop that runs only inside `chromium.run(...)`: between browser steps the ORM works as usual.

The browser is Debian's Chromium, never a downloaded one, and it starts without the network.
"""

import asyncio
import os
from dataclasses import dataclass, field

import pytest
from playwright.async_api import async_playwright

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# Headless Chromium says "HeadlessChrome", which Allumi rightly counts as a bot: visit as a person.
DESKTOP_CHROME = (
    "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
)


class Chromium:
    """One browser for the session, started on first use so that a missing binary fails the test."""

    def __init__(self):
        self.loop = asyncio.new_event_loop()
        self._playwright = None
        self._browser = None

    def run(self, awaitable):
        return self.loop.run_until_complete(awaitable)

    @property
    def browser(self):
        if self._browser is None:
            if not os.access(CHROMIUM, os.X_OK):
                pytest.fail(f"Browser tests need Debian's Chromium at {CHROMIUM} (apt-get install chromium).")
            self._playwright = self.run(async_playwright().start())
            self._browser = self.run(
                self._playwright.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
            )
        return self._browser

    def close(self):
        if self._browser is not None:
            self.run(self._browser.close())
        if self._playwright is not None:
            self.run(self._playwright.stop())
        self.loop.close()


@pytest.fixture(scope="session")
def chromium():
    browser = Chromium()
    yield browser
    browser.close()


@dataclass
class Tab:
    """A page in its own browser context, with every console error and uncaught exception it had."""

    context: object
    page: object
    problems: list[str] = field(default_factory=list)
    requests: list[str] = field(default_factory=list)


@pytest.fixture
def open_tab(chromium):
    """`open_tab(init_script=...)` → a fresh Tab (own cookies); all are closed after the test."""
    contexts = []

    def _open(*, init_script: str | None = None) -> Tab:
        context = chromium.run(chromium.browser.new_context(user_agent=DESKTOP_CHROME))
        contexts.append(context)
        if init_script:
            chromium.run(context.add_init_script(init_script))
        tab = Tab(context=context, page=chromium.run(context.new_page()))
        tab.page.on("console", lambda message: message.type == "error" and tab.problems.append(f"console: {message.text}"))
        tab.page.on("pageerror", lambda error: tab.problems.append(f"page error: {error}"))
        tab.page.on("request", lambda request: tab.requests.append(request.url))
        return tab

    yield _open
    for context in contexts:
        chromium.run(context.close())
