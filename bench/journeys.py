"""Journey simulator with ground truth: how well Allumi attributes conversions, measured end to end.

    .venv/bin/python bench/journeys.py [--base-url URL] [--people 2000] [--seed 7] [--start-server]

It drives a running Allumi only through the public HTTP contract (short links, the REST API, the
track endpoint and, when it exists, the Whop webhook endpoint), knows who really clicked what, and
prints a report: attribution rate, accuracy of the top-credited link under last and first touch,
the ceiling an oracle would reach with the same signals, false credit, never-clickers left
unattributed, bot credit, duplicates and the confidence calibration table, each against its target.
The exit status is 0 whenever the simulation ran (the report says PASS or FAIL), 2 when it could not.

Setting up (`--start-server`, the default without `--base-url`), all on loopback:
  PostgreSQL database `allumi_journeys` (created if missing, migrated, then `manage.py flush`),
  Redis database 3 (FLUSHDB), `manage.py create_creator --json` for the keys, then
  `gunicorn --config gunicorn.conf.py` (3 workers, a free port of 127.0.0.1) and
  `celery -A allumi worker --beat`, with TRUSTED_PROXIES=127.0.0.0/8 (so the simulated client
  addresses in X-Forwarded-For count), RATELIMIT_ENABLE=false and DEBUG=true. Both processes are
  stopped on exit. With `--base-url` the server must already trust this machine as a proxy and have
  rate limits off; pass `--api-key` and `--publishable-key` (and `--whop-webhook-url` /
  `--whop-secret` to test Whop); its earlier data stays and may blur the probabilistic matching.

What is simulated (seeded; the same --seed gives the same people, devices, journeys and decisions):
  * People in households (a home /24 shared by a few households), with one to three devices: a phone
    (a user agent pool where a few popular phones dominate, e.g. the latest iPhone Safari for ~30%,
    and Android Chrome's frozen "Android 10; K" agent), a home computer, a work computer (an office
    network shared by colleagues). Phones browse on home Wi-Fi or on one of five carrier-NAT /24s
    shared by every phone user. Each browser has its own cookie jar (allumi_vid), sometimes cleared.
  * Clicks (0-5 per person over 40 simulated days) on the creator's links; on a phone, links from
    social apps often open in the app's in-app browser: another user agent, another cookie jar, and
    whatever the snippet stored there never reaches the person's later purchase in their real browser.
  * Bots: link-preview fetchers (Twitterbot, facebookexternalhit, Slackbot, ...; iMessage's from the
    person's own address), crawlers and HEAD link checkers, on every link, and two links that only
    bots ever fetch.
  * Conversions, ~35% of clickers, plus people who never clicked (same carrier NAT, same popular
    phones: the trap). Browser conversions use the publishable key with the browser's own user agent,
    language and address; the allumi_vid cookie travels only from browsers that allow third-party
    cookies (Safari, every iOS browser and Firefox block them: about half), the click id only when
    the snippet kept it in first-party storage (not on in-app browsers' later purchases, not with an
    ad blocker, not after Safari's 7-day cap on script-set cookies). Server-side purchases use the
    secret key with the email (and sometimes the click id the creator's server stored). Whop
    payments go to the signed webhook when that endpoint exists (else they are sent server-side and
    the report says so). Some people sign up in the browser and buy later on the server (tied by
    email), some buy on the server first and only later log in from a browser (late evidence).
    About 3% of conversions are sent twice on purpose (same external id / Whop payment id).

Time: the server stamps clicks with its own clock, so the 40 simulated days are replayed in order in
one real-time run of a few minutes: each day's clicks, a wait until the server has stored them (link
stats), then that day's conversions. Everything is therefore "within the attribution window" and
"within a day" for the server: window limits, time-decay weights and the 24-hour network-match rule
are not exercised here; unit tests cover them.

Classes of conversions (from the ground truth; the identity graph is the final one, since Allumi
re-attributes earlier conversions when later evidence ties identities together):
  deterministic       it carries a click id of the person's, a cookie of one of their clicking
                      browsers, or an email / Whop user id tied (by any conversion) to one of those
  probabilistic only  the person clicked before converting, but no deterministic tie reaches it
  never clicked       the person had no human click before converting
Ceiling: the accuracy of an oracle that credits the true link whenever the class's signals reach it:
the clicks the deterministic identity graph reaches, or (probabilistic) the clicks of the person's
own browsers whose user agent, language and /24 match the conversion request's, provided no other
person could send that same signature (a browser with the same agent and language on a network
they use: home, office, their phone's carrier): where look-alikes (a carrier NAT's popular phones,
a household's shared model) share it, the signals point at several people equally and reach none
of them, which is what keeps this ceiling well below 100%. The report also prints the looser ceiling
that counts every own match, shared or not (an oracle that knows who converted).
"""

from __future__ import annotations

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import json
import os
import random
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter, defaultdict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

ROOT = Path(__file__).resolve().parent.parent

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/allumi_journeys"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/3"
CREATOR_EMAIL = "journeys-bench@allumi.invalid"
CREATOR_SITE = "https://creator.example"
DAYS = 40
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

# --- targets ---------------------------------------------------------------------------------

TARGET_DETERMINISTIC_GAP = 1.0  # points below the ceiling, at most
TARGET_PROBABILISTIC_RELATIVE = 75.0  # % of the ceiling, at least
TARGET_FALSE_CREDIT = 2.0  # % of credited weight and revenue, at most
TARGET_NEVER_UNATTRIBUTED = 95.0  # %, at least
TARGET_BUCKET_90 = 90.0
TARGET_BUCKET_50 = 50.0
BUCKETS = [("90-100", 90, 100), ("80-89", 80, 89), ("50-79", 50, 79), ("25-49", 25, 49), ("0-24", 0, 24)]

# --- user agents -----------------------------------------------------------------------------


def _ios_safari(version: str, ios: str) -> str:
    return (
        f"Mozilla/5.0 (iPhone; CPU iPhone OS {ios} like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        f"Version/{version} Mobile/15E148 Safari/604.1"
    )


# (name, weight, user agent, family, os, model for in-app agents)
PHONES = [
    ("iphone-safari-18.1", 30, _ios_safari("18.1", "18_1"), "safari", "ios", "iPhone16,2"),
    ("iphone-safari-17.6", 13, _ios_safari("17.6", "17_6"), "safari", "ios", "iPhone14,5"),
    ("iphone-safari-18.0", 7, _ios_safari("18.0", "18_0"), "safari", "ios", "iPhone15,3"),
    ("iphone-safari-16.6", 4, _ios_safari("16.6", "16_6"), "safari", "ios", "iPhone13,2"),
    (
        "iphone-chrome",
        5,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "CriOS/131.0.6778.73 Mobile/15E148 Safari/604.1",
        "crios",
        "ios",
        "iPhone15,2",
    ),
    (
        "android-chrome-131",
        22,
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Mobile Safari/537.36",
        "chrome",
        "android",
        "SM-S921B",
    ),
    (
        "android-chrome-130",
        6,
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/130.0.0.0 Mobile Safari/537.36",
        "chrome",
        "android",
        "Pixel 8",
    ),
    (
        "samsung-internet",
        7,
        "Mozilla/5.0 (Linux; Android 14; SAMSUNG SM-S921B) AppleWebKit/537.36 (KHTML, like Gecko) "
        "SamsungBrowser/26.0 Chrome/122.0.0.0 Mobile Safari/537.36",
        "samsung",
        "android",
        "SM-S921B",
    ),
    (
        "android-firefox",
        3,
        "Mozilla/5.0 (Android 14; Mobile; rv:132.0) Gecko/132.0 Firefox/132.0",
        "firefox",
        "android",
        "SM-A546B",
    ),
    (
        "pixel-chrome-old",
        3,
        "Mozilla/5.0 (Linux; Android 13; Pixel 7) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/116.0.0.0 Mobile Safari/537.36",
        "chrome",
        "android",
        "Pixel 7",
    ),
]

_WIN_CHROME = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/{v}.0.0.0 Safari/537.36"
)
_MAC = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7)"
DESKTOPS = [
    ("win-chrome-131", 32, _WIN_CHROME.format(v=131), "chrome", "Windows"),
    (
        "mac-chrome",
        18,
        f"{_MAC} AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "chrome",
        "macOS",
    ),
    (
        "mac-safari-18",
        14,
        f"{_MAC} AppleWebKit/605.1.15 (KHTML, like Gecko) Version/18.1 Safari/605.1.15",
        "safari",
        "",
    ),
    ("win-edge", 12, _WIN_CHROME.format(v=131) + " Edg/131.0.0.0", "chrome", "Windows"),
    (
        "win-firefox",
        9,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:132.0) Gecko/20100101 Firefox/132.0",
        "firefox",
        "",
    ),
    (
        "mac-firefox",
        4,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10.15; rv:132.0) Gecko/20100101 Firefox/132.0",
        "firefox",
        "",
    ),
    (
        "linux-chrome",
        4,
        "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36",
        "chrome",
        "Linux",
    ),
    ("win-chrome-130", 5, _WIN_CHROME.format(v=130), "chrome", "Windows"),
    ("mac-safari-17", 2, f"{_MAC} AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.6 Safari/605.1.15", "safari", ""),
]

PREVIEW_BOTS = [
    "Twitterbot/1.0",
    "facebookexternalhit/1.1",
    "Slackbot-LinkExpanding 1.0",
    "Mozilla/5.0 (compatible; Discordbot/2.0)",
    "TelegramBot (like TwitterBot)",
    "WhatsApp/2.23.20.0",
]
IMESSAGE_PREVIEW = (
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_11_1) AppleWebKit/601.2.4 (KHTML, like Gecko) Version/9.0.1 "
    "Safari/601.2.4 facebookexternalhit/1.1 Facebot Twitterbot/1.0"
)
CRAWLERS = [
    "Mozilla/5.0 (compatible; Googlebot/2.1)",
    "Mozilla/5.0 (compatible; bingbot/2.0)",
    "Mozilla/5.0 (compatible; AhrefsBot/7.0)",
]

LANGUAGES = [
    ("en-US", 55),
    ("en-GB", 9),
    ("es-ES", 7),
    ("es-MX", 5),
    ("pt-BR", 7),
    ("de-DE", 5),
    ("fr-FR", 6),
    ("it-IT", 3),
    ("nl-NL", 3),
]

# (utm_source, how many links, share of phone clicks, share of those opening in an in-app browser, app)
SOURCES = [
    ("instagram", 8, 0.92, 0.70, "instagram"),
    ("tiktok", 5, 0.95, 0.80, "tiktok"),
    ("youtube", 5, 0.60, 0.15, "webview"),
    ("newsletter", 4, 0.45, 0.10, "webview"),
    ("x", 3, 0.70, 0.30, "webview"),
    ("facebook", 3, 0.85, 0.60, "facebook"),
]
BOT_ONLY_SOURCES = ["discord", "slack"]  # links shared where only preview fetchers ever open them
AMOUNTS = [
    (Decimal("19.00"), 20),
    (Decimal("29.00"), 25),
    (Decimal("49.00"), 25),
    (Decimal("99.00"), 15),
    (Decimal("199.00"), 10),
    (Decimal("299.00"), 5),
]

# Networks (RFC 2544 benchmarking space, 198.18.0.0/15).
HOME_BLOCKS = [f"198.18.{i}" for i in range(256)] + [f"198.19.{i}" for i in range(140)]
OFFICE_BLOCKS = [f"198.19.{i}" for i in range(140, 200)]
CARRIER_BLOCKS = [("198.19.200", 35), ("198.19.201", 25), ("198.19.202", 20), ("198.19.203", 12), ("198.19.204", 8)]
DATACENTER_BLOCKS = [f"198.19.{i}" for i in range(250, 256)]


def weighted(rng: random.Random, items, weight_index: int = 1):
    return rng.choices(items, weights=[item[weight_index] for item in items], k=1)[0]


def accept_language(tag: str, family: str) -> str:
    base = tag.split("-")[0]
    if family == "firefox":
        return f"{tag},{base};q=0.5" if base == "en" else f"{tag},{base};q=0.8,en-US;q=0.5,en;q=0.3"
    if base == "en" or family in ("safari", "crios", "webview-ios"):
        return f"{tag},{base};q=0.9"
    return f"{tag},{base};q=0.9,en-US;q=0.8,en;q=0.7"


def accept_encoding(family: str) -> str:
    return "gzip, deflate, br" if family in ("safari", "crios", "webview-ios") else "gzip, deflate, br, zstd"


# --- the simulated world -------------------------------------------------------------------


@dataclass(eq=False)
class Link:
    id: int
    short_id: str
    source: str
    passes_click_id: bool
    bot_only: bool
    weight: float


@dataclass(eq=False)
class Browser:
    """One cookie jar: a browser, or an app's in-app browser."""

    key: str
    user_agent: str
    accept_language: str
    accept_encoding: str
    client_hints: tuple[str, str] | None
    blocks_third_party: bool
    itp: bool  # Safari / WebKit: script-set first-party cookies last 7 days
    snippet_blocked: bool
    clear_chance: float
    in_app: bool = False
    jar: str | None = None  # allumi_vid value
    stored_click_id: str | None = None  # what the snippet kept in first-party storage
    stored_day: int = 0
    last_day: int = -1


@dataclass(eq=False)
class Device:
    kind: str  # phone, home, work
    name: str
    main: Browser
    os: str = ""
    model: str = ""
    carrier: str = ""
    in_apps: dict = field(default_factory=dict)
    network_by_day: dict = field(default_factory=dict)


@dataclass(eq=False)
class Person:
    index: int
    email: str
    whop_user: str
    language: str
    household: int
    home_ip: str
    office_ip: str | None
    devices: list
    rng: random.Random
    clicks: list = field(default_factory=list)  # ClickRecord, human, answered 302


@dataclass(eq=False)
class ClickPlan:
    person: Person
    day: int
    link: Link
    device: Device
    browser: Browser


@dataclass(eq=False)
class ClickRecord:
    person: int
    day: int
    order: int  # global order of sending, for ties within a day
    link_id: int
    browser: str
    user_agent: str
    accept_language: str
    network: str
    visitor: str | None
    click_id: str | None


@dataclass(eq=False)
class BotHit:
    day: int
    link: Link
    user_agent: str
    ip: str
    method: str
    kind: str  # preview, imessage, crawler, head


@dataclass(eq=False)
class ConversionPlan:
    person: Person
    day: int
    flow: str
    channel: str  # browser, server, whop
    event: str
    device: Device
    external_id: str | None
    amount: Decimal | None
    with_email: bool
    page_without_snippet: bool  # the converting page did not run the snippet: no stored click id
    server_has_click_id: bool  # the creator's server stored the click id and sends it
    whop_metadata_click_id: bool
    beacon: bool  # sent as text/plain with the key in the body (navigator.sendBeacon)
    duplicate: bool
    email_variant: bool  # the email as typed, in another case


@dataclass(eq=False)
class ConversionRecord:
    plan: ConversionPlan
    person: int
    day: int
    flow: str
    channel: str  # as sent: browser, server, whop, or server (whop fallback)
    event: str
    external_id: str | None
    amount: Decimal | None
    truth: list  # the person's human ClickRecords before converting
    cookie_visitor: str | None = None
    click_id: str | None = None
    email: str | None = None
    whop_user: str | None = None
    signals: tuple | None = None  # (user agent, accept-language, /24) of a browser request
    status: int = 0
    server_id: int | None = None
    duplicate_status: int | None = None
    duplicate_id: int | None = None
    error: str = ""


# --- HTTP ----------------------------------------------------------------------------------


class Http:
    """A small client on http.client: one connection per request (gunicorn's sync workers close
    them anyway), a couple of retries on connection errors."""

    def __init__(self, base_url: str):
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise BenchError(f"--base-url must be an http(s) URL, not {base_url!r}")
        self.scheme, self.host = parts.scheme, parts.hostname
        self.port = parts.port or (443 if parts.scheme == "https" else 80)
        self.prefix = parts.path.rstrip("/")

    def request(
        self, method: str, path: str, headers: dict | None = None, body: bytes | None = None, timeout: float = 30.0
    ):
        last_error = None
        for attempt in range(4):
            cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
            conn = cls(self.host, self.port, timeout=timeout)
            try:
                conn.request(method, self.prefix + path, body=body, headers=headers or {})
                response = conn.getresponse()
                data = response.read()
                return response.status, response.getheaders(), data
            except (OSError, http.client.HTTPException) as error:
                last_error = error
                time.sleep(0.2 * (attempt + 1))
            finally:
                conn.close()
        raise BenchError(f"{method} {path} failed: {last_error!r}")

    def api(self, method: str, path: str, key: str, payload=None, params: dict | None = None):
        headers = {"Authorization": f"Bearer {key}", "Accept": "application/json"}
        body = None
        if payload is not None:
            body = json.dumps(payload).encode()
            headers["Content-Type"] = "application/json"
        if params:
            path = f"{path}?{urlencode(params)}"
        status, _, data = self.request(method, path, headers, body)
        try:
            parsed = json.loads(data) if data else None
        except ValueError:
            parsed = None
        return status, parsed


def header(headers: list, name: str) -> list[str]:
    return [value for key, value in headers if key.lower() == name]


class BenchError(Exception):
    pass


# --- the stack (--start-server) ------------------------------------------------------------


class Children:
    """Processes this script started, each in its own session; stopped in reverse order, bounded."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], env: dict, log: Path) -> subprocess.Popen:
        with open(log, "ab") as out:
            proc = subprocess.Popen(
                cmd,
                cwd=ROOT,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                start_new_session=True,
            )
        self.procs.append(proc)
        return proc

    def stop_all(self) -> None:
        for proc in reversed(self.procs):
            if proc.poll() is None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(timeout=10)
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)  # its own group: whatever it left behind
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=5)
        self.procs = []


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def check_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise BenchError(f"{what} must be on this machine's loopback, not {host!r}")


def ensure_database(database_url: str) -> None:
    import psycopg
    from psycopg import sql

    parts = urlsplit(database_url)
    name = parts.path.lstrip("/")
    params = {
        "host": parts.hostname or "127.0.0.1",
        "port": parts.port or 5432,
        "user": parts.username or "postgres",
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    if parts.password:
        params["password"] = parts.password
    with psycopg.connect(**params, autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"  created database {name}")


def flush_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=3, socket_timeout=10)
    client.flushdb()
    client.close()


def manage(env: dict, *args: str, timeout: float = 300) -> str:
    result = subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode != 0:
        raise BenchError(f"manage.py {' '.join(args)} exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return result.stdout


def start_stack(args, children: Children, workdir: Path) -> tuple[str, dict]:
    check_loopback(args.database_url, "--database-url")
    check_loopback(args.redis_url, "--redis-url")
    env = os.environ.copy()
    for name in ("SENTRY_DSN", "GUNICORN_BIND", "GUNICORN_ACCESS_LOG", "PORT", "DJANGO_SETTINGS_MODULE", "SITE_URL"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="allumi.settings",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        TRUSTED_PROXIES="127.0.0.0/8",
        RATELIMIT_ENABLE="false",
        DEBUG="true",
        ALLOWED_HOSTS="127.0.0.1,localhost",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    started = time.monotonic()
    ensure_database(args.database_url)
    flush_redis(args.redis_url)
    # System checks are CI's business (`manage.py check`), not what this benchmark measures.
    manage(env, "migrate", "--no-input", "--skip-checks")
    manage(env, "flush", "--no-input", "--skip-checks")
    output = manage(env, "create_creator", "--email", CREATOR_EMAIL, "--json", "--skip-checks")
    creds = json.loads(output.strip().splitlines()[-1])
    print(f"  database migrated and flushed, Redis flushed, creator provisioned ({time.monotonic() - started:.1f}s)")

    celery_log = workdir / "celery.log"
    children.start(
        [
            sys.executable,
            "-m",
            "celery",
            "-A",
            "allumi",
            "worker",
            "--beat",
            "--concurrency=2",
            "--loglevel=warning",
            f"--schedule={workdir / 'celerybeat-schedule'}",
            f"--hostname=journeys-{os.getpid()}@%h",
            "--without-gossip",
            "--without-mingle",
            "--without-heartbeat",
        ],
        env,
        celery_log,
    )
    port = free_port()
    gunicorn_log = workdir / "gunicorn.log"
    gunicorn = children.start(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "allumi.wsgi:application"],
        dict(env, GUNICORN_BIND=f"127.0.0.1:{port}", WEB_CONCURRENCY="3", SITE_URL=f"http://127.0.0.1:{port}"),
        gunicorn_log,
    )
    client = Http(f"http://127.0.0.1:{port}")
    deadline = time.monotonic() + 60
    while True:
        if gunicorn.poll() is not None:
            raise BenchError(f"gunicorn exited with {gunicorn.returncode}:\n{tail(gunicorn_log)}")
        with contextlib.suppress(BenchError):
            status, _, _ = client.request("GET", "/healthz", timeout=2)
            if status == 200:
                break
        if time.monotonic() > deadline:
            raise BenchError(f"gunicorn did not answer /healthz within 60s:\n{tail(gunicorn_log)}")
        time.sleep(0.3)
    print(f"  gunicorn (3 workers) on 127.0.0.1:{port}, celery worker --beat; logs in {workdir}")
    return f"http://127.0.0.1:{port}", creds


# --- building the world --------------------------------------------------------------------


class World:
    def __init__(self, args, links: list[Link], nonce: str):
        self.args = args
        self.seed = args.seed
        self.links = links
        self.human_links = [link for link in links if not link.bot_only]
        self.bot_links = [link for link in links if link.bot_only]
        self.nonce = nonce
        self.people: list[Person] = []
        self.click_plans: dict[int, dict[int, list[ClickPlan]]] = defaultdict(lambda: defaultdict(list))
        self.bot_hits: dict[int, list[BotHit]] = defaultdict(list)
        self.conversion_plans: dict[int, dict[int, list[ConversionPlan]]] = defaultdict(lambda: defaultdict(list))
        self.counter = 0
        self.build()

    def _id(self, prefix: str) -> str:
        self.counter += 1
        return f"{prefix}_{self.nonce}{self.counter:05d}"

    def _browser(self, rng, key, user_agent, family, language, hints, blocks, itp, phone) -> Browser:
        return Browser(
            key=key,
            user_agent=user_agent,
            accept_language=accept_language(language, family),
            accept_encoding=accept_encoding(family),
            client_hints=hints,
            blocks_third_party=blocks,
            itp=itp,
            snippet_blocked=rng.random() < (0.04 if phone else 0.12),
            clear_chance=0.04 if itp else 0.02,
        )

    def build(self) -> None:
        rng = random.Random(self.seed)
        n = self.args.people
        # households and their networks
        households = []
        while sum(len(h) for h in households) < n:
            households.append([None] * rng.choices([1, 2, 3, 4], weights=[35, 35, 18, 12])[0])
        blocks = HOME_BLOCKS[: max(1, min(len(HOME_BLOCKS), round(len(households) / 2.5)))]
        used_hosts = defaultdict(set)
        home_ips, home_langs, home_phones = [], [], []
        for _ in households:
            block = rng.choice(blocks)
            host = rng.randrange(2, 254)
            while host in used_hosts[block] and len(used_hosts[block]) < 250:
                host = rng.randrange(2, 254)
            used_hosts[block].add(host)
            home_ips.append(f"{block}.{host}")
            home_langs.append(weighted(rng, LANGUAGES)[0])
            home_phones.append(None)
        offices = [
            f"{block}.{rng.randrange(2, 254)}" for block in OFFICE_BLOCKS[: max(1, min(len(OFFICE_BLOCKS), n // 35))]
        ]

        index = 0
        for h, members in enumerate(households):
            for _ in members:
                if index >= n:
                    break
                prng = random.Random(f"{self.seed}:person:{index}")
                language = home_langs[h] if rng.random() < 0.85 else weighted(rng, LANGUAGES)[0]
                office_ip = rng.choice(offices) if rng.random() < 0.20 else None
                devices = []
                if rng.random() < 0.92:
                    if home_phones[h] is not None and rng.random() < 0.5:
                        phone = home_phones[h]  # families often share a phone model
                    else:
                        phone = weighted(rng, PHONES)
                        home_phones[h] = phone
                    name, _, ua, family, os_name, model = phone
                    hints = ('"Android"', "?1") if family in ("chrome", "samsung") else None
                    blocks3p = family in ("safari", "crios", "firefox")
                    browser = self._browser(
                        rng, f"p{index}-phone", ua, family, language, hints, blocks3p, os_name == "ios", True
                    )
                    devices.append(
                        Device(
                            "phone", name, browser, os=os_name, model=model, carrier=weighted(rng, CARRIER_BLOCKS)[0]
                        )
                    )
                if not devices or rng.random() < 0.55:
                    name, _, ua, family, platform = weighted(rng, DESKTOPS)
                    hints = (f'"{platform}"', "?0") if family == "chrome" else None
                    browser = self._browser(
                        rng,
                        f"p{index}-home",
                        ua,
                        family,
                        language,
                        hints,
                        family in ("safari", "firefox"),
                        family == "safari",
                        False,
                    )
                    devices.append(Device("home", name, browser))
                if office_ip:
                    name, _, ua, family, platform = weighted(rng, DESKTOPS[:2] + DESKTOPS[3:5])  # managed PCs
                    hints = (f'"{platform}"', "?0") if family == "chrome" else None
                    browser = self._browser(
                        rng,
                        f"p{index}-work",
                        ua,
                        family,
                        language,
                        hints,
                        family in ("safari", "firefox"),
                        False,
                        False,
                    )
                    devices.append(Device("work", name, browser))
                person = Person(
                    index=index,
                    email=f"person{index}.{self.nonce}@example.org",
                    whop_user=f"user_{self.nonce}{index:05d}",
                    language=language,
                    household=h,
                    home_ip=home_ips[h],
                    office_ip=office_ip,
                    devices=devices,
                    rng=prng,
                )
                self.people.append(person)
                index += 1

        link_weights = [link.weight for link in self.human_links]
        for person in self.people:
            clicks = self._plan_clicks(rng, person, link_weights)
            self._plan_conversions(rng, person, clicks)
            self._plan_person_bots(rng, person)
        # preview fetchers and crawlers from datacenters, HEAD link checkers
        for day in range(DAYS):
            for link in self.bot_links:
                for _ in range(rng.choice([1, 2, 3])):
                    self.bot_hits[day].append(
                        BotHit(day, link, rng.choice(PREVIEW_BOTS), self._datacenter_ip(rng), "GET", "preview")
                    )
            for _ in range(rng.randint(2, 6)):
                self.bot_hits[day].append(
                    BotHit(
                        day, rng.choice(self.links), rng.choice(CRAWLERS), self._datacenter_ip(rng), "GET", "crawler"
                    )
                )
            for _ in range(rng.randint(1, 4)):
                ua = rng.choice([DESKTOPS[0][2], "Mozilla/5.0 (compatible; LinkChecker/10.2)"])
                self.bot_hits[day].append(
                    BotHit(day, rng.choice(self.links), ua, self._datacenter_ip(rng), "HEAD", "head")
                )

    @staticmethod
    def _datacenter_ip(rng) -> str:
        return f"{rng.choice(DATACENTER_BLOCKS)}.{rng.randrange(2, 254)}"

    def _plan_clicks(self, rng, person: Person, link_weights) -> list[ClickPlan]:
        count = rng.choices([0, 1, 2, 3, 4, 5], weights=[26, 34, 18, 11, 6, 5])[0]
        plans = []
        day = rng.randrange(DAYS)
        previous = None
        for _ in range(count):
            if day >= DAYS:
                break
            link = (
                previous
                if previous is not None and rng.random() < 0.2
                else rng.choices(self.human_links, weights=link_weights)[0]
            )
            previous = link
            _, _, phone_share, in_app_share, app = next(s for s in SOURCES if s[0] == link.source)
            phones = [d for d in person.devices if d.kind == "phone"]
            others = [d for d in person.devices if d.kind != "phone"]
            device = phones[0] if phones and (not others or rng.random() < phone_share) else rng.choice(others)
            browser = device.main
            if device.kind == "phone" and rng.random() < in_app_share:
                browser = self._in_app(rng, person, device, app)
            plan = ClickPlan(person, day, link, device, browser)
            plans.append(plan)
            self.click_plans[day][person.index].append(plan)
            # a link preview when the link was shared in a chat, from a datacenter
            if rng.random() < 0.15:
                self.bot_hits[day].append(
                    BotHit(day, link, rng.choice(PREVIEW_BOTS), self._datacenter_ip(rng), "GET", "preview")
                )
            day += rng.choice([0, 0, 1, 1, 2, 3, 4, 6, 8, 12])
        return plans

    def _in_app(self, rng, person: Person, device: Device, app: str) -> Browser:
        if app in device.in_apps:
            return device.in_apps[app]
        ios = device.os == "ios"
        locale = person.language.replace("-", "_")
        lang = person.language.split("-")[0]
        if ios:
            base = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148"
            tails = {
                "instagram": f" Instagram 360.0.0.30.109 ({device.model}; iOS 18_1; {locale}; {lang}; scale=3.00; 1290x2796; 672451239)",
                "tiktok": f" musical_ly_37.5.0 JsSdk/2.0 NetType/WIFI Channel/App Store ByteLocale/{lang} Region/{locale[-2:]}",
                "facebook": f" [FBAN/FBIOS;FBAV/489.0.0.46.98;FBBV/660016960;FBDV/{device.model};FBMD/iPhone;FBSN/iOS;FBSV/18.1;FBSS/3;FBID/phone;FBLC/{locale};FBOP/5;FBRV/0]",
                "webview": "",
            }
            family = "webview-ios"
        else:
            base = (
                f"Mozilla/5.0 (Linux; Android 14; {device.model} Build/UP1A.231005.007; wv) AppleWebKit/537.36 "
                "(KHTML, like Gecko) Version/4.0 Chrome/131.0.6778.135 Mobile Safari/537.36"
            )
            tails = {
                "instagram": f" Instagram 360.0.0.52.192 Android (34/14; 480dpi; 1080x2340; samsung; {device.model}; e1s; s5e9945; {locale}; 672451243)",
                "tiktok": f" trill_370503 JsSdk/1.0 NetType/MOBILE Channel/googleplay AppName/trill app_version/37.5.3 ByteLocale/{lang}",
                "facebook": " [FB_IAB/FB4A;FBAV/489.0.0.66.81;]",
                "webview": "",
            }
            family = "webview-android"
        browser = Browser(
            key=f"p{person.index}-{app}",
            user_agent=base + tails[app],
            accept_language=accept_language(person.language, family),
            accept_encoding=accept_encoding(family),
            client_hints=None,
            blocks_third_party=True,
            itp=ios,
            snippet_blocked=False,
            clear_chance=0.25,  # webviews often start with empty storage
            in_app=True,
        )
        device.in_apps[app] = browser
        return browser

    def _plan_conversions(self, rng, person: Person, clicks: list[ClickPlan]) -> None:
        def plan(day, flow, channel, event, device, *, external=True, amount=None, with_email=True) -> ConversionPlan:
            prefix = {"purchase": "ord", "signup": "sgn", "login": "lgn"}[event] if channel != "whop" else "pay"
            p = ConversionPlan(
                person=person,
                day=day,
                flow=flow,
                channel=channel,
                event=event,
                device=device,
                external_id=self._id(prefix) if external else None,
                amount=amount,
                with_email=with_email,
                page_without_snippet=rng.random() < 0.10,
                server_has_click_id=rng.random() < 0.35,
                whop_metadata_click_id=rng.random() < 0.6,
                beacon=rng.random() < 0.2,
                duplicate=False,
                email_variant=rng.random() < 0.1,
            )
            p.duplicate = external and rng.random() < 0.03
            self.conversion_plans[day][person.index].append(p)
            return p

        def amount():
            return weighted(rng, AMOUNTS)[0]

        phones = [d for d in person.devices if d.kind == "phone"]
        if clicks:
            if rng.random() >= 0.35:
                return
            anchor = rng.choices(clicks, weights=range(1, len(clicks) + 1))[0]
            delay = rng.choices([0, 1, 2, 3, 5, 7, 10], weights=[40, 12, 10, 8, 12, 10, 8])[0]
            day = min(anchor.day + delay, DAYS - 1)
            device = anchor.device
            others = [d for d in person.devices if d is not device]
            if others and rng.random() < 0.35:
                device = rng.choice(others)  # cross-device: clicked on one, bought on another
            flow = rng.choices(["F1", "F2", "F3", "F4"], weights=[40, 22, 15, 23])[0]
        else:
            if rng.random() >= 0.30:
                return
            day = rng.randrange(DAYS)
            device = phones[0] if phones and rng.random() < 0.85 else rng.choice(person.devices)
            flow = rng.choices(["F1", "F2", "F3", "F4"], weights=[60, 20, 10, 10])[0]

        if flow == "F1":  # a purchase on the creator's page, tracked by the snippet
            plan(day, flow, "browser", "purchase", device, amount=amount(), with_email=rng.random() < 0.45)
        elif flow == "F2":  # signup in the browser (email), purchase later on the creator's server
            plan(day, flow, "browser", "signup", device, external=rng.random() < 0.5)
            plan(
                min(day + rng.choice([0, 0, 1, 2, 3, 5]), DAYS - 1), flow, "server", "purchase", device, amount=amount()
            )
        elif flow == "F3":  # a server-side purchase; sometimes a browser login days later (late evidence)
            plan(day, flow, "server", "purchase", device, amount=amount())
            later = day + rng.randint(1, 6)
            if rng.random() < 0.3 and later < DAYS:
                device = phones[0] if phones and rng.random() < 0.6 else rng.choice(person.devices)
                plan(later, flow, "browser", "login", device, external=False)
        else:  # a Whop payment, half the time after a signup in the browser
            if rng.random() < 0.5:
                plan(day, flow, "browser", "signup", device, external=rng.random() < 0.5)
            plan(day, flow, "whop", "purchase", device, amount=amount(), with_email=rng.random() < 0.75)

    def _plan_person_bots(self, rng, person: Person) -> None:
        # iMessage unfurls a link sent to the person from the person's own phone: a bot on their address
        phones = [d for d in person.devices if d.kind == "phone"]
        if phones and phones[0].os == "ios" and rng.random() < 0.12:
            day = rng.randrange(DAYS)
            ip = person.home_ip if rng.random() < 0.5 else f"{phones[0].carrier}.{rng.randrange(2, 254)}"
            link = rng.choice(self.bot_links if rng.random() < 0.5 else self.human_links)
            self.bot_hits[day].append(BotHit(day, link, IMESSAGE_PREVIEW, ip, "GET", "imessage"))


# --- running the journeys ------------------------------------------------------------------


class Runner:
    def __init__(self, client: Http, creds: dict, world: World, whop: bool, threads: int):
        self.client = client
        self.creds = creds
        self.world = world
        self.whop = whop
        self.threads = threads
        self.lock = threading.Lock()
        self.order = 0
        self.expected = Counter()  # link id -> clicks the server should have stored (humans + bots)
        self.expected_human = Counter()
        self.expected_bot = Counter()
        self.bot_sent = Counter()
        self.conversions: list[ConversionRecord] = []
        self.failures = Counter()
        self.drain_waits: list[float] = []
        self.drain_timeouts = 0

    # networks and jars ---------------------------------------------------------------------

    def _ip(self, person: Person, device: Device, day: int) -> str:
        if device.kind == "work":
            return person.office_ip
        if device.kind == "home":
            return person.home_ip
        mode = device.network_by_day.get(day)
        if mode is None:
            mode = "home" if person.rng.random() < 0.45 else "carrier"
            device.network_by_day[day] = mode
        if mode == "home":
            return person.home_ip
        return f"{device.carrier}.{person.rng.randrange(2, 254)}"  # carrier NAT: any address of the pool

    @staticmethod
    def _network(ip: str) -> str:
        return ip.rsplit(".", 1)[0] + ".0/24"

    def _open(self, person: Person, browser: Browser, day: int) -> None:
        if browser.last_day != day:
            if (
                browser.last_day >= 0
                and person.rng.random() < browser.clear_chance * max(1, day - browser.last_day) ** 0.5
            ):
                browser.jar = None
                browser.stored_click_id = None
            browser.last_day = day

    @staticmethod
    def _browser_headers(browser: Browser, ip: str) -> dict:
        headers = {
            "User-Agent": browser.user_agent,
            "Accept-Language": browser.accept_language,
            "Accept-Encoding": browser.accept_encoding,
            "X-Forwarded-For": ip,
        }
        if browser.client_hints:
            headers["Sec-CH-UA-Platform"], headers["Sec-CH-UA-Mobile"] = browser.client_hints
        return headers

    # clicks ----------------------------------------------------------------------------------

    def person_clicks(self, plans: list[ClickPlan]) -> None:
        for plan in plans:
            person, browser = plan.person, plan.browser
            self._open(person, browser, plan.day)
            ip = self._ip(person, plan.device, plan.day)
            headers = self._browser_headers(browser, ip)
            headers["Accept"] = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"
            if browser.jar:
                headers["Cookie"] = f"allumi_vid={browser.jar}"
            status, response_headers, _ = self.client.request("GET", f"/l/{plan.link.short_id}", headers)
            if status != 302:
                with self.lock:
                    self.failures[f"click answered {status}"] += 1
                continue
            for value in header(response_headers, "set-cookie"):
                match = re.search(r"allumi_vid=([^;]+)", value)
                if match:
                    browser.jar = match.group(1).strip('"')
            location = (header(response_headers, "location") or [""])[0]
            click_id = (parse_qs(urlsplit(location).query).get("allumi_cid") or [None])[0]
            if click_id and not browser.snippet_blocked:
                browser.stored_click_id, browser.stored_day = click_id, plan.day
            with self.lock:
                self.order += 1
                order = self.order
                self.expected[plan.link.id] += 1
                self.expected_human[plan.link.id] += 1
            person.clicks.append(
                ClickRecord(
                    person=person.index,
                    day=plan.day,
                    order=order,
                    link_id=plan.link.id,
                    browser=browser.key,
                    user_agent=browser.user_agent,
                    accept_language=browser.accept_language,
                    network=self._network(ip),
                    visitor=browser.jar.split(":")[0] if browser.jar else None,
                    click_id=click_id,
                )
            )

    def bot_hit(self, hit: BotHit) -> None:
        headers = {"User-Agent": hit.user_agent, "X-Forwarded-For": hit.ip, "Accept": "*/*"}
        status, _, _ = self.client.request(hit.method, f"/l/{hit.link.short_id}", headers)
        with self.lock:
            self.bot_sent[hit.kind] += 1
            if status == 302:
                self.expected[hit.link.id] += 1
                self.expected_bot[hit.link.id] += 1
            else:
                self.failures[f"bot {hit.method} answered {status}"] += 1

    def wait_stored(self, link_ids, timeout: float = 30.0) -> bool:
        """Until the link stats show every click sent so far (the click buffer has been flushed)."""
        started = time.monotonic()
        waiting = set(link_ids)
        while waiting:
            for link_id in sorted(waiting):
                status, stats = self.client.api("GET", f"/api/v1/links/{link_id}/stats", self.creds["api_key"])
                if status == 200 and stats["clicks"] + stats["bot_clicks"] >= self.expected[link_id]:
                    waiting.discard(link_id)
            if not waiting:
                break
            if time.monotonic() - started > timeout:
                self.drain_timeouts += 1
                print(
                    f"  warning: clicks of {len(waiting)} links not all stored after {timeout:.0f}s; going on",
                    flush=True,
                )
                break
            time.sleep(0.25)
        self.drain_waits.append(time.monotonic() - started)
        return not waiting

    # conversions -------------------------------------------------------------------------------

    def person_conversions(self, plans: list[ConversionPlan]) -> None:
        for plan in plans:
            try:
                self.conversion(plan)
            except BenchError as error:
                with self.lock:
                    self.failures[f"conversion error: {error}"[:120]] += 1

    def _click_id_available(self, browser: Browser, day: int) -> str | None:
        if not browser.stored_click_id:
            return None
        if browser.itp and day - browser.stored_day > 7:
            return None  # Safari's cap on script-set cookies
        return browser.stored_click_id

    def conversion(self, plan: ConversionPlan) -> None:
        person = plan.person
        browser = plan.device.main
        channel = plan.channel
        if channel == "whop" and not self.whop:
            channel = "server (whop fallback)"
        record = ConversionRecord(
            plan=plan,
            person=person.index,
            day=plan.day,
            flow=plan.flow,
            channel=channel,
            event=plan.event,
            external_id=plan.external_id,
            amount=plan.amount,
            truth=list(person.clicks),
        )
        email = person.email
        if plan.email_variant:
            email = email.capitalize().replace("@example.org", "@Example.org")
        if channel == "browser":
            self._open(person, browser, plan.day)
            ip = self._ip(person, plan.device, plan.day)
            headers = self._browser_headers(browser, ip)
            headers["Origin"] = CREATOR_SITE
            headers["Referer"] = CREATOR_SITE + "/checkout"
            if browser.jar and not browser.blocks_third_party:
                headers["Cookie"] = f"allumi_vid={browser.jar}"
                record.cookie_visitor = browser.jar.split(":")[0]
            body = {"event": plan.event}
            if plan.external_id:
                body["external_id"] = plan.external_id
            if plan.with_email:
                body["email"] = email
                record.email = person.email
            click_id = (
                None
                if plan.page_without_snippet or browser.snippet_blocked
                else self._click_id_available(browser, plan.day)
            )
            if click_id:
                body["click_id"] = record.click_id = click_id
            if plan.amount is not None:
                body["amount"], body["currency"] = str(plan.amount), "USD"
            if plan.beacon:
                body["key"] = self.creds["publishable_key"]
                headers["Content-Type"] = "text/plain;charset=UTF-8"
            else:
                headers["X-Allumi-Key"] = self.creds["publishable_key"]
                headers["Content-Type"] = "application/json"
            record.signals = (browser.user_agent, browser.accept_language, self._network(ip))
            raw = json.dumps(body).encode()
            send = lambda: self.client.request("POST", "/api/v1/conversions/track", headers, raw)  # noqa: E731
        elif channel.startswith("server"):
            # A Whop payment sent server-side instead carries what the payment would have carried.
            fallback = channel != "server"
            body = {"event": plan.event, "external_id": plan.external_id}
            if plan.with_email or not fallback:
                body["email"] = email
                record.email = person.email
            if plan.amount is not None:
                body["amount"], body["currency"] = str(plan.amount), "USD"
            stored = plan.whop_metadata_click_id if fallback else plan.server_has_click_id
            click_id = self._click_id_available(browser, plan.day) if stored and not browser.snippet_blocked else None
            if click_id:
                body["click_id"] = record.click_id = click_id
            headers = {
                "Authorization": f"Bearer {self.creds['api_key']}",
                "Content-Type": "application/json",
                "Accept": "application/json",
            }
            raw = json.dumps(body).encode()
            send = lambda: self.client.request("POST", "/api/v1/conversions/track", headers, raw)  # noqa: E731
        else:
            click_id = (
                self._click_id_available(browser, plan.day)
                if plan.whop_metadata_click_id and not browser.snippet_blocked
                else None
            )
            record.click_id = click_id
            record.whop_user = person.whop_user
            record.email = person.email if plan.with_email else None
            raw = self._whop_payload(plan, person, email if plan.with_email else None, click_id)
            send = lambda webhook_id=None: self._whop_send(raw, webhook_id)  # noqa: E731

        status, _, data = send()
        record.status = status
        # The track endpoint answers the conversion's id; a Whop delivery is found by its payment id.
        whop = channel == "whop"
        record.server_id = None if whop else self._id_from(data)
        if status >= 300:
            record.error = data[:200].decode(errors="replace")
        if plan.duplicate:
            status2, _, data2 = send()
            record.duplicate_status, record.duplicate_id = status2, None if whop else self._id_from(data2)
        with self.lock:
            self.conversions.append(record)

    @staticmethod
    def _id_from(data: bytes) -> int | None:
        try:
            value = json.loads(data).get("id")
        except (ValueError, AttributeError):
            return None
        return value if isinstance(value, int) else None

    def _whop_payload(self, plan: ConversionPlan, person: Person, email: str | None, click_id: str | None) -> bytes:
        now = datetime.now(UTC)
        iso = lambda t: t.isoformat(timespec="milliseconds").replace("+00:00", "Z")  # noqa: E731
        total = float(plan.amount)
        data = {
            "id": plan.external_id,
            "status": "paid",
            "substatus": "succeeded",
            "currency": "usd",
            "total": total,
            "subtotal": total,
            "usd_total": total,
            "refunded_amount": 0.0,
            "paid_at": iso(now),  # after every click sent so far (the conversion's time)
            "created_at": iso(now - timedelta(seconds=12)),
            "user": {
                "id": person.whop_user,
                "email": email,
                "name": f"Person {person.index}",
                "username": f"person{person.index}",
            },
            "membership": {"id": f"mem_{plan.external_id[4:]}", "status": "active"},
            "product": {"id": "prod_journeys", "title": "Journeys community"},
            "metadata": {"allumi_cid": click_id} if click_id else {},
        }
        envelope = {
            "id": f"evt_{uuid.uuid4().hex[:16]}",
            "api_version": "v1",
            "timestamp": iso(now),
            "type": "payment.succeeded",
            "data": data,
        }
        return json.dumps(envelope).encode()

    def _whop_send(self, body: bytes, webhook_id: str | None = None):
        webhook_id = webhook_id or f"msg_{uuid.uuid4().hex[:24]}"
        headers = whop_headers(self.creds["whop_webhook_secret"], webhook_id, int(time.time()), body)
        return self.client.request("POST", self.creds["whop_webhook_url"], headers, body)

    # the run -----------------------------------------------------------------------------------

    def run(self) -> None:
        world = self.world
        started = time.monotonic()
        with ThreadPoolExecutor(max_workers=self.threads) as pool:
            for day in range(DAYS):
                tasks = [pool.submit(self.person_clicks, plans) for plans in world.click_plans[day].values()]
                tasks += [pool.submit(self.bot_hit, hit) for hit in world.bot_hits[day]]
                for task in tasks:
                    task.result()
                touched = {plan.link.id for plans in world.click_plans[day].values() for plan in plans}
                touched |= {hit.link.id for hit in world.bot_hits[day]}
                if world.conversion_plans[day]:
                    self.wait_stored(touched)
                tasks = [pool.submit(self.person_conversions, plans) for plans in world.conversion_plans[day].values()]
                for task in tasks:
                    task.result()
                if day % 5 == 4 or day == DAYS - 1:
                    humans = sum(self.expected_human.values())
                    print(
                        f"  day {day + 1:2d}/{DAYS}: {humans} human clicks, {sum(self.bot_sent.values())} bot hits, "
                        f"{len(self.conversions)} conversions sent ({time.monotonic() - started:.0f}s)",
                        flush=True,
                    )
        self.wait_stored(set(self.expected), timeout=60)


def whop_headers(secret: str, webhook_id: str, timestamp: int, body: bytes) -> dict:
    message = f"{webhook_id}.{timestamp}.".encode() + body
    signature = base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()
    return {
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": f"v1,{signature}",
        "Content-Type": "application/json",
    }


def whop_endpoint_exists(client: Http, creds: dict) -> tuple[bool, str]:
    url = creds.get("whop_webhook_url")
    if not url or not creds.get("whop_webhook_secret"):
        return False, "no Whop webhook URL and secret given"
    body = b'{"type": "payment.succeeded", "data": {}}'
    headers = whop_headers("not-the-secret", f"msg_{uuid.uuid4().hex[:24]}", int(time.time()), body)
    status, _, _ = client.request("POST", url, headers, body)
    if status == 401:
        return True, "a badly signed delivery answered 401"
    return False, f"a badly signed delivery answered {status}, not 401"


# --- links ---------------------------------------------------------------------------------


def create_links(client: Http, creds: dict, rng: random.Random, nonce: str) -> list[Link]:
    specs = []
    for source, count, *_ in SOURCES:
        for i in range(count):
            specs.append((source, i, False))
    for source in BOT_ONLY_SOURCES:
        specs.append((source, 0, True))
    rng.shuffle(specs)
    no_click_id = {i for i, spec in enumerate(specs) if not spec[2]}
    no_click_id = set(rng.sample(sorted(no_click_id), 2))
    links = []
    rank = 0
    for i, (source, n, bot_only) in enumerate(specs):
        payload = {
            "url": f"{CREATOR_SITE}/offers/{source}-{n}?ref=bio",
            "title": f"{source} {n} ({nonce})",
            "utm_source": source,
            "utm_medium": "social" if source not in ("newsletter",) else "email",
            "utm_campaign": f"journeys-{source}-{n}",
            "pass_click_id": i not in no_click_id,
        }
        status, body = client.api("POST", "/api/v1/links", creds["api_key"], payload)
        if status != 201:
            raise BenchError(f"POST /api/v1/links answered {status}: {body}")
        weight = 0.0 if bot_only else 1.0 / (rank + 1) ** 0.8
        rank += 0 if bot_only else 1
        links.append(
            Link(
                id=body["id"],
                short_id=body["short_id"],
                source=source,
                passes_click_id=payload["pass_click_id"],
                bot_only=bot_only,
                weight=weight,
            )
        )
    return links


# --- collecting Allumi's answers -----------------------------------------------------------


def list_conversions(client: Http, key: str, model: str, params: dict | None = None) -> list[dict]:
    results, cursor = [], None
    while True:
        query = {"model": model, "limit": 500, **(params or {})}
        if cursor:
            query["cursor"] = cursor
        status, body = client.api("GET", "/api/v1/conversions", key, params=query)
        if status != 200:
            raise BenchError(f"GET /api/v1/conversions answered {status}: {body}")
        results += body["results"]
        cursor = body.get("next")
        if not cursor:
            return results


def wait_settled(
    client: Http, key: str, ours: set[int], whop_ids: set[str], timeout: float = 120.0
) -> tuple[float, int, int]:
    """Until none of our conversions is pending, every accepted Whop payment is listed (deliveries
    are processed by a worker), and two listings a few seconds apart agree (re-attributions after
    identity merges have run). Returns (seconds waited, still pending, Whop payments not listed)."""
    started = time.monotonic()
    previous = None
    while True:
        pending_rows = list_conversions(client, key, "last_touch", {"status": "pending"})
        pending = sum(1 for row in pending_rows if row["id"] in ours or not ours)
        rows = list_conversions(client, key, "linear")
        unlisted = len(whop_ids - {row["external_id"] for row in rows})
        if pending == 0 and unlisted == 0:
            snapshot = json.dumps([(r["id"], r["status"], r["confidence"], r["credits"]) for r in rows], sort_keys=True)
            if snapshot == previous:
                return time.monotonic() - started, 0, 0
            previous = snapshot
        if time.monotonic() - started > timeout:
            return time.monotonic() - started, pending, unlisted
        time.sleep(3.0)


# --- ground truth and scoring --------------------------------------------------------------


class UnionFind:
    def __init__(self):
        self.parent: dict = {}

    def find(self, node):
        self.parent.setdefault(node, node)
        root = node
        while self.parent[root] != root:
            root = self.parent[root]
        while self.parent[node] != root:
            self.parent[node], node = root, self.parent[node]
        return root

    def union(self, a, b):
        ra, rb = self.find(a), self.find(b)
        if ra != rb:
            self.parent[rb] = ra


def pct(part: float, whole: float) -> float | None:
    return 100.0 * part / whole if whole else None


def fmt(value: float | None, width: int = 6, digits: int = 1) -> str:
    return f"{value:{width}.{digits}f}" if value is not None else f"{'n/a':>{width}}"


def verdict(ok: bool | None) -> str:
    return "n/a " if ok is None else ("PASS" if ok else "FAIL")


@dataclass
class Scored:
    record: ConversionRecord
    klass: str
    truth_links: set
    true_first: int | None
    true_last: int | None
    ceiling_last: bool
    ceiling_first: bool
    reachable: bool  # probabilistic: a click of theirs with matching signals
    shared: bool = False  # ... whose signature other people's clicks carry too
    loose_last: bool = False  # ceiling_last counting shared signatures as reached
    loose_first: bool = False
    status: str = ""
    confidence: int | None = None
    top_last: int | None = None
    top_first: int | None = None
    credits: dict = field(default_factory=dict)  # model -> [(link_id, weight, revenue)]


def score(runner: Runner, listings: dict[str, list[dict]]) -> tuple[list[Scored], dict]:
    records = [
        r
        for r in runner.conversions
        if r.status in (200, 201, 202, 204) or (r.channel == "whop" and 200 <= r.status < 300)
    ]
    # every human click, by visitor
    clicks_by_visitor = defaultdict(list)
    click_by_id = {}
    for person in runner.world.people:
        for click in person.clicks:
            if click.visitor:
                clicks_by_visitor[click.visitor].append(click)
            if click.click_id:
                click_by_id[click.click_id] = click
    # the deterministic identity graph, as the conversions built it
    graph = UnionFind()
    keys_of = {}
    for record in records:
        keys = []
        if record.cookie_visitor:
            keys.append(("v", record.cookie_visitor))
        if record.click_id and record.click_id in click_by_id and click_by_id[record.click_id].visitor:
            keys.append(("v", click_by_id[record.click_id].visitor))
        if record.email:
            keys.append(("e", record.email.lower()))
        if record.whop_user and record.channel == "whop":
            keys.append(("w", record.whop_user))
        keys_of[id(record)] = keys
        for key in keys:
            graph.find(key)
        for a, b in zip(keys, keys[1:], strict=False):
            graph.union(a, b)
    # who could send each (user agent, language, /24) signature: every browser of every person, on
    # every network its device uses
    senders = defaultdict(set)
    for person in runner.world.people:
        for device in person.devices:
            if device.kind == "work":
                networks = [runner._network(person.office_ip)]
            elif device.kind == "home":
                networks = [runner._network(person.home_ip)]
            else:  # a phone: home Wi-Fi or its carrier's NAT /24
                networks = [runner._network(person.home_ip), f"{device.carrier}.0/24"]
            for browser in (device.main, *device.in_apps.values()):
                for network in networks:
                    senders[(browser.user_agent, browser.accept_language, network)].add(person.index)
    visitors_of_root = defaultdict(set)
    for node in list(graph.parent):
        if node[0] == "v":
            visitors_of_root[graph.find(node)].add(node[1])

    answers = {model: {row["id"]: row for row in rows} for model, rows in listings.items()}
    by_external = {
        model: {row["external_id"]: row for row in rows if row["external_id"]} for model, rows in listings.items()
    }
    scored = []
    for record in records:
        truth = sorted(record.truth, key=lambda c: c.order)
        truth_links = {c.link_id for c in truth}
        true_first = truth[0].link_id if truth else None
        true_last = truth[-1].link_id if truth else None
        roots = {graph.find(key) for key in keys_of[id(record)]}
        reached_visitors = set().union(*(visitors_of_root[root] for root in roots)) if roots else set()

        deterministic = [c for c in truth if c.visitor in reached_visitors]
        reachable = shared = loose_last = loose_first = False
        if not truth:
            klass, ceiling_last, ceiling_first = "never clicked", False, False
        elif deterministic:
            klass = "deterministic"
            oracle = sorted(
                {c for v in reached_visitors for c in clicks_by_visitor.get(v, []) if c.day <= record.day},
                key=lambda c: c.order,
            )
            ceiling_last = bool(oracle) and oracle[-1].link_id == true_last
            ceiling_first = bool(oracle) and oracle[0].link_id == true_first
        else:
            klass = "probabilistic only"
            ceiling_last = ceiling_first = False
            if record.signals:
                ua, al, network = record.signals
                matched = {
                    c.visitor
                    for c in truth
                    if c.user_agent == ua and c.accept_language == al and c.network == network and c.visitor
                }
                if matched:
                    reachable = True
                    oracle = sorted(
                        {c for v in matched for c in clicks_by_visitor.get(v, []) if c.day <= record.day},
                        key=lambda c: c.order,
                    )
                    loose_last = oracle[-1].link_id == true_last
                    loose_first = oracle[0].link_id == true_first
                    shared = bool(senders[(ua, al, network)] - {record.person})
                    ceiling_last, ceiling_first = loose_last and not shared, loose_first and not shared
        if klass == "deterministic":
            loose_last, loose_first = ceiling_last, ceiling_first
        item = Scored(
            record, klass, truth_links, true_first, true_last, ceiling_last, ceiling_first, reachable,
            shared, loose_last, loose_first,
        )
        row_id = record.server_id
        for model, rows in answers.items():
            row = rows.get(row_id) if row_id is not None else None
            if row is None and record.external_id:
                row = by_external[model].get(record.external_id)
            if row is None:
                continue
            if record.server_id is None:
                record.server_id = row["id"]
            item.status = row["status"]
            item.confidence = row["confidence"]
            item.credits[model] = [(c["link_id"], Decimal(c["weight"]), Decimal(c["revenue"])) for c in row["credits"]]
        if item.credits.get("last_touch"):
            item.top_last = item.credits["last_touch"][0][0]
        if item.credits.get("first_touch"):
            item.top_first = item.credits["first_touch"][0][0]
        scored.append(item)

    # duplicates: our external ids that appear more than once in Allumi's listing
    ours_external = {r.external_id for r in runner.conversions if r.external_id}
    counts = Counter(row["external_id"] for row in listings["last_touch"] if row["external_id"] in ours_external)
    extra = {
        "duplicate_rows": sum(n - 1 for n in counts.values() if n > 1),
    }
    return scored, extra


# --- report --------------------------------------------------------------------------------


def class_line(name: str, items: list[Scored]) -> tuple[str, dict]:
    n = len(items)
    attributed = sum(1 for i in items if i.status == "attributed")
    clickers = [i for i in items if i.klass != "never clicked"]
    acc_last = pct(sum(1 for i in clickers if i.top_last is not None and i.top_last == i.true_last), len(clickers))
    acc_first = pct(sum(1 for i in clickers if i.top_first is not None and i.top_first == i.true_first), len(clickers))
    ceil_last = pct(sum(1 for i in clickers if i.ceiling_last), len(clickers))
    ceil_first = pct(sum(1 for i in clickers if i.ceiling_first), len(clickers))
    rel_last = pct(acc_last, ceil_last) if acc_last is not None and ceil_last else None
    rel_first = pct(acc_first, ceil_first) if acc_first is not None and ceil_first else None
    false = false_credit(items, "last_touch")
    line = (
        f"  {name:<20} {n:>5} {fmt(pct(attributed, n))} | {fmt(acc_last)} {fmt(ceil_last)} {fmt(rel_last)} |"
        f" {fmt(acc_first)} {fmt(ceil_first)} {fmt(rel_first)} | {fmt(false[0])} {fmt(false[1])}"
    )
    return line, {
        "n": n,
        "attributed": pct(attributed, n),
        "acc_last": acc_last,
        "acc_first": acc_first,
        "ceil_last": ceil_last,
        "ceil_first": ceil_first,
        "rel_last": rel_last,
        "rel_first": rel_first,
    }


def false_credit(items: list[Scored], model: str) -> tuple[float | None, float | None]:
    weight = wrong_weight = Decimal(0)
    revenue = wrong_revenue = Decimal(0)
    for item in items:
        for link_id, w, r in item.credits.get(model, []):
            weight += w
            revenue += r
            if link_id not in item.truth_links:
                wrong_weight += w
                wrong_revenue += r
    return pct(float(wrong_weight), float(weight)), pct(float(wrong_revenue), float(revenue))


def report(args, runner: Runner, scored: list[Scored], extra: dict, context: dict) -> None:
    world = runner.world
    people = world.people
    devices = [d for p in people for d in p.devices]
    browsers = [d.main for d in devices] + [b for d in devices for b in d.in_apps.values()]
    humans = sum(len(p.clicks) for p in people)
    clickers = sum(1 for p in people if p.clicks)
    records = runner.conversions
    print()
    print("=" * 100)
    print(
        f"ALLUMI JOURNEY BENCHMARK   seed {args.seed}, {len(people)} people, {DAYS} simulated days replayed in one real-time run"
    )
    print("=" * 100)
    print(
        f"world       {len(people)} people in {len({p.household for p in people})} households; devices: "
        f"{sum(d.kind == 'phone' for d in devices)} phones, {sum(d.kind == 'home' for d in devices)} home and "
        f"{sum(d.kind == 'work' for d in devices)} work computers; {sum(b.in_app for b in browsers)} in-app browsers"
    )
    popular = Counter(d.name for d in devices if d.kind == "phone").most_common(1)
    if popular:
        phones = sum(d.kind == "phone" for d in devices)
        print(
            f"            most common phone: {popular[0][0]} ({pct(popular[0][1], phones):.0f}% of phones); 5 carrier-NAT /24s shared by all phones"
        )
    blocked = sum(b.blocks_third_party for b in browsers if not b.in_app)
    print(
        f"            browsers blocking third-party cookies: {pct(blocked, len(browsers) - sum(b.in_app for b in browsers)):.0f}%"
    )
    print(
        f"links       {len(world.links)}: {len(world.human_links)} clicked by people ({sum(not link.passes_click_id for link in world.links)} without click ids), {len(world.bot_links)} fetched only by bots"
    )
    print(
        f"clicks      {humans} human clicks by {clickers} people; bot hits: "
        + ", ".join(f"{k} {v}" for k, v in sorted(runner.bot_sent.items()))
    )
    stats = context["link_stats"]
    stored_h = sum(s["clicks"] for s in stats.values())
    stored_b = sum(s["bot_clicks"] for s in stats.values())
    sent_b = sum(runner.expected_bot.values())
    print(
        f"            Allumi stored {stored_h} human / {stored_b} bot clicks for {humans} / {sent_b} sent"
        f"{'  (MISMATCH: humans flagged as bots or clicks lost)' if (stored_h, stored_b) != (humans, sent_b) else ''}"
    )
    by_channel = Counter(r.channel for r in records)
    print("conversions " + f"{len(records)} sent: " + ", ".join(f"{k} {v}" for k, v in sorted(by_channel.items())))
    print(f"            Whop webhooks: {context['whop_note']}")
    browser_records = [r for r in records if r.channel == "browser"]
    print(
        f"            browser track calls: {len(browser_records)}, with cookie {fmt(pct(sum(bool(r.cookie_visitor) for r in browser_records), len(browser_records)), 0)}%,"
        f" with click id {fmt(pct(sum(bool(r.click_id) for r in browser_records), len(browser_records)), 0)}%,"
        f" with email {fmt(pct(sum(bool(r.email) for r in browser_records), len(browser_records)), 0)}%"
    )
    failures = {k: v for k, v in runner.failures.items()}
    errors = Counter(f"{r.channel} answered {r.status}: {r.error[:80]}" for r in records if r.status >= 300)
    if failures or errors:
        print("problems    " + "; ".join(f"{k} x{v}" for k, v in list(failures.items()) + list(errors.items())))
    print(
        f"timing      clicks-stored waits: {len(runner.drain_waits)}, mean {sum(runner.drain_waits) / max(1, len(runner.drain_waits)):.2f}s"
        f" ({runner.drain_timeouts} timed out); settled {context['settle_seconds']:.0f}s after the last conversion"
        f" ({context['still_pending']} still pending); total {context['total_seconds']:.0f}s"
    )
    lost = extra["lost"]
    if lost:
        kinds = Counter(f"{i.record.channel}/{i.record.event}" for i in lost)
        print(
            f"LOST        {len(lost)} conversions were accepted (2xx) but never listed by GET /api/v1/conversions within"
            f" the wait: " + ", ".join(f"{k} {v}" for k, v in kinds.items()) + "; left out of the tables below"
        )

    print()
    print("ACCURACY (top-credited link vs the true touch; % of conversions in the class; unattributed = wrong)")
    print(
        f"  {'class':<20} {'n':>5} {'attr%':>6} | {'last':>6} {'ceil':>6} {'/ceil':>6} | {'first':>6} {'ceil':>6} {'/ceil':>6} | false credit (last touch)"
    )
    print(
        f"  {'':<20} {'':>5} {'':>6} | {'':>6} {'':>6} {'':>6} | {'':>6} {'':>6} {'':>6} | {'weight%':>6} {'rev%':>6}"
    )
    classes = ["deterministic", "probabilistic only", "never clicked"]
    summary = {}
    line, summary["overall"] = class_line("overall", scored)
    print(line)
    for klass in classes:
        items = [i for i in scored if i.klass == klass]
        line, summary[klass] = class_line(klass, items)
        print(line)
    prob = [i for i in scored if i.klass == "probabilistic only"]
    reachable = [i for i in prob if i.reachable]
    line, _ = class_line("  signals match", reachable)
    print(line)
    line, _ = class_line("    theirs alone", [i for i in reachable if not i.shared])
    print(line)
    line, _ = class_line("    look-alikes too", [i for i in reachable if i.shared])
    print(line)
    line, _ = class_line("  no matching signal", [i for i in prob if not i.reachable])
    print(line)
    print(
        '  ("signals match": a browser request whose user agent, language and /24 match a click of the person\'s own;'
        ' "theirs alone": no one else could send that signature, the only matches the ceiling counts)'
    )

    print()
    print("BY CHANNEL AND EVENT (last touch)")
    for key in sorted({(i.record.channel, i.record.event) for i in scored}):
        items = [i for i in scored if (i.record.channel, i.record.event) == key]
        line, _ = class_line(f"{key[0][:12]}/{key[1]}", items)
        print(line)

    print()
    print("FALSE CREDIT (credit on links the person never clicked, % of all credited weight / revenue)")
    false_by_model = {}
    for model in ("last_touch", "first_touch", "linear"):
        false_by_model[model] = false_credit(scored, model)
        w, r = false_by_model[model]
        parts = []
        for klass in classes:
            share = pct(
                float(
                    sum(
                        c[1]
                        for i in scored
                        if i.klass == klass
                        for c in i.credits.get(model, [])
                        if c[0] not in i.truth_links
                    )
                ),
                float(sum(c[1] for i in scored for c in i.credits.get(model, []))),
            )
            parts.append(f"{klass} {fmt(share, 4)}")
        print(f"  {model:<12} weight {fmt(w)}%  revenue {fmt(r)}%   of which: " + ", ".join(parts))

    never = [i for i in scored if i.klass == "never clicked"]
    never_unattributed = pct(sum(1 for i in never if i.status == "unattributed"), len(never))
    bot_link_ids = {link.id for link in world.bot_links}
    bot_weight = sum(
        w for i in scored for model in i.credits for link_id, w, _ in i.credits[model] if link_id in bot_link_ids
    )
    bot_revenue = sum(
        r for i in scored for model in i.credits for link_id, _, r in i.credits[model] if link_id in bot_link_ids
    )
    dup_sent = [r for r in records if r.duplicate_status is not None]
    dup_bad_answer = [
        r for r in dup_sent if r.channel != "whop" and (r.duplicate_status != 200 or r.duplicate_id != r.server_id)
    ]
    dup_whop_bad = [r for r in dup_sent if r.channel == "whop" and not (200 <= (r.duplicate_status or 0) < 300)]
    print()
    print(f"NEVER-CLICKERS    {len(never)} conversions, unattributed {fmt(never_unattributed)}%")
    print(f"BOT-ONLY LINKS    credit under every model: weight {bot_weight}, revenue {bot_revenue}")
    print(
        f"DUPLICATES        {len(dup_sent)} conversions sent twice on purpose; extra conversions stored: {extra['duplicate_rows']};"
        f" track answers not '200 + first id': {len(dup_bad_answer)}; Whop redeliveries not 2xx: {len(dup_whop_bad)}"
    )

    print()
    print("CALIBRATION (last touch; correct = the top link is the person's true last touch)")
    print(f"  {'confidence':<12} {'n':>5} {'correct':>8} {'share%':>7}   by class (n)")
    bucket_share = {}
    for label, low, high in BUCKETS:
        items = [
            i for i in scored if i.status == "attributed" and i.confidence is not None and low <= i.confidence <= high
        ]
        correct = sum(
            1 for i in items if i.top_last is not None and i.top_last == i.true_last and i.top_last in i.truth_links
        )
        bucket_share[label] = pct(correct, len(items))
        if label == "0-24" and not items:
            continue
        mix = Counter(i.klass for i in items)
        print(
            f"  {label:<12} {len(items):>5} {correct:>8} {fmt(bucket_share[label], 7)}   "
            + ", ".join(f"{k} {v}" for k, v in mix.most_common())
        )

    det, prb = summary["deterministic"], summary["probabilistic only"]
    prob_items = [i for i in scored if i.klass == "probabilistic only"]
    loose_ceil = pct(sum(1 for i in prob_items if i.loose_last), len(prob_items))
    targets = []

    def target(label: str, value: str, ok: bool | None):
        targets.append((label, value, ok))

    gap_last = det["ceil_last"] - det["acc_last"] if det["acc_last"] is not None else None
    gap_first = det["ceil_first"] - det["acc_first"] if det["acc_first"] is not None else None
    target(
        f"deterministic, last touch, within {TARGET_DETERMINISTIC_GAP:.0f} point of ceiling",
        f"{fmt(det['acc_last'], 0)}% vs {fmt(det['ceil_last'], 0)}%",
        None if gap_last is None else gap_last <= TARGET_DETERMINISTIC_GAP,
    )
    target(
        f"deterministic, first touch, within {TARGET_DETERMINISTIC_GAP:.0f} point of ceiling",
        f"{fmt(det['acc_first'], 0)}% vs {fmt(det['ceil_first'], 0)}%",
        None if gap_first is None else gap_first <= TARGET_DETERMINISTIC_GAP,
    )
    # Only right answers the signals could reach count against the ceiling: a right guess among
    # look-alikes is luck, shown beside it but not counted.
    reached = [i for i in prob_items if i.ceiling_last]
    right_reached = sum(1 for i in reached if i.top_last == i.true_last)
    right_lucky = sum(1 for i in prob_items if not i.ceiling_last and i.top_last is not None and i.top_last == i.true_last)
    rel_reached = pct(right_reached, len(reached))
    target(
        f"probabilistic, last touch, >= {TARGET_PROBABILISTIC_RELATIVE:.0f}% of ceiling",
        f"{fmt(rel_reached, 0)}% ({right_reached} right of the {len(reached)} the ceiling reaches; {right_lucky} more"
        f" right among look-alikes, not counted; {fmt(pct(prb['acc_last'], loose_ceil), 0)}% of the"
        f" {fmt(loose_ceil, 0)}% ceiling that counts look-alike matches)",
        None if rel_reached is None else rel_reached >= TARGET_PROBABILISTIC_RELATIVE,
    )
    worst_w = max((v[0] or 0) for v in false_by_model.values())
    worst_r = max((v[1] or 0) for v in false_by_model.values())
    target(
        f"false credit <= {TARGET_FALSE_CREDIT:.0f}% (weight and revenue, worst model)",
        f"{worst_w:.1f}% / {worst_r:.1f}%",
        worst_w <= TARGET_FALSE_CREDIT and worst_r <= TARGET_FALSE_CREDIT,
    )
    target(
        f"never-clickers unattributed >= {TARGET_NEVER_UNATTRIBUTED:.0f}%",
        f"{fmt(never_unattributed, 0)}%",
        None if never_unattributed is None else never_unattributed >= TARGET_NEVER_UNATTRIBUTED,
    )
    target("every accepted conversion is listed (integrity)", f"{len(extra['lost'])} lost", not extra["lost"])
    target("zero credit to bot-only links", f"{bot_weight} / {bot_revenue}", bot_weight == 0 and bot_revenue == 0)
    target(
        "zero duplicate conversions",
        f"{extra['duplicate_rows']} extra, {len(dup_bad_answer) + len(dup_whop_bad)} bad answers",
        extra["duplicate_rows"] == 0 and not dup_bad_answer and not dup_whop_bad,
    )
    target(
        f"confidence 90-100 >= {TARGET_BUCKET_90:.0f}% correct",
        f"{fmt(bucket_share['90-100'], 0)}%",
        None if bucket_share["90-100"] is None else bucket_share["90-100"] >= TARGET_BUCKET_90,
    )
    target(
        f"confidence 50-79 >= {TARGET_BUCKET_50:.0f}% correct",
        f"{fmt(bucket_share['50-79'], 0)}%",
        None if bucket_share["50-79"] is None else bucket_share["50-79"] >= TARGET_BUCKET_50,
    )
    print()
    print("TARGETS")
    for label, value, ok in targets:
        print(f"  {verdict(ok)}  {label:<62} {value}")
    passed = sum(1 for _, _, ok in targets if ok)
    print(f"  {passed}/{len(targets)} targets met")
    print()
    print("Not simulated: attribution windows, time-decay weights and the 24-hour network rule (all clicks")
    print("and conversions are minutes apart on the server's clock; unit tests cover those).")
    print(f"Per-conversion details (JSON): {context['dump']}")


def dump(path: Path, scored: list[Scored], world: World) -> None:
    short = {link.id: link.short_id for link in world.links}
    rows = []
    for item in scored:
        r = item.record
        rows.append(
            {
                "id": r.server_id,
                "person": r.person,
                "day": r.day,
                "flow": r.flow,
                "channel": r.channel,
                "event": r.event,
                "external_id": r.external_id,
                "class": item.klass,
                "reachable": item.reachable,
                "shared": item.shared,
                "sent": {
                    "cookie_visitor": r.cookie_visitor,
                    "click_id": r.click_id,
                    "email": r.email,
                    "whop_user": r.whop_user,
                    "signals": r.signals,
                },
                "truth": [
                    {
                        "link": short[c.link_id],
                        "day": c.day,
                        "browser": c.browser,
                        "network": c.network,
                        "visitor": c.visitor,
                        "click_id": c.click_id,
                    }
                    for c in sorted(r.truth, key=lambda c: c.order)
                ],
                "true_first": short.get(item.true_first),
                "true_last": short.get(item.true_last),
                "ceiling_last": item.ceiling_last,
                "ceiling_first": item.ceiling_first,
                "status": item.status,
                "confidence": item.confidence,
                "last_touch": [short.get(c[0], c[0]) for c in item.credits.get("last_touch", [])],
                "first_touch": [short.get(c[0], c[0]) for c in item.credits.get("first_touch", [])],
                "correct_last": item.top_last is not None and item.top_last == item.true_last,
            }
        )
    path.write_text(json.dumps(rows, indent=1))


# --- main ----------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--base-url", help="a running Allumi (otherwise one is started: --start-server)")
    parser.add_argument(
        "--start-server",
        action="store_true",
        help="set up PostgreSQL, Redis, gunicorn and celery here (default without --base-url)",
    )
    parser.add_argument("--people", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--threads", type=int, default=4, help="concurrent simulated people (default 4)")
    parser.add_argument(
        "--api-key", default=os.environ.get("ALLUMI_API_KEY", ""), help="with --base-url: the creator's secret key"
    )
    parser.add_argument(
        "--publishable-key",
        default=os.environ.get("ALLUMI_PUBLISHABLE_KEY", ""),
        help="with --base-url: the publishable key",
    )
    parser.add_argument("--whop-webhook-url", default="", help="with --base-url: /webhooks/whop/<token>")
    parser.add_argument("--whop-secret", default="", help="with --base-url: that connection's signing secret")
    parser.add_argument("--database-url", default=DEFAULT_DATABASE_URL)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL)
    parser.add_argument(
        "--dump", default="", help="where to write per-conversion details as JSON (default: a temporary file)"
    )
    args = parser.parse_args(argv)
    if args.base_url and args.start_server:
        parser.error("--base-url and --start-server exclude each other")
    if args.people < 1:
        parser.error("--people must be positive")
    start_server = args.start_server or not args.base_url

    children = Children()
    signal.signal(signal.SIGTERM, _on_sigterm)
    workdir = Path(tempfile.mkdtemp(prefix="allumi-journeys-"))
    try:
        return run(args, start_server, children, workdir)
    except BenchError as error:
        print(f"\njourney benchmark could not run: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping child processes", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        children.stop_all()


def run(args, start_server: bool, children: Children, workdir: Path) -> int:
    started = time.monotonic()
    print("journeys: setting up")
    if start_server:
        base_url, creds = start_stack(args, children, workdir)
        nonce = "j"
    else:
        base_url = args.base_url
        if not args.api_key or not args.publishable_key:
            raise BenchError("with --base-url, pass --api-key and --publishable-key")
        creds = {
            "api_key": args.api_key,
            "publishable_key": args.publishable_key,
            "whop_webhook_url": args.whop_webhook_url,
            "whop_webhook_secret": args.whop_secret,
        }
        nonce = uuid.uuid4().hex[:6]  # this run's ids must not collide with earlier runs' data
    client = Http(base_url)
    whop, whop_note = whop_endpoint_exists(client, creds)
    whop_note = (
        ("used (" + whop_note + ")")
        if whop
        else ("SKIPPED, sent server-side with the secret key instead: " + whop_note)
    )

    rng = random.Random(args.seed)
    links = create_links(client, creds, rng, nonce)
    world = World(args, links, nonce)
    runner = Runner(client, creds, world, whop, args.threads)
    # one HEAD on a bot-only link: once the stats show it, the click flusher is running
    first = world.bot_links[0]
    status, _, _ = client.request(
        "HEAD",
        f"/l/{first.short_id}",
        {"User-Agent": "Mozilla/5.0 (compatible; LinkChecker/10.2)", "X-Forwarded-For": "198.19.250.9"},
    )
    if status == 302:
        runner.expected[first.id] += 1
        runner.expected_bot[first.id] += 1
        runner.bot_sent["head"] += 1
    if not runner.wait_stored({first.id}, timeout=60):
        raise BenchError("clicks are not being stored (is a celery worker with beat running for this server?)")
    print(
        f"  {len(links)} links; {len(world.people)} people; {sum(len(v) for d in world.click_plans.values() for v in d.values())} clicks and "
        f"{sum(len(v) for d in world.conversion_plans.values() for v in d.values())} conversions planned; Whop: {'yes' if whop else 'no'}"
    )
    print("journeys: replaying 40 days")
    runner.run()
    ours = {r.server_id for r in runner.conversions if r.server_id is not None}
    print("journeys: waiting for attribution to settle")
    accepted_whop = {r.external_id for r in runner.conversions if r.channel == "whop" and 200 <= r.status < 300}
    settle_seconds, still_pending, whop_unlisted = wait_settled(
        client, creds["api_key"], ours if not start_server else set(), accepted_whop
    )
    listings = {
        model: list_conversions(client, creds["api_key"], model) for model in ("last_touch", "first_touch", "linear")
    }
    if not start_server:
        whop_ids = {r.external_id for r in runner.conversions if r.channel == "whop"}
        listings = {
            m: [
                row
                for row in rows
                if row["id"] in ours or row["external_id"] in whop_ids or f"_{nonce}" in (row["external_id"] or "")
            ]
            for m, rows in listings.items()
        }
    link_stats = {}
    for link in world.links:
        status, stats = client.api("GET", f"/api/v1/links/{link.id}/stats", creds["api_key"])
        if status == 200:
            link_stats[link.id] = stats
    scored, extra = score(runner, listings)
    extra["lost"] = [item for item in scored if not item.status]
    scored = [item for item in scored if item.status]
    dump_path = Path(args.dump) if args.dump else workdir / "conversions.json"
    dump(dump_path, scored + extra["lost"], world)
    context = {
        "whop_note": whop_note,
        "link_stats": link_stats,
        "settle_seconds": settle_seconds,
        "still_pending": still_pending,
        "whop_unlisted": whop_unlisted,
        "total_seconds": time.monotonic() - started,
        "dump": dump_path,
    }
    report(args, runner, scored, extra, context)
    return 0


if __name__ == "__main__":
    sys.exit(main())
