"""Locust users for the mixed load test; `bench/load.py` sets everything up and runs them.

By hand, against an Allumi that trusts this machine as a proxy and has rate limits off:

    LOAD_CONFIG=load.json locust -f bench/locustfile.py --host http://127.0.0.1:8000

`load.json` (what bench/load.py writes): `short_ids`, `api_key`, `webhook_path`, `whop_secret`,
`email`, `password`, `pace` (requests per second of each Traffic user), `creators` and
`creator_pace` (the Creator users and their pace) and `ledger` (where to write, on exit, what each
request was answered, so that the runner can check nothing accepted was lost).

Two kinds of users, both paced (Poisson arrivals at a fixed mean rate), so the offered load does
not depend on the latency and a server that falls behind shows as queueing, not as a quietly
lower rate:
- Traffic: redirects, server-side track calls and signed Whop `payment.succeeded` deliveries,
  80:10:5; with the creators' 5% the whole mix is 80% / 10% / 5% / 5%.
- Creator: a few creators on their dashboard (overview, links, conversions), each logged in once
  through the form. Few on purpose: a log-in costs a quarter of a CPU second (PBKDF2) and holds a
  sync worker meanwhile; one per Traffic user would be a log-in storm no real site sees.
"""

import itertools
import json
import os
import random
import re
import secrets
import sys
import threading
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlencode

from locust import FastHttpUser, events, task

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.webhooks import SAMPLES, sign  # noqa: E402 (after the path fix)

CONFIG = json.loads(Path(os.environ["LOAD_CONFIG"]).read_text()) if os.environ.get("LOAD_CONFIG") else {}
RUN = secrets.token_hex(3)  # ids of this run cannot collide with an earlier run's
USER_NUMBERS = itertools.count(1)
PAYMENT_SAMPLE = json.loads((SAMPLES / "payment.succeeded.json").read_text())

# Names in the statistics (one row per endpoint, not per URL).
REDIRECT = "GET /l/[short_id]"
TRACK = "POST /api/v1/conversions/track"
WEBHOOK = "POST /webhooks/whop/[token]"
LOGIN_FORM, LOGIN = "GET /accounts/login/", "POST /accounts/login/"
PAGES = {"/overview/": "GET /overview/", "/links/": "GET /links/", "/conversions/": "GET /conversions/"}

# Phones dominate link-in-bio traffic; link-preview fetchers hit every shared link too (stored as
# flagged clicks, so they count in the click check like everyone else).
USER_AGENTS = [
    (30, "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Mobile/15E148 Safari/604.1"),
    (20, "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36"),
    (8, "Mozilla/5.0 (iPhone; CPU iPhone OS 17_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 Instagram 357.0.0.25.101"),
    (6, "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36"),
    (14, "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"),
    (8, "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15"),
    (5, "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0"),
    (4, "Twitterbot/1.0"),
    (3, "facebookexternalhit/1.1 (+http://www.facebook.com/externalhit_uatext.php)"),
    (2, "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)"),
]
REFERRERS = ["", "", "https://www.instagram.com/", "https://t.co/x7Lq2", "https://www.youtube.com/", "https://www.tiktok.com/", "https://mail.google.com/"]
LANGUAGES = ["en-US,en;q=0.9", "en-GB,en;q=0.9", "es-ES,es;q=0.9,en;q=0.8", "pt-BR,pt;q=0.9", "de-DE,de;q=0.9,en;q=0.8"]
CID = re.compile(r"[?&]allumi_cid=(c_[A-Za-z0-9]+)")
CSRF_INPUT = re.compile(r'name="csrfmiddlewaretoken" value="([^"]+)"')


class Ledger:
    """What the server answered and how fast, kept in memory and written once on exit."""

    def __init__(self):
        self.lock = threading.Lock()
        self.started = self.stopped = 0.0
        self.requests: dict[str, list] = defaultdict(list)  # [ms, status, failed] each: exact percentiles
        self.clicks: list[str] = []  # click ids of redirects answered 302
        self.redirects_without_cid = 0
        self.track: list[tuple[str, int]] = []  # (external_id, conversion id) answered 2xx
        self.webhooks: list[tuple[str, str]] = []  # (webhook-id, payment id) answered 2xx

    def dump(self, path: str) -> None:
        with self.lock:
            data = {
                "started": self.started, "stopped": self.stopped or time.time(),
                "requests": self.requests,
                "clicks": self.clicks, "redirects_without_cid": self.redirects_without_cid,
                "track": self.track, "webhooks": self.webhooks,
            }
        Path(path).write_text(json.dumps(data))


LEDGER = Ledger()


@events.request.add_listener
def _record(name, response_time, response, exception, **kwargs):
    # Status 0: no answer at all (connection refused or reset, timeout).
    status = getattr(response, "status_code", 0) or 0
    LEDGER.requests[name].append([round(response_time or 0, 2), status, exception is not None])


@events.test_start.add_listener
def _started(environment, **kwargs):
    LEDGER.started = time.time()


@events.test_stop.add_listener
def _stopped(environment, **kwargs):
    LEDGER.stopped = time.time()


@events.quitting.add_listener
def _write_ledger(environment, **kwargs):
    if CONFIG.get("ledger"):
        LEDGER.dump(CONFIG["ledger"])


def poisson_pacing(rate: float):
    """Each user's requests arrive as a Poisson process of `rate` per second, so the sum over
    users is too: independent visitors. (Locust's constant pacing fires users that started in the
    same tick in step, every period: bursts of simultaneous requests that queue at the workers.)
    A user behind schedule catches up with at most a second's worth of arrivals."""

    def wait_time(user) -> float:
        now = time.monotonic()
        user.next_arrival = max(getattr(user, "next_arrival", now), now - 1.0) + user.rng.expovariate(rate)
        return max(0.0, user.next_arrival - now)

    return wait_time


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class AllumiUser(FastHttpUser):
    abstract = True
    network_timeout = connection_timeout = 10.0

    def on_start(self):
        self.user_number, self.number = next(USER_NUMBERS), 0
        self.rng = random.Random()
        # The load balancer in front of Allumi: the peer is a trusted proxy that passes the client
        # address and the scheme on, as in production (secure cookies, CSRF's HTTPS checks).
        self.proxy = {"X-Forwarded-Proto": "https"}

    def _id(self, prefix: str) -> str:
        self.number += 1
        return f"{prefix}_{RUN}u{self.user_number}n{self.number}"

    def _client_headers(self) -> dict:
        return {**self.proxy, "X-Forwarded-For": f"198.18.{self.rng.randrange(256)}.{self.rng.randrange(1, 255)}"}

    def _take_cookies(self) -> dict[str, str]:
        # Allumi's cookies are all Secure in production; the client speaks plain HTTP in the
        # proxy's place, so it would never send them back on its own: keep them here instead.
        cookies = {cookie.name: cookie.value for cookie in self.client.cookiejar}
        self.client.cookiejar.clear()
        return cookies


class Traffic(AllumiUser):
    """Visitors on short links, the creator's server reporting sales, Whop reporting payments."""

    wait_time = poisson_pacing(float(CONFIG.get("pace", 2.0)))

    def on_start(self):
        super().on_start()
        self.visitors: list[str] = []  # allumi_vid values of returning visitors
        self.recent_clicks: list[str] = []

    @task(80)
    def redirect(self):
        agent = self.rng.choices([ua for _, ua in USER_AGENTS], weights=[w for w, _ in USER_AGENTS])[0]
        headers = {**self._client_headers(), "User-Agent": agent, "Accept-Language": self.rng.choice(LANGUAGES)}
        referrer = self.rng.choice(REFERRERS)
        if referrer:
            headers["Referer"] = referrer
        returning = self.visitors and self.rng.random() < 0.3
        if returning:
            headers["Cookie"] = f"allumi_vid={self.rng.choice(self.visitors)}"
        short_id = self.rng.choice(CONFIG["short_ids"])
        with self.client.get(f"/l/{short_id}", name=REDIRECT, headers=headers, allow_redirects=False, catch_response=True) as response:
            if response.status_code != 302:
                response.failure(f"status {response.status_code}")
                return
            match = CID.search(response.headers.get("Location") or "")
            with LEDGER.lock:
                if match:
                    LEDGER.clicks.append(match.group(1))
                else:
                    LEDGER.redirects_without_cid += 1
            if match:
                self.recent_clicks = [*self.recent_clicks[-49:], match.group(1)]
            vid = self._take_cookies().get("allumi_vid")
            if vid and not returning and len(self.visitors) < 20:
                self.visitors.append(vid)

    @task(10)
    def track(self):
        # The creator's server reports a sale or signup: unique order id, the buyer's email, and
        # now and then the click id its checkout kept.
        external_id = self._id("ord")
        body = {"event": self.rng.choice(["purchase", "purchase", "signup"]), "external_id": external_id,
                "email": f"buyer.{external_id}@example.org", "amount": self.rng.choice(["19.00", "49.00", "99.00"]), "currency": "USD"}
        if self.recent_clicks and self.rng.random() < 0.5:
            body["click_id"] = self.rng.choice(self.recent_clicks)
        headers = {**self._client_headers(), "Authorization": f"Bearer {CONFIG['api_key']}", "User-Agent": "creator-backend/2.3"}
        with self.client.post("/api/v1/conversions/track", name=TRACK, json=body, headers=headers, catch_response=True) as response:
            if 200 <= response.status_code < 300:
                try:
                    conversion_id = response.json()["id"]
                except (ValueError, KeyError, TypeError):
                    response.failure("2xx without a conversion id")
                    return
                with LEDGER.lock:
                    LEDGER.track.append((external_id, conversion_id))

    @task(5)
    def webhook(self):
        payload = json.loads(json.dumps(PAYMENT_SAMPLE))
        now = datetime.now(UTC)
        payment_id, webhook_id = self._id("pay"), self._id("msg")
        payload.update(id=self._id("evt"), timestamp=_iso(now))
        data = payload["data"]
        data.update(id=payment_id, paid_at=_iso(now - timedelta(seconds=2)), created_at=_iso(now - timedelta(seconds=15)))
        data["user"] = {**data["user"], "id": self._id("user"), "email": f"member.{payment_id}@example.org"}
        if self.recent_clicks and self.rng.random() < 0.75:
            data["metadata"] = {"allumi_cid": self.rng.choice(self.recent_clicks)}
        else:
            data.pop("metadata", None)
        body = json.dumps(payload, separators=(",", ":")).encode()
        timestamp = int(time.time())
        headers = {
            "Content-Type": "application/json", "User-Agent": "Whop-Webhooks/1.0", **self.proxy,
            "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(CONFIG["whop_secret"], webhook_id, timestamp, body),
        }
        with self.client.post(CONFIG["webhook_path"], name=WEBHOOK, data=body, headers=headers, catch_response=True) as response:
            if 200 <= response.status_code < 300:
                with LEDGER.lock:
                    LEDGER.webhooks.append((webhook_id, payment_id))



class Creator(AllumiUser):
    """A creator on the dashboard, logged in once through the form (with its CSRF token)."""

    fixed_count = int(CONFIG.get("creators", 1))
    wait_time = poisson_pacing(float(CONFIG.get("creator_pace", 1.0)))

    def on_start(self):
        super().on_start()
        self.session_cookies: dict[str, str] = {}
        self._log_in()

    @task
    def dashboard(self):
        if "sessionid" not in self.session_cookies and not self._log_in():
            return
        path = self.rng.choice(list(PAGES))
        with self.client.get(path, name=PAGES[path], headers=self._page_headers(), allow_redirects=False, catch_response=True) as response:
            self.session_cookies.update(self._take_cookies())
            if response.status_code != 200:
                response.failure(f"status {response.status_code}")
                if response.status_code == 302:
                    self.session_cookies.clear()  # logged out: log in again next time

    def _page_headers(self) -> dict:
        headers = {**self.proxy, "User-Agent": USER_AGENTS[4][1]}
        if self.session_cookies:
            headers["Cookie"] = "; ".join(f"{name}={value}" for name, value in self.session_cookies.items())
        return headers

    def _log_in(self) -> bool:
        self.session_cookies.clear()
        with self.client.get("/accounts/login/", name=LOGIN_FORM, headers=self._page_headers(), catch_response=True) as response:
            self.session_cookies.update(self._take_cookies())
            token = CSRF_INPUT.search(response.text or "")
            if response.status_code != 200 or not token or "csrftoken" not in self.session_cookies:
                response.failure(f"status {response.status_code}, no CSRF token or cookie")
                return False
        # Over HTTPS Django checks that the form was posted from its own origin.
        origin = f"https://{self.host.split('://', 1)[-1].rstrip('/')}"
        headers = {**self._page_headers(), "Referer": f"{origin}/accounts/login/", "Origin": origin,
                   "Content-Type": "application/x-www-form-urlencoded"}
        form = {"csrfmiddlewaretoken": token.group(1), "username": CONFIG["email"], "password": CONFIG["password"]}
        with self.client.post("/accounts/login/", name=LOGIN, data=urlencode(form), headers=headers, allow_redirects=False, catch_response=True) as response:
            self.session_cookies.update(self._take_cookies())
            if response.status_code != 302 or "sessionid" not in self.session_cookies:
                response.failure(f"log-in answered {response.status_code} without a session")
                self.session_cookies.clear()
                return False
        return True

