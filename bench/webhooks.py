"""Load test of the Whop webhook endpoint, `POST /webhooks/whop/<token>`, end to end.

    .venv/bin/python bench/webhooks.py [--duration 15] [--connections 16]

What it does, all on loopback:

1. Production settings (DEBUG=false, a generated SECRET_KEY, no SSL redirect, no rate limits) on
   PostgreSQL (database created if missing, then migrated) and Redis (its database flushed first).
2. The bench creator deleted with everything it owns and provisioned again with
   `manage.py create_creator --whop-secret <a new secret> --json` (the secret is stored encrypted
   with SECRET_KEY, which is new every run).
3. A Celery worker (`celery -A allumi worker --beat`, as `make run` starts it) and gunicorn with
   `--config gunicorn.conf.py` on a free port of 127.0.0.1 serving `bench.settings`.
4. A check by hand (a genuine delivery answers 200 "received", the same again 200 "duplicate", a
   bad signature 401), a short wrk warm-up (its events are processed before the measured run).
5. Right before the measured run, N distinct `payment.succeeded` deliveries are built from the
   sample in ../shared/whop/ (distinct webhook-ids, event ids and payment ids, current times) and
   signed as Whop signs them (Standard Webhooks, HMAC-SHA256 keyed by the secret's UTF-8 bytes);
   about `--duplicates` of the requests repeat an earlier delivery of the same wrk thread (a
   retry: same webhook-id, same body). Each wrk thread reads its own file of prepared requests
   and sends them in order; it counts what it wrote, so the deliveries sent are known exactly
   (those answered plus the few in flight when wrk stopped, which the server still stores).
6. wrk for `--duration` seconds; then every stored event must reach `processed` (polled for up to
   `--drain-timeout` seconds) and the database must hold exactly one event per distinct
   webhook-id sent and one conversion per distinct payment id sent.
   During the run pg_stat_activity of the bench database is sampled every 20 ms: what its
   sessions wait on (row locks, the WAL flush of a commit, the application holding a transaction).
7. When the p99 target is missed (or with `--profile always`), the view is profiled in this
   process with django.test.Client and cProfile (wall and CPU timers): where one request's time
   goes without queueing, next to the loopback round trip to PostgreSQL and Redis at that moment.

wrk keeps `--connections` requests in flight (a closed loop), so the median latency is about
connections / (requests/s): the p99 target needs the throughput to match the concurrency. That is
the burst figure (how fast deliveries can be taken at all, with the worker falling behind). With
`--rate R` this script sends instead, open loop: deliveries at random (exponential) intervals, R
per second on average, each on a new connection whether or not earlier ones were answered, as
independent senders do. That is the latency of webhooks as they come, at a rate the worker keeps
up with (the queue when it stops says so).

Exit status: 0 when every check passed, 1 when a correctness check failed, 2 when the benchmark
could not run; with `--strict` also 3 when only the latency target was missed.
"""

import argparse
import base64
import contextlib
import cProfile
import hashlib
import hmac
import http.client
import io
import json
import math
import os
import pstats
import random
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import string
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "whop"  # ../shared/whop/ from the project root
# Run as `python bench/webhooks.py`: import from the project root, not from bench/.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

BENCH_EMAIL = "bench-webhooks@allumi.invalid"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/allumi_bench_hooks"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/10"
LOOPBACK = {"127.0.0.1", "localhost", "::1"}
USER_AGENT = "allumi-bench-webhooks/1.0"
TOLERANCE_SECONDS = 300  # Standard Webhooks: a timestamp older (or newer) than this is refused
MAX_DURATION = 240  # every delivery is signed before the run starts and must still be fresh at its end

TARGET_P99_MS = 50.0

# Each thread sends the requests of its own file in order (wrapping around if it runs out, which
# the report flags). The file has one delivery a line: webhook-id, timestamp, signature, body,
# separated by tabs (the body is compact JSON: no tab, no newline).
LUA_SCRIPT = r"""
local threads = {}

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  local prefix, path = args[1], args[2]
  local name = prefix .. thread_no .. ".tsv"
  local file = assert(io.open(name, "rb"))
  reqs = {}
  for line in file:lines() do
    local id, ts, sig, body = line:match("^([^\t]+)\t([^\t]+)\t([^\t]+)\t(.+)$")
    if id then
      reqs[#reqs + 1] = wrk.format("POST", path, {
        ["Host"] = wrk.headers["Host"],
        ["Content-Type"] = "application/json",
        ["User-Agent"] = "%(user_agent)s",
        ["webhook-id"] = id,
        ["webhook-timestamp"] = ts,
        ["webhook-signature"] = sig,
      }, body)
    end
  end
  file:close()
  count = #reqs
  assert(count > 0, "no requests in " .. name)
  index, sent, wraps = 0, 0, 0
  s200, s2xx, s3xx, s4xx, s5xx, received, duplicate = 0, 0, 0, 0, 0, 0, 0
  -- wrk calls request() once on its first thread before any connection, to check the script:
  -- that request is never sent, so it must not use up a delivery.
  checked = thread_no ~= 1
end

function request()
  if not checked then
    checked = true
    return reqs[1]
  end
  index = index + 1
  if index > count then index, wraps = 1, wraps + 1 end
  sent = sent + 1
  return reqs[index]
end

function response(status, headers, body)
  if status == 200 then
    s200 = s200 + 1
    if body:find('"received"', 1, true) then received = received + 1
    elseif body:find('"duplicate"', 1, true) then duplicate = duplicate + 1 end
  elseif status < 300 then s2xx = s2xx + 1
  elseif status < 400 then s3xx = s3xx + 1
  elseif status < 500 then s4xx = s4xx + 1
  else s5xx = s5xx + 1 end
end

function done(summary, latency, requests)
  local names = {"s200", "s2xx", "s3xx", "s4xx", "s5xx", "received", "duplicate"}
  local total = {}
  for _, name in ipairs(names) do total[name] = 0 end
  for i, thread in ipairs(threads) do
    io.write(string.format("BENCH-THREAD no=%%d sent=%%d wraps=%%d count=%%d\n",
      i, thread:get("sent") or 0, thread:get("wraps") or 0, thread:get("count") or 0))
    for _, name in ipairs(names) do total[name] = total[name] + (thread:get(name) or 0) end
  end
  local parts = {}
  for _, name in ipairs(names) do parts[#parts + 1] = name .. "=" .. total[name] end
  io.write("BENCH " .. table.concat(parts, " ") .. "\n")
end
"""


class BenchError(Exception):
    pass


# --- child processes ------------------------------------------------------------------------


class Children:
    """The processes this script started, each in its own session (so Ctrl-C in the terminal
    reaches only this script, which then stops them in order, within a bounded time)."""

    def __init__(self):
        self._procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], *, env: dict, log_path: Path | None = None) -> subprocess.Popen:
        stdout = subprocess.PIPE if log_path is None else open(log_path, "ab")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if stdout is not subprocess.PIPE:
            stdout.close()
        self._procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, *, sig=signal.SIGTERM, grace: float = 10.0) -> None:
        """`sig` to the process, SIGKILL to its process group after `grace` seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # anything left in its group
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        self.forget(proc)

    def forget(self, proc: subprocess.Popen) -> None:
        self._procs = [p for p in self._procs if p is not proc]

    def stop_all(self) -> None:
        for proc in reversed(list(self._procs)):
            self.stop(proc, grace=8.0)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


def wait_for_line(proc: subprocess.Popen, log_path: Path, pattern: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}:\n{tail(log_path)}")
        if re.search(pattern, log_path.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise BenchError(f"{what} was not ready within {timeout:.0f}s:\n{tail(log_path)}")


# --- environment ----------------------------------------------------------------------------


def check_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise BenchError(f"{what} must point at this machine's loopback, not {host!r}")


def bench_environment(args) -> dict:
    env = os.environ.copy()
    for name in ("GUNICORN_ACCESS_LOG", "GUNICORN_BIND", "SENTRY_DSN", "TRUSTED_PROXIES", "WHOP_WEBHOOK_SECRET"):
        env.pop(name, None)
    env.update(
        DJANGO_SETTINGS_MODULE="bench.settings",
        DEBUG="false",
        SECRET_KEY=secrets.token_urlsafe(48),  # 64 characters, new every run
        ALLOWED_HOSTS="127.0.0.1,localhost",
        SECURE_SSL_REDIRECT="false",
        RATELIMIT_ENABLE="false",
        DATABASE_URL=args.database_url,
        REDIS_URL=args.redis_url,
        SITE_URL="http://127.0.0.1",
        LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
        PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")])),
    )
    return env


def ensure_database(database_url: str) -> None:
    import dj_database_url
    import psycopg
    from psycopg import sql

    config = dj_database_url.parse(database_url)
    name = config["NAME"]
    params = {
        "host": config.get("HOST") or "127.0.0.1",
        "port": config.get("PORT") or 5432,
        "user": config.get("USER") or "postgres",
        "dbname": "postgres",
        "connect_timeout": 5,
    }
    if config.get("PASSWORD"):
        params["password"] = config["PASSWORD"]
    with psycopg.connect(**params, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
            print(f"created database {name}")


def redis_client(redis_url: str):
    import redis

    return redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def provision_creator(env: dict, secret: str) -> dict:
    """The bench creator, new: the old one goes with its events, conversions and everything else."""
    from django.db import connection

    from allumi.accounts.models import Creator

    old = Creator.objects.filter(email__iexact=BENCH_EMAIL)
    if old.exists():
        started = time.monotonic()
        deleted, _ = old.delete()
        print(f"deleted the previous bench creator and {deleted - 1} rows it owned in {time.monotonic() - started:.1f}s")
    connection.close()
    proc = subprocess.run(
        [sys.executable, "manage.py", "create_creator", "--email", BENCH_EMAIL, "--whop-secret", secret, "--json"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=120, check=False,
    )
    if proc.returncode != 0:
        raise BenchError(f"create_creator exited with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}")
    try:
        result = json.loads(proc.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise BenchError(f"create_creator printed no JSON:\n{proc.stdout}\n{proc.stderr}") from None
    if result.get("whop_webhook_secret") != secret or not str(result.get("whop_webhook_url", "")).startswith("/webhooks/whop/"):
        raise BenchError(f"create_creator answered {result}")
    return result


# --- deliveries -----------------------------------------------------------------------------

_ALPHABET = string.ascii_letters + string.digits
_PRODUCTS = [
    ("prod_6Tq2Wm9Ly", "Growth Lab Community", "plan_3Vb7Nc1Xk", 49.0, "usd", "subscription_create"),
    ("prod_6Tq2Wm9Ly", "Growth Lab Community", "plan_3Vb7Nc1Xk", 49.0, "usd", "subscription_cycle"),
    ("prod_2Hc8Zr5Pn", "Growth Lab Yearly", "plan_9Qm2Ts6Hb", 129.0, "eur", "one_time"),
    ("prod_8Mv3Kd1Qs", "Cold Email Course", "plan_5Xw1Lb8Rt", 19.0, "usd", "one_time"),
    ("prod_4Jt7Gy2Vc", "1:1 Coaching", "plan_1Pd6Hn3Za", 299.0, "usd", "one_time"),
]
_FX = {"usd": 1.0, "eur": 1.084}
_FIRST = ["Maya", "Jonas", "Aiko", "Liam", "Sofia", "Noah", "Amara", "Mateo", "Lena", "Omar", "Priya", "Elias"]
_LAST = ["Lopez", "Weber", "Tanaka", "Murphy", "Rossi", "Kim", "Okafor", "Silva", "Novak", "Haddad", "Shah", "Berg"]


def _token(rng: random.Random, length: int) -> str:
    return "".join(rng.choice(_ALPHABET) for _ in range(length))


def _iso(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


class DeliveryFactory:
    """Distinct `payment.succeeded` deliveries in Whop's v1 shape (from the shared samples)."""

    def __init__(self, seed: int):
        self.rng = random.Random(seed)
        with open(SAMPLES / "payment.succeeded.json", "rb") as sample:
            self.template = json.load(sample)
        with open(SAMPLES / "payment.succeeded.no-metadata.json", "rb") as sample:
            self.template_no_metadata = json.load(sample)
        self.run = _token(self.rng, 4)  # ids of this run cannot collide with an earlier run's
        self.number = 0

    def make(self) -> tuple[str, str, bytes]:
        """(webhook-id, payment id, body) of a new delivery."""
        rng = self.rng
        self.number += 1
        n = self.number
        with_click = rng.random() < 0.75  # most buyers came through a tracked link
        payload = json.loads(json.dumps(self.template if with_click else self.template_no_metadata))
        now = datetime.now(UTC)
        product_id, title, plan_id, total, currency, reason = rng.choice(_PRODUCTS)
        first, last = rng.choice(_FIRST), rng.choice(_LAST)
        payment_id = f"pay_{self.run}{n:06d}{_token(rng, 4)}"
        payload["id"] = f"evt_{self.run}{n:06d}{_token(rng, 3)}"
        payload["timestamp"] = _iso(now)
        data = payload["data"]
        data.update(
            id=payment_id,
            currency=currency,
            total=total,
            subtotal=total,
            usd_total=round(total * _FX[currency], 2),
            amount_after_fees=round(total * 0.97 - 0.30, 2),
            billing_reason=reason,
            paid_at=_iso(now - timedelta(seconds=rng.uniform(1, 3))),
            created_at=_iso(now - timedelta(seconds=rng.uniform(8, 25))),
        )
        data["user"] = {
            "id": f"user_{_token(rng, 11)}",
            "email": f"{first}.{last}{n}@example.org" if rng.random() < 0.5 else f"{first.lower()}.{last.lower()}{n}@example.org",
            "name": f"{first} {last}",
            "username": f"{first.lower()}{last.lower()[:2]}{n}",
        }
        data["member"] = {"id": f"mber_{_token(rng, 9)}", "phone": None}
        data["membership"] = {"id": f"mem_{_token(rng, 9)}", "status": "active"}
        data["plan"] = {"id": plan_id}
        data["product"] = {"id": product_id, "title": title}
        if with_click:
            data["metadata"] = {"allumi_cid": f"c_{_token(rng, 12)}"}
        webhook_id = f"msg_{self.run}{n:06d}{_token(rng, 14)}"
        body = json.dumps(payload, separators=(",", ":"), ensure_ascii=True).encode()
        return webhook_id, payment_id, body


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Whop's signature: base64 HMAC-SHA256 keyed by the secret's UTF-8 bytes (../shared/whop/)."""
    message = f"{webhook_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


class Plan:
    """What each wrk thread will send, in order: (webhook-id, payment id, body) with repeats."""

    def __init__(self, threads: int):
        self.per_thread: list[list[tuple[str, str, bytes]]] = [[] for _ in range(threads)]
        self.written: list[Path] = []

    @classmethod
    def build(cls, factory: DeliveryFactory, *, threads: int, per_thread: int, duplicates: float) -> "Plan":
        plan = cls(threads)
        rng = factory.rng
        for entries in plan.per_thread:
            originals: list[tuple[str, str, bytes]] = []
            for position in range(per_thread):
                if originals and position >= 8 and rng.random() < duplicates:
                    # A retry of one of this thread's recent deliveries (Whop retries within
                    # about a minute); sometimes still in flight on another connection.
                    entries.append(rng.choice(originals[-400:]))
                else:
                    delivery = factory.make()
                    originals.append(delivery)
                    entries.append(delivery)
        return plan

    def write(self, prefix: Path, secret: str) -> int:
        """Sign every delivery with the current time and write one file per thread; the timestamp."""
        timestamp = int(time.time())
        for number, entries in enumerate(self.per_thread, start=1):
            path = Path(f"{prefix}{number}.tsv")
            with open(path, "wb") as out:
                for webhook_id, _payment_id, body in entries:
                    signature = sign(secret, webhook_id, timestamp, body)
                    out.write(f"{webhook_id}\t{timestamp}\t{signature}\t".encode() + body + b"\n")
            self.written.append(path)
        return timestamp

    def sent(self, counts: list[tuple[int, int]]) -> list[tuple[str, str, bytes]]:
        """The deliveries wrk wrote, from each thread's (sent, wraps)."""
        result = []
        for entries, (sent, _wraps) in zip(self.per_thread, counts, strict=True):
            full, rest = divmod(sent, len(entries))
            result.extend(entries * full + entries[:rest])
        return result


# --- HTTP -----------------------------------------------------------------------------------


def http_request(port: int, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None, timeout: float = 5.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"User-Agent": USER_AGENT, **(headers or {})})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def wait_healthy(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode}:\n{tail(log_path)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = http_request(port, "GET", "/healthz", timeout=1.0)
            if status == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"gunicorn did not answer /healthz within {timeout:.0f}s:\n{tail(log_path)}")


def post_delivery(port: int, path: str, secret: str, webhook_id: str, body: bytes, *, signature: str | None = None):
    timestamp = int(time.time())
    headers = {
        "Content-Type": "application/json",
        "webhook-id": webhook_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signature or sign(secret, webhook_id, timestamp, body),
    }
    status, content = http_request(port, "POST", path, body=body, headers=headers)
    try:
        return status, json.loads(content)
    except ValueError:
        return status, content[:200]


# --- wrk ------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def parse_wrk(output: str) -> dict:
    def find(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"unexpected wrk output (no match for {pattern!r}):\n{output}")
        return match

    result = {
        "rps": float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        "requests": int(find(r"^\s*(\d+) requests in ").group(1)),
    }
    elapsed = find(r"^\s*\d+ requests in ([\d.]+)(us|ms|s|m|h)")
    result["elapsed_s"] = float(elapsed.group(1)) * _UNITS_MS[elapsed.group(2)] / 1000
    for pct in ("50", "75", "90", "99"):
        match = find(rf"^\s*{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)")
        result[f"p{pct}_ms"] = float(match.group(1)) * _UNITS_MS[match.group(2)]
    latency_max = find(r"^\s*Latency\s+\S+\s+\S+\s+([\d.]+)(us|ms|s|m|h)")
    result["max_ms"] = float(latency_max.group(1)) * _UNITS_MS[latency_max.group(2)]
    non_ok = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx_3xx"] = int(non_ok.group(1)) if non_ok else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)) if errors else {}
    result["threads"] = [
        (int(m.group(2)), int(m.group(3)))
        for m in sorted(re.finditer(r"^BENCH-THREAD no=(\d+) sent=(\d+) wraps=(\d+)", output, re.MULTILINE), key=lambda m: int(m.group(1)))
    ]
    counts = find(r"^BENCH (s200=.*)$").group(1)
    result.update({key: int(value) for key, value in (item.split("=") for item in counts.split())})
    result["sent"] = sum(sent for sent, _ in result["threads"])
    result["wraps"] = sum(wraps for _, wraps in result["threads"])
    return result


def run_wrk(children: Children, env: dict, *, args, port: int, path: str, lua: Path, prefix: Path, duration: float) -> dict:
    cmd = [
        args.wrk, f"--threads={args.threads}", f"--connections={args.connections}", f"--duration={max(1, round(duration))}s",
        "--timeout=5s", "--latency", f"--script={lua}", f"http://127.0.0.1:{port}{path}", "--", str(prefix), path,
    ]
    proc = children.start(cmd, env=env)
    try:
        output, _ = proc.communicate(timeout=duration + 60)
    except subprocess.TimeoutExpired:
        children.stop(proc, sig=signal.SIGKILL, grace=1)
        raise BenchError("wrk did not finish in time") from None
    children.forget(proc)
    text = output.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{text}")
    result = parse_wrk(text)
    if len(result["threads"]) != args.threads:
        raise BenchError(f"wrk reported {len(result['threads'])} threads, not {args.threads}:\n{text}")
    result["raw"] = text
    return result


def run_paced(*, args, port: int, path: str, prefix: Path, duration: float) -> dict:
    """Open loop (--rate): deliveries at random, exponentially distributed intervals (independent
    events, as webhooks arrive), each on its own new connection opened when it is sent, whether or
    not earlier ones were answered. Latency is what a sender sees: connect, send, whole answer.
    Returns what parse_wrk() returns, for the same report and checks."""
    from concurrent.futures import ThreadPoolExecutor

    files = []
    for number in range(1, args.threads + 1):
        entries = []
        for line in Path(f"{prefix}{number}.tsv").read_bytes().splitlines():
            webhook_id, timestamp, signature, body = line.split(b"\t", 3)
            entries.append((webhook_id.decode(), timestamp.decode(), signature.decode(), body))
        files.append(entries)
    latencies, statuses, errors = [], [], {"connect": 0, "timeout": 0}
    counts = {"received": 0, "duplicate": 0}

    def send(entry) -> None:
        webhook_id, timestamp, signature, body = entry
        started = time.perf_counter()
        try:
            status, answer = http_request(port, "POST", path, body=body, headers={
                "Content-Type": "application/json", "webhook-id": webhook_id,
                "webhook-timestamp": timestamp, "webhook-signature": signature,
            })
        except TimeoutError:
            errors["timeout"] += 1
            return
        except OSError:
            errors["connect"] += 1
            return
        latencies.append((time.perf_counter() - started) * 1000)
        statuses.append(status)
        for key in counts:
            if f'"{key}"'.encode() in answer:
                counts[key] += 1

    rng = random.Random(7)
    sent = [0] * len(files)
    with ThreadPoolExecutor(max_workers=max(64, args.connections)) as pool:
        began = time.perf_counter()
        due = began
        while True:
            due += rng.expovariate(args.rate)
            if due - began > duration:
                break
            time.sleep(max(due - time.perf_counter(), 0))
            which = rng.randrange(len(files))
            entries = files[which]
            pool.submit(send, entries[sent[which] % len(entries)])
            sent[which] += 1
        offered_s = time.perf_counter() - began
    latencies.sort()

    def pct(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] if latencies else float("nan")

    result = {
        "rps": len(latencies) / offered_s, "requests": len(latencies), "elapsed_s": offered_s,
        "p50_ms": pct(0.50), "p75_ms": pct(0.75), "p90_ms": pct(0.90), "p99_ms": pct(0.99),
        "max_ms": latencies[-1] if latencies else float("nan"),
        "non_2xx_3xx": sum(1 for status in statuses if status >= 400), "socket_errors": {k: v for k, v in errors.items() if v},
        "threads": [(count, count // len(entries)) for count, entries in zip(sent, files, strict=True)],
        "s200": statuses.count(200), "s2xx": sum(1 for status in statuses if 200 < status < 300),
        "s3xx": sum(1 for status in statuses if 300 <= status < 400), "s4xx": sum(1 for status in statuses if 400 <= status < 500),
        "s5xx": sum(1 for status in statuses if status >= 500), **counts,
    }
    result["sent"] = sum(sent)
    result["wraps"] = sum(wraps for _, wraps in result["threads"])
    result["raw"] = f"open loop at {args.rate:g}/s offered: {result['sent']} sent in {offered_s:.1f}s"
    return result


# --- CPU accounting -------------------------------------------------------------------------

_TICK = os.sysconf("SC_CLK_TCK")
SERVICES = ("redis-server", "postgres")  # by process name: the shared services, not started here


def cpu_by_owner(pgids: dict[str, int]) -> dict[str, float]:
    """CPU seconds used so far by the processes of each group in `pgids` (with the children they
    reaped), and by the local Redis and PostgreSQL server processes."""
    totals = dict.fromkeys([*pgids, *SERVICES], 0.0)
    by_pgid = {pgid: name for name, pgid in pgids.items()}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            stat = Path(entry.path, "stat").read_text()
        except OSError:
            continue
        comm = stat[stat.index("(") + 1 : stat.rindex(")")]
        fields = stat[stat.rindex(")") + 2 :].split()  # fields[0] is field 3 of proc(5)
        name = by_pgid.get(int(fields[2])) or (comm if comm in SERVICES else None)
        if name:
            totals[name] += sum(int(value) for value in fields[11:15]) / _TICK  # utime stime cutime cstime
    return totals


def machine_busy() -> float:
    """CPU seconds all cores have spent not idle since boot (every process on the machine)."""
    with open("/proc/stat") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    return (sum(values[:8]) - values[3] - values[4]) / _TICK


class CpuMeter:
    def __init__(self, groups: dict[str, subprocess.Popen]):
        self.groups = {name: proc.pid for name, proc in groups.items() if proc is not None}

    def __enter__(self):
        self.started = time.monotonic()
        self.before = cpu_by_owner(self.groups)
        self.busy_before = machine_busy()
        self.children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        return self

    def __exit__(self, *exc):
        elapsed = time.monotonic() - self.started
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.used = {name: value - self.before[name] for name, value in cpu_by_owner(self.groups).items()}
        # wrk is the only child this process waits for during a run.
        self.used["wrk"] = (usage.ru_utime + usage.ru_stime) - (self.children_before.ru_utime + self.children_before.ru_stime)
        self.used["all"] = machine_busy() - self.busy_before
        self.used["other"] = max(0.0, self.used["all"] - sum(value for name, value in self.used.items() if name != "all"))
        self.used["capacity"] = elapsed * (os.cpu_count() or 1)
        return False

    def summary(self) -> str:
        parts = [f"{name} {self.used[name]:.1f}" for name in (*self.groups, "wrk", *SERVICES, "other")]
        return f"{', '.join(parts)} of {self.used['capacity']:.1f} CPU s ({self.used['all'] / self.used['capacity']:.0%} busy)"


# --- database checks ------------------------------------------------------------------------


def event_statuses(connection_id: int) -> dict[str, int]:
    from django.db.models import Count

    from billing.models import WhopEvent

    rows = WhopEvent.objects.filter(connection_id=connection_id).values_list("status").annotate(n=Count("id"))
    return dict(rows)


def wait_processed(connection_id: int, *, expected: int, timeout: float, what: str) -> tuple[dict[str, int], float]:
    """Poll until `expected` events are stored and all processed; (statuses, seconds waited)."""
    from django.db import connection

    started = time.monotonic()
    last_report = started
    while True:
        statuses = event_statuses(connection_id)
        stored, done = sum(statuses.values()), statuses.get("processed", 0)
        waited = time.monotonic() - started
        if (stored >= expected and done == stored) or waited > timeout:
            connection.close()
            return statuses, waited
        if time.monotonic() - last_report >= 10:
            print(f"  {what}: {done}/{stored} events processed after {waited:.0f}s", flush=True)
            last_report = time.monotonic()
        time.sleep(0.5)


def verify(creator_id: int, connection_id: int, sent: list[tuple[str, str, bytes]]) -> dict:
    """Compare what the database holds with what was sent."""
    from django.db import connection
    from django.db.models import Count

    from attribution.models import Conversion
    from billing.models import WhopEvent

    sent_webhooks = {webhook_id for webhook_id, _, _ in sent}
    sent_payments = {payment_id for _, payment_id, _ in sent}
    events = WhopEvent.objects.filter(connection_id=connection_id)
    stored_webhooks = list(events.values_list("webhook_id", flat=True))
    conversions = Conversion.objects.filter(creator_id=creator_id, source=Conversion.Source.WHOP)
    stored_payments = list(conversions.values_list("external_id", flat=True))
    duplicate_events = events.values("webhook_id").annotate(n=Count("id")).filter(n__gt=1).count()
    duplicate_payment_events = events.values("object_id").annotate(n=Count("id")).filter(n__gt=1).count()
    duplicate_conversions = conversions.values("external_id").annotate(n=Count("id")).filter(n__gt=1).count()
    statuses = dict(events.values_list("status").annotate(n=Count("id")))
    errors = list(events.exclude(last_error="").values_list("status", "last_error")[:3])
    attribution = dict(conversions.values_list("status").annotate(n=Count("id")))
    connection.close()
    return {
        "sent_webhooks": sent_webhooks,
        "sent_payments": sent_payments,
        "stored_webhooks": stored_webhooks,
        "stored_payments": stored_payments,
        "missing_events": len(sent_webhooks - set(stored_webhooks)),
        "unexpected_events": len(set(stored_webhooks) - sent_webhooks),
        "missing_conversions": len(sent_payments - set(stored_payments)),
        "unexpected_conversions": len(set(stored_payments) - sent_payments),
        "duplicate_events": duplicate_events,
        "duplicate_payment_events": duplicate_payment_events,
        "duplicate_conversions": duplicate_conversions,
        "statuses": statuses,
        "errors": errors,
        "attribution": attribution,
    }


# --- PostgreSQL activity sampler -------------------------------------------------------------


class WaitSampler:
    """Samples pg_stat_activity of the bench database during the run: what its sessions are doing
    (running, waiting on a lock, on the WAL flush of a commit, on the client) and for which query."""

    def __init__(self, database_url: str, interval: float = 0.02):
        import threading

        self.database_url, self.interval = database_url, interval
        self.samples = 0
        self.counts: dict[tuple[str, str], int] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="pg-wait-sampler", daemon=True)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join(timeout=5)
        return False

    def _run(self) -> None:
        import dj_database_url
        import psycopg

        config = dj_database_url.parse(self.database_url)
        params = {"host": config.get("HOST") or "127.0.0.1", "port": config.get("PORT") or 5432, "user": config.get("USER") or "postgres", "dbname": config["NAME"]}
        if config.get("PASSWORD"):
            params["password"] = config["PASSWORD"]
        query = (
            "SELECT state, wait_event_type, wait_event, left(regexp_replace(query, '\\s+', ' ', 'g'), 60)"
            " FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
            " AND backend_type = 'client backend' AND state IS NOT NULL AND state <> 'idle'"
        )
        with contextlib.suppress(Exception), psycopg.connect(**params, autocommit=True, connect_timeout=5) as conn:
            while not self._stop.is_set():
                self.samples += 1
                for state, wait_type, wait_event, text in conn.execute(query).fetchall():
                    if state == "active":
                        doing = f"waiting {wait_type}:{wait_event}" if wait_type else "running"
                    else:
                        doing = f"{state} (the app has the turn)"
                    key = (doing, _query_label(text or ""))
                    self.counts[key] = self.counts.get(key, 0) + 1
                self._stop.wait(self.interval)

    def lines(self, top: int = 10) -> list[str]:
        if not self.samples:
            return ["(no samples)"]
        busy = sum(self.counts.values())
        result = [f"{self.samples} samples; on average {busy / self.samples:.2f} sessions of the bench database not idle:"]
        for (doing, query), count in sorted(self.counts.items(), key=lambda item: -item[1])[:top]:
            result.append(f"  {count / self.samples:5.2f} sessions  {doing:<44} {query}")
        return result


def _query_label(text: str) -> str:
    """A short name for a query: its verb and first table."""
    match = re.match(r'\s*(SELECT|INSERT INTO|UPDATE|DELETE FROM|COMMIT|BEGIN|ROLLBACK|SAVEPOINT|RELEASE SAVEPOINT)\b', text, re.IGNORECASE)
    verb = match.group(1).upper() if match else text[:24]
    table = re.search(r'(?:FROM|INTO|UPDATE)\s+"?(\w+)"?', text, re.IGNORECASE)
    if verb in ("COMMIT", "BEGIN", "ROLLBACK", "SAVEPOINT", "RELEASE SAVEPOINT") or not table:
        return verb
    return f"{verb} {table.group(1)}"


# --- in-process profile ---------------------------------------------------------------------

# (label, file name ending, function name): cumulative time of these, per request.
PROFILE_ROWS = [
    ("whole Django stack (BaseHandler.get_response)", "django/core/handlers/base.py", "get_response"),
    ("  view whop_webhook", "billing/webhooks.py", "whop_webhook"),
    ("    connection lookup (QuerySet.first)", "django/db/models/query.py", "first"),
    ("    decrypt signing secret (Fernet)", "allumi/core/crypto.py", "decrypt"),
    ("    verify_delivery (standardwebhooks)", "billing/signatures.py", "verify_delivery"),
    ("    json.loads of the body", "json/__init__.py", "loads"),
    ("    Model.save (BEGIN + event INSERT)", "django/db/models/base.py", "save"),
    ("    QuerySet.update (last_delivery_at)", "django/db/models/query.py", "update"),
    ("    transaction commit (Atomic.__exit__)", "django/db/transaction.py", "__exit__"),
    ("    Celery task.delay (publish to Redis)", "celery/app/task.py", "apply_async"),
    ("    prometheus counter inc", "prometheus_client/metrics.py", "inc"),
    ("  connection health check (is_usable)", "django/db/backends/postgresql/base.py", "is_usable"),
    ("  all SQL (CursorWrapper.execute)", "django/db/backends/utils.py", "execute"),
    ("  waiting on PostgreSQL (psycopg wait)", "psycopg/connection.py", "wait"),
    ("  Redis commands (redis execute_command)", "redis/client.py", "execute_command"),
]


def _percentile(values: list[float], pct: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(pct / 100 * len(ordered)) - 1))]


def round_trips(redis_url: str, samples: int = 200) -> str:
    """Loopback round trips right now (PostgreSQL `SELECT 1`, Redis PING): how loaded the machine is."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT 1")
        pg = []
        for _ in range(samples):
            started = time.perf_counter()
            cursor.execute("SELECT 1")
            cursor.fetchone()
            pg.append(1000 * (time.perf_counter() - started))
    client = redis_client(redis_url)
    client.ping()
    rd = []
    for _ in range(samples):
        started = time.perf_counter()
        client.ping()
        rd.append(1000 * (time.perf_counter() - started))
    client.close()
    return (
        f"loopback round trips now: PostgreSQL SELECT 1 p50 {_percentile(pg, 50):.2f} ms p99 {_percentile(pg, 99):.2f} ms;"
        f" Redis PING p50 {_percentile(rd, 50):.2f} ms p99 {_percentile(rd, 99):.2f} ms"
    )


def profile_view(path: str, secret: str, factory: DeliveryFactory, requests: int, redis_url: str) -> list[str]:
    """Where one request's time goes in this process (no gunicorn, no queueing), as lines."""
    import warnings

    from django.db import connection
    from django.test import Client

    warnings.filterwarnings("ignore", message="No directory at")  # whitenoise: no collectstatic here
    client = Client(HTTP_HOST="127.0.0.1", HTTP_USER_AGENT=USER_AGENT)

    def post() -> tuple[float, float]:
        webhook_id, _, body = factory.make()
        timestamp = int(time.time())
        headers = {"webhook-id": webhook_id, "webhook-timestamp": str(timestamp), "webhook-signature": sign(secret, webhook_id, timestamp, body)}
        started, cpu_started = time.perf_counter(), time.process_time()
        response = client.post(path, data=body, content_type="application/json", headers=headers)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu_started
        if response.status_code != 200 or b'"received"' not in response.content:
            raise BenchError(f"in-process delivery answered {response.status_code} {response.content[:200]!r}")
        return elapsed, cpu

    for _ in range(20):  # imports, connections, caches
        post()
    lines = [round_trips(redis_url)]
    plain = [post() for _ in range(requests)]
    wall = [1000 * elapsed for elapsed, _ in plain]
    cpu = [1000 * used for _, used in plain]
    lines.append(
        f"in-process, one request at a time, {requests} deliveries (not profiled): wall mean {statistics.fmean(wall):.2f} ms,"
        f" p50 {_percentile(wall, 50):.2f} ms, p99 {_percentile(wall, 99):.2f} ms; CPU of this process mean {statistics.fmean(cpu):.2f} ms"
    )
    profiles = {}
    for kind, timer in (("wall", time.perf_counter), ("cpu", time.process_time)):
        profiler = cProfile.Profile(timer)
        profiler.enable()
        for _ in range(requests):
            post()
        profiler.disable()
        profiles[kind] = profiler
    connection.close()

    def rows(profiler) -> dict[tuple[str, str], tuple[float, int]]:
        totals: dict[tuple[str, str], tuple[float, int]] = {}
        for (filename, _line, function), (_cc, calls, _tt, cumulative, _callers) in pstats.Stats(profiler).stats.items():
            for _label, ending, name in PROFILE_ROWS:
                if function == name and filename.replace(os.sep, "/").endswith(ending):
                    before = totals.get((ending, name), (0.0, 0))
                    totals[(ending, name)] = (before[0] + cumulative, before[1] + calls)
        return totals

    wall_rows, cpu_rows = rows(profiles["wall"]), rows(profiles["cpu"])
    lines.append("per request under cProfile (which inflates Python-heavy parts): cumulative wall time, and CPU time of this process")
    lines.append(f"  {'':<48} {'wall ms':>8} {'wall %':>7} {'CPU ms':>8} {'CPU %':>7}  calls")
    whole_wall = wall_rows.get(PROFILE_ROWS[0][1:], (0.0, 0))[0] or 1e-9
    whole_cpu = cpu_rows.get(PROFILE_ROWS[0][1:], (0.0, 0))[0] or 1e-9
    for label, ending, name in PROFILE_ROWS:
        wall_time, calls = wall_rows.get((ending, name), (0.0, 0))
        cpu_time, _ = cpu_rows.get((ending, name), (0.0, 0))
        lines.append(
            f"  {label:<48} {1000 * wall_time / requests:8.3f} {100 * wall_time / whole_wall:6.1f}% {1000 * cpu_time / requests:8.3f}"
            f" {100 * cpu_time / whole_cpu:6.1f}%  {calls / requests:.1f}/request"
        )
    out = io.StringIO()
    pstats.Stats(profiles["cpu"], stream=out).sort_stats("tottime").print_stats(15)
    lines.append("top 15 functions by own CPU time (pstats, CPU timer):")
    lines.extend("  " + line for line in out.getvalue().splitlines() if line.strip() and not line.startswith("   Ordered by"))
    return lines


# --- main -----------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=15.0, help=f"seconds of the measured run (default 15, at most {MAX_DURATION})")
    parser.add_argument("--connections", type=int, default=16, help="wrk connections (default 16)")
    parser.add_argument("--rate", type=float, default=0.0, help="deliveries per second offered in all, at random intervals (default 0: back to back, as fast as answered)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up, also used to size the deliveries (default 3)")
    parser.add_argument("--duplicates", type=float, default=0.05, help="share of requests that repeat an earlier delivery (default 0.05)")
    parser.add_argument("--deliveries", type=int, default=0, help="deliveries prepared per wrk thread (default: from the warm-up rate)")
    parser.add_argument("--drain-timeout", type=float, default=120.0, help="seconds to wait for every event to be processed (default 120)")
    parser.add_argument("--celery-concurrency", type=int, default=2, help="Celery worker processes (default 2, as in the Procfile)")
    parser.add_argument("--worker-nice", type=int, default=0, help="run the Celery worker under `nice -n N` (default 0: same priority as the web)")
    parser.add_argument("--no-beat", action="store_true", help="run the Celery worker without its embedded beat")
    parser.add_argument("--profile", choices=("miss", "always", "never"), default="miss", help="profile the view in-process when the p99 target is missed (default), always, or never")
    parser.add_argument("--profile-requests", type=int, default=300, help="deliveries profiled in-process (default 300)")
    parser.add_argument("--database-url", default=os.environ.get("BENCH_HOOKS_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_HOOKS_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--wrk", default="wrk", help="the wrk executable")
    parser.add_argument("--strict", action="store_true", help="also exit non-zero (3) when the latency target is missed")
    parser.add_argument("--show-wrk", action="store_true", help="print wrk's own output")
    parser.add_argument("--keep-files", action="store_true", help="keep the signed request files (they hold valid signatures for 5 minutes)")
    args = parser.parse_args(argv)

    children = Children()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    workdir = Path(tempfile.mkdtemp(prefix="allumi-bench-hooks-"))
    try:
        return run(args, children, workdir)
    except BenchError as error:
        print(f"\nbenchmark failed: {error}", file=sys.stderr)
        print(f"logs: {workdir}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping child processes", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish (it is bounded)
        children.stop_all()
        if not args.keep_files:
            for path in workdir.glob("*.tsv"):
                path.unlink(missing_ok=True)


def run(args, children: Children, workdir: Path) -> int:
    if args.connections < 1 or args.threads < 1 or args.duration < 1 or args.warmup < 0 or args.rate < 0:
        raise BenchError("--connections, --threads and --duration must be positive, --warmup and --rate not negative")
    if args.threads > args.connections or args.connections % args.threads:
        raise BenchError("--connections must be a multiple of --threads (wrk gives each thread connections / threads)")
    if args.duration > MAX_DURATION:
        raise BenchError(f"--duration may be at most {MAX_DURATION}s: deliveries are signed before the run and expire after {TOLERANCE_SECONDS}s")
    if not 0 <= args.duplicates < 0.5:
        raise BenchError("--duplicates must be in [0, 0.5)")
    args.wrk = shutil.which(args.wrk) or ""
    if not args.wrk:
        raise BenchError("wrk is not on PATH")
    if not (SAMPLES / "payment.succeeded.json").is_file():
        raise BenchError(f"no sample deliveries in {SAMPLES} (../shared/whop/ from the project root)")
    check_loopback(args.database_url, "--database-url")
    check_loopback(args.redis_url, "--redis-url")

    env = bench_environment(args)
    os.environ.update({name: env[name] for name in (
        "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "RATELIMIT_ENABLE",
        "DATABASE_URL", "REDIS_URL", "SITE_URL", "LOG_LEVEL",
    )})
    for name in ("SENTRY_DSN", "TRUSTED_PROXIES", "WHOP_WEBHOOK_SECRET"):
        os.environ.pop(name, None)

    # 1. database, Redis, creator
    started = time.monotonic()
    ensure_database(args.database_url)
    redis = redis_client(args.redis_url)
    redis.flushdb()
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)
    secret = "ws_" + secrets.token_urlsafe(32)
    creator = provision_creator(env, secret)
    from billing.models import WhopConnection

    connection_row = WhopConnection.objects.get(creator_id=int(creator["creator_id"]))
    creator_id, connection_id, path = connection_row.creator_id, connection_row.id, creator["whop_webhook_url"]
    from django.db import connection

    connection.close()
    print(f"setup: creator {creator_id}, Whop connection {connection_id}, endpoint /webhooks/whop/<token> in {time.monotonic() - started:.1f}s")

    # 2. Celery worker, gunicorn
    celery_log = workdir / "celery.log"
    celery_cmd = [
        sys.executable, "-m", "celery", "-A", "allumi", "worker", f"--concurrency={args.celery_concurrency}", "--loglevel=info",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]
    if not args.no_beat:
        celery_cmd += ["--beat", f"--schedule={workdir / 'celerybeat-schedule'}"]
    if args.worker_nice:
        celery_cmd = ["nice", "-n", str(args.worker_nice), *celery_cmd]
    celery = children.start(celery_cmd, env=env, log_path=celery_log)
    wait_for_line(celery, celery_log, r"ready\.", 60, "celery worker")

    port = free_port()
    gunicorn_log = workdir / "gunicorn.log"
    gunicorn = children.start(
        [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "allumi.wsgi:application"],
        env=dict(env, GUNICORN_BIND=f"127.0.0.1:{port}"), log_path=gunicorn_log,
    )
    wait_healthy(port, gunicorn, gunicorn_log)
    workers = env.get("WEB_CONCURRENCY") or f"{(os.cpu_count() or 1) * 2} (2 x {os.cpu_count()} cores)"
    print(
        f"gunicorn on 127.0.0.1:{port}, workers {workers}; celery worker x{args.celery_concurrency}"
        f"{'' if args.no_beat else ' with beat'}; wrk {args.threads} threads x {args.connections} connections"
    )

    # 3. checks by hand
    factory = DeliveryFactory(seed=secrets.randbits(32))
    sent: list[tuple[str, str, bytes]] = []
    check = factory.make()
    status, answer = post_delivery(port, path, secret, check[0], check[2])
    if status != 200 or not isinstance(answer, dict) or answer.get("status") != "received":
        raise BenchError(f"a genuine delivery answered {status} {answer}")
    sent.append(check)
    status, again = post_delivery(port, path, secret, check[0], check[2])
    if status != 200 or not isinstance(again, dict) or again.get("status") != "duplicate":
        raise BenchError(f"the same delivery again answered {status} {again}")
    forged = factory.make()
    status, refused = post_delivery(port, path, secret, forged[0], forged[2], signature=sign("ws_not_the_secret", forged[0], int(time.time()), forged[2]))
    if status != 401:
        raise BenchError(f"a delivery signed with another secret answered {status} {refused}")
    print("check: genuine delivery -> 200 received, again -> 200 duplicate, wrong secret -> 401")

    lua = workdir / "webhooks.lua"
    lua.write_text(LUA_SCRIPT % {"user_agent": USER_AGENT})

    def drive(prefix: Path, duration: float) -> dict:
        """Send the deliveries written under `prefix`: open loop with --rate, else wrk back to back."""
        if args.rate:
            return run_paced(args=args, port=port, path=path, prefix=prefix, duration=duration)
        return run_wrk(children, env, args=args, port=port, path=path, lua=lua, prefix=prefix, duration=duration)

    # 4. warm-up (its deliveries count: they are stored and checked like the others)
    estimate_rps = 1500.0
    if args.warmup > 0:
        warm = Plan.build(factory, threads=args.threads, per_thread=max(200, int(args.warmup * 2000 / args.threads)), duplicates=args.duplicates)
        warm.write(workdir / "warmup-", secret)
        result = drive(workdir / "warmup-", args.warmup)
        sent.extend(warm.sent(result["threads"]))
        estimate_rps = max(result["rps"], 50.0)
        expected = len({webhook_id for webhook_id, _, _ in sent})
        statuses, waited = wait_processed(connection_id, expected=expected, timeout=args.drain_timeout, what="warm-up")
        print(
            f"warm-up: {result['rps']:.0f} requests/s for {args.warmup:.0f}s, p99 {result['p99_ms']:.1f} ms;"
            f" its {expected} events processed {waited:.1f}s later ({statuses})"
        )

    analyze_like_autovacuum()

    # Anything else keeping the cores busy makes the figures below meaningless: say so.
    with CpuMeter({"gunicorn": gunicorn, "celery": celery}) as idle:
        time.sleep(2.0)
    background = idle.used["other"] / idle.used["capacity"]
    print(f"background load before the run: {background:.0%} of the machine (not this benchmark's processes)")
    if background > 0.10:
        print("WARNING: other processes are using the CPU; requests/s will be low and latency noisy", flush=True)

    # 5. deliveries for the measured run, signed right before it
    per_thread = args.deliveries or int(math.ceil(estimate_rps * 2 * args.duration / args.threads)) + 2 * args.connections
    build_started = time.monotonic()
    plan = Plan.build(factory, threads=args.threads, per_thread=per_thread, duplicates=args.duplicates)
    signed_at = plan.write(workdir / "run-", secret)
    print(
        f"prepared {per_thread * args.threads} requests ({per_thread} per wrk thread, ~{args.duplicates:.0%} repeats),"
        f" signed at {signed_at} in {time.monotonic() - build_started:.1f}s"
    )
    if time.time() + args.duration + 5 - signed_at > TOLERANCE_SECONDS:
        raise BenchError("the deliveries would expire during the run")

    # 6. measured run
    database_before = database_activity()
    print(f"run: POST {path.rsplit('/', 1)[0]}/<token> for {args.duration:.0f}s ...", flush=True)
    with CpuMeter({"gunicorn": gunicorn, "celery": celery}) as meter, WaitSampler(args.database_url) as waits:
        result = drive(workdir / "run-", args.duration)
    run_sent = plan.sent(result["threads"])
    queue_at_stop = redis.llen("celery")
    if args.show_wrk:
        print(result["raw"])
    sent.extend(run_sent)
    if time.time() - signed_at > TOLERANCE_SECONDS:
        print("WARNING: the run outlasted the signature tolerance; late requests may have been refused")

    # 7. every stored event processed, then what the database holds
    expected = len({webhook_id for webhook_id, _, _ in sent})
    print(f"waiting for the Celery worker to process {expected} events (up to {args.drain_timeout:.0f}s) ...", flush=True)
    with CpuMeter({"gunicorn": gunicorn, "celery": celery}) as drain_meter:
        statuses, drain_seconds = wait_processed(connection_id, expected=expected, timeout=args.drain_timeout, what="drain")
    time.sleep(1.2)  # PostgreSQL publishes a backend's statistics at most once a second
    database_after = database_activity()
    children.stop(gunicorn, grace=15)
    checks = verify(creator_id, connection_id, sent)
    gunicorn_problems = [line for line in gunicorn_log.read_text(errors="replace").splitlines() if re.search(r"WARNING|ERROR|CRITICAL|Traceback", line)]
    # The check by hand's wrong-secret delivery logs one 401 warning; any other 401 is a problem.
    expected_401 = next((number for number, line in enumerate(gunicorn_problems) if '"status_code": 401' in line), None)
    if expected_401 is not None:
        del gunicorn_problems[expected_401]
    celery_problems = [line for line in celery_log.read_text(errors="replace").splitlines() if re.search(r"ERROR|CRITICAL|Traceback|Retry in", line)]

    # report
    sent_webhooks, sent_payments = checks["sent_webhooks"], checks["sent_payments"]
    run_requests = len(run_sent)
    run_distinct = len({webhook_id for webhook_id, _, _ in run_sent})
    answered = result["s200"] + result["s2xx"] + result["s3xx"] + result["s4xx"] + result["s5xx"]
    non_2xx = result["s3xx"] + result["s4xx"] + result["s5xx"]
    socket_errors = sum(result["socket_errors"].values())
    stored_events, stored_conversions = len(checks["stored_webhooks"]), len(checks["stored_payments"])
    processed = checks["statuses"].get("processed", 0)

    print()
    print("=" * 100)
    driver = (f"open loop: {args.rate:g} deliveries/s offered at random intervals, a new connection each" if args.rate
              else f"wrk {args.threads} threads x {args.connections} connections back to back")
    print(f"Whop webhook benchmark: {args.duration:.0f}s, {driver}, gunicorn {workers} sync workers")
    print(f"  requests/s        {result['rps']:10.1f}   ({result['requests']} answered in {result['elapsed_s']:.1f}s)")
    print(
        f"  latency ms        p50 {result['p50_ms']:.2f}   p75 {result['p75_ms']:.2f}   p90 {result['p90_ms']:.2f}"
        f"   p99 {result['p99_ms']:.2f}   max {result['max_ms']:.2f}"
    )
    print(
        f"  requests written  {run_requests} = answered {answered} + in flight at stop {run_requests - answered};"
        f" {run_distinct} distinct deliveries + {run_requests - run_distinct} repeats"
        f"{'; WRAPPED: a thread ran out of prepared deliveries ' + str(result['wraps']) + ' times' if result['wraps'] else ''}"
    )
    print(
        f"  answers           200 {result['s200']} (received {result['received']}, duplicate {result['duplicate']}),"
        f" other 2xx {result['s2xx']}, 3xx {result['s3xx']}, 4xx {result['s4xx']}, 5xx {result['s5xx']}; socket errors {result['socket_errors']}"
    )
    print(f"  Celery queue      {queue_at_stop} messages when the load stopped; all events processed {drain_seconds:.1f}s later" if processed == stored_events else
          f"  Celery queue      {queue_at_stop} messages when the load stopped; NOT all processed after {drain_seconds:.1f}s: {checks['statuses']}")
    print(f"  CPU seconds, run  {meter.summary()}")
    print(f"  CPU seconds, drain {drain_meter.summary()}")
    sent_here = max(run_requests, 1)
    print(
        f"  CPU ms/request    gunicorn {1000 * meter.used['gunicorn'] / sent_here:.2f}; celery (run + drain, with beat and attribution)"
        f" {1000 * (meter.used['celery'] + drain_meter.used['celery']) / max(run_distinct, 1):.2f} per event;"
        f" postgres (run + drain, every database on the server) {1000 * (meter.used['postgres'] + drain_meter.used['postgres']) / sent_here:.2f}"
    )
    print("  bench database    " + ", ".join(f"{name} {database_after[name] - database_before[name]}" for name in database_after) + " (run + drain, all sessions)")
    print("  PostgreSQL during the run (pg_stat_activity of the bench database, web and Celery sessions together):")
    for line in waits.lines():
        print(f"    {line}")
    print(f"  attribution       conversions by status {checks['attribution']} (informational: attribution runs after processing)")
    if gunicorn_problems:
        print(f"  gunicorn log      {len(gunicorn_problems)} warning/error lines, e.g.:")
        for line in gunicorn_problems[:5]:
            print(f"    {line}")
    if celery_problems:
        print(f"  celery log        {len(celery_problems)} error/retry lines, e.g.:")
        for line in celery_problems[:5]:
            print(f"    {line[:300]}")
    for status_name, error in checks["errors"]:
        print(f"  event error       {status_name}: {error[:300]}")
    other = max(meter.used["other"] / meter.used["capacity"], background)
    if other > 0.10:
        print(f"  NOTE              other processes used {other:.0%} of the machine's CPU (see 'other' above): figures are pessimistic")
    print(f"  logs              {workdir}")
    print("-" * 100)

    latency_ok = result["p99_ms"] < TARGET_P99_MS
    answers_ok = non_2xx == 0 and socket_errors == 0 and result["non_2xx_3xx"] == 0
    events_ok = stored_events == len(sent_webhooks) and checks["missing_events"] == 0 and checks["unexpected_events"] == 0
    conversions_ok = stored_conversions == len(sent_payments) and checks["missing_conversions"] == 0 and checks["unexpected_conversions"] == 0
    duplicates_ok = checks["duplicate_events"] == 0 and checks["duplicate_payment_events"] == 0 and checks["duplicate_conversions"] == 0
    processed_ok = processed == stored_events and stored_events > 0
    lines = [
        (latency_ok, f"p99 latency {result['p99_ms']:.2f} ms < {TARGET_P99_MS:.0f} ms (p50 {result['p50_ms']:.2f} ms, {result['rps']:.0f} requests/s)"),
        (answers_ok, f"non-2xx answers {non_2xx}, socket errors {socket_errors}"),
        (events_ok, f"stored events {stored_events} == distinct webhook-ids sent {len(sent_webhooks)}"
                    f" (missing {checks['missing_events']}, unexpected {checks['unexpected_events']}; whole run incl. warm-up and checks)"),
        (conversions_ok, f"conversions {stored_conversions} == distinct payment ids sent {len(sent_payments)}"
                         f" (missing {checks['missing_conversions']}, unexpected {checks['unexpected_conversions']})"),
        (duplicates_ok, f"duplicates: events per webhook-id {checks['duplicate_events']}, events per payment {checks['duplicate_payment_events']},"
                        f" conversions per payment {checks['duplicate_conversions']}"),
        (processed_ok, f"event statuses {checks['statuses']}: all processed within {args.drain_timeout:.0f}s (took {drain_seconds:.1f}s)"),
    ]
    for ok, text in lines:
        print(f"{verdict(ok)}  {text}")
    correctness_ok = answers_ok and events_ok and conversions_ok and duplicates_ok and processed_ok
    print(f"{verdict(correctness_ok and latency_ok)}  overall")

    # 8. where the time goes
    if args.profile == "always" or (args.profile == "miss" and not latency_ok):
        children.stop(celery, grace=10)  # the machine to the profile alone; its enqueued tasks stay in Redis
        print()
        print("profile of the view in this process (django.test.Client, same settings and database):")
        for line in profile_view(path, secret, factory, max(20, args.profile_requests), args.redis_url):
            print(f"  {line}")
    else:
        children.stop(celery, grace=10)

    if not correctness_ok:
        return 1
    if args.strict and not latency_ok:
        return 3
    return 0


def analyze_like_autovacuum() -> None:
    """The bench creator's tables start empty. PostgreSQL's autovacuum analyzes a table once about
    fifty rows have changed; where the server runs with it switched off, the tables would keep
    "never analyzed" statistics and the planner would read every identifier of the creator to
    find one. Do once, after the warm-up, what autovacuum would have done by then."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        if cursor.fetchone()[0] == "on":
            return
        started = time.perf_counter()
        cursor.execute("ANALYZE")
    connection.close()
    print(f"autovacuum is off on this server: ANALYZE after the warm-up, as it would: {time.perf_counter() - started:.1f}s")


def database_activity() -> dict[str, int]:
    """Counters of the bench database: transactions, rows read, rows inserted (all sessions)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched, tup_inserted, tup_updated"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
        transactions, rows_read, rows_inserted, rows_updated = cursor.fetchone()
    connection.close()
    return {"transactions": transactions, "rows read": rows_read, "rows inserted": rows_inserted, "rows updated": rows_updated}


if __name__ == "__main__":
    sys.exit(main())
