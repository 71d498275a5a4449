"""Fault tests: what Allumi loses, doubles or refuses when Redis, PostgreSQL or a worker goes away.

    .venv/bin/python bench/faults.py [SCENARIO ...] [--redis-stop save|kill] [--rate 200] [--duration 25]

Scenarios (default: all, in this order); each prints what it sent, what was accepted, what was
stored and what was lost, then PASS or FAIL:

  redis-down        redirects for --duration s while Redis is stopped for --redis-outage s:
                    every answer must be a 302 and, once the click buffer is drained, every 302
                    a stored click (the redirect writes to the database while Redis is away)
  postgres-restart  redirects and track calls while PostgreSQL is stopped for --postgres-outage s:
                    errors only while it is down, every 2xx track call a stored conversion, every
                    302 a stored click, and no conversion left pending
  worker-kill       --conversions people click twice and convert (track API, click id), then a
                    creator recompute is started (attribution.conversions.recompute_start, as the
                    settings page does) and the Celery worker is SIGKILLed a third of the way in;
                    a new worker must finish it within --recompute-timeout s (beat's recompute
                    sweep resumes it from its cursor) with no conversion pending and credits not
                    doubled (per conversion and model the weights sum to 1, the credit ledger
                    matches the credits)
  webhook-dup       one signed Whop payment.succeeded delivered ten times at once under one
                    webhook-id and ten times under ten others: one stored event per webhook-id,
                    one conversion for the payment
  broker-down       Redis (the Celery broker) stopped, --broker-conversions track calls sent: each
                    must answer 202 and be stored, and all must be attributed within
                    --pending-timeout s of Redis coming back (the pending sweep in beat)

All on loopback, against private instances this script starts (so stopping them disturbs no other
process on the machine): a redis-server (no persistence) and a PostgreSQL cluster made with initdb
in a temporary directory (run as the `postgres` OS user when this script runs as root), each on a
free port, migrated once. gunicorn (`--config gunicorn.conf.py`, `bench.settings`) and
`celery -A allumi worker --beat` run with production settings (DEBUG=false, no SSL redirect, no
rate limits). `--redis-stop save` stops Redis as an operator restarts it (SHUTDOWN SAVE, started
again from its dump); `kill` is a crash of a Redis without persistence, which takes the clicks
still in the buffer with it: the scenario then counts them as lost. Every scenario also checks
that the Celery worker survived it.

Exit status: 0 when every scenario passed, 1 when one failed, 2 when the tests could not run.
"""

import argparse
import base64
import contextlib
import hashlib
import hmac
import http.client
import itertools
import json
import os
import random
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = ROOT.parent / "shared" / "whop"  # ../shared/whop/ from the project root
# Run as `python bench/faults.py`: import from the project root, not from bench/.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SCENARIOS = ("redis-down", "postgres-restart", "worker-kill", "webhook-dup", "broker-down")
USER_AGENT = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/131.0.0.0 Safari/537.36"
)
GRACE = 2.0  # seconds after a service is back in which errors still belong to its outage
NETWORK_ERRORS = (OSError, http.client.HTTPException)


class FaultError(Exception):
    pass


# --- processes ------------------------------------------------------------------------------


class Children:
    """Processes started here, each in its own session: Ctrl-C reaches only this script, which
    then stops them in order."""

    def __init__(self):
        self.procs: list[subprocess.Popen] = []

    def start(self, cmd: list[str], env: dict, log_path: Path) -> subprocess.Popen:
        with open(log_path, "ab") as log:
            proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
        self.procs.append(proc)
        return proc

    def stop(self, proc: subprocess.Popen, sig=signal.SIGTERM, grace: float = 10.0) -> None:
        if proc.poll() is None and sig != signal.SIGKILL:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)  # the whole group: prefork children, embedded beat
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=10)
        self.procs = [p for p in self.procs if p is not proc]

    def stop_all(self) -> None:
        for proc in reversed(list(self.procs)):
            self.stop(proc, grace=8.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def tail(path: Path, lines: int = 20) -> str:
    with contextlib.suppress(OSError):
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    return "(no log)"


def wait_until(predicate, timeout: float, interval: float = 0.25) -> bool:
    deadline = time.monotonic() + timeout
    while True:
        with contextlib.suppress(Exception):  # a service coming back may refuse a few more times
            if predicate():
                return True
        if time.monotonic() > deadline:
            return False
        time.sleep(interval)


class Redis:
    def __init__(self, workdir: Path, children: Children):
        self.children, self.port, self.dir, self.log = children, free_port(), workdir / "redis", workdir / "redis.log"
        self.dir.mkdir()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.proc = None

    def client(self):
        import redis

        return redis.Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    def start(self) -> None:
        cmd = ["redis-server", "--port", str(self.port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", str(self.dir)]
        self.proc = self.children.start(cmd, os.environ.copy(), self.log)
        if not wait_until(lambda: self.client().ping(), 15):
            raise FaultError(f"redis-server did not answer:\n{tail(self.log)}")

    def stop(self, how: str) -> None:
        import redis

        if how == "kill":
            self.children.stop(self.proc, sig=signal.SIGKILL)
            (self.dir / "dump.rdb").unlink(missing_ok=True)  # a crash leaves nothing to reload
        else:
            with contextlib.suppress(redis.RedisError):
                self.client().shutdown(save=True)
            self.children.stop(self.proc, grace=15)

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


class Postgres:
    """A private cluster; initdb and the server refuse to run as root, hence `postgres` then."""

    def __init__(self, workdir: Path):
        self.workdir, self.data, self.log, self.port = workdir, workdir / "pgdata", workdir / "postgres.log", free_port()
        self.url = f"postgres://postgres@127.0.0.1:{self.port}/allumi_faults"
        self.as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        configured = subprocess.run(["pg_config", "--bindir"], capture_output=True, text=True, check=False).stdout.strip()
        candidates = [Path(configured)] if configured else []
        candidates += sorted(Path("/usr/lib/postgresql").glob("*/bin"), key=lambda p: int(p.parent.name) if p.parent.name.isdigit() else 0, reverse=True)
        self.bindir = next((path for path in candidates if (path / "initdb").exists()), None)
        if self.bindir is None:
            raise FaultError("no PostgreSQL server binaries (initdb) found: install the server package")

    def _run(self, tool: str, *args: str) -> None:
        with open(self.workdir / "pg_ctl.log", "ab") as log:
            proc = subprocess.run([*self.as_user, str(self.bindir / tool), *args], stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=120, check=False, start_new_session=True)
        if proc.returncode != 0:
            raise FaultError(f"{tool} {' '.join(args)} exited with {proc.returncode}:\n{tail(self.workdir / 'pg_ctl.log')}\n{tail(self.log)}")

    def init(self) -> None:
        if self.as_user:
            import pwd

            owner = pwd.getpwnam("postgres")
            os.chown(self.workdir, owner.pw_uid, owner.pw_gid)
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--encoding=UTF8", "--no-sync")
        self.start()
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres", autocommit=True) as conn:
            conn.execute("CREATE DATABASE allumi_faults")

    def start(self) -> None:
        # fsync off: a stopped server loses nothing it committed, and the tests run faster.
        options = f"-p {self.port} -k {self.workdir} -c listen_addresses=127.0.0.1 -c fsync=off"
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-o", options, "-w", "-t", "60", "start")

    def stop(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "60", "stop")

    def running(self) -> bool:
        return subprocess.run([*self.as_user, str(self.bindir / "pg_ctl"), "-D", str(self.data), "status"], capture_output=True, check=False).returncode == 0


# --- the stack ------------------------------------------------------------------------------


class Stack:
    def __init__(self, workdir: Path):
        self.workdir, self.children = workdir, Children()
        self.nonce = secrets.token_hex(3)
        self.redis = Redis(workdir, self.children)
        self.pg = Postgres(workdir)
        self.web = self.worker = None
        self.workers_started = 0
        self.port = free_port()

    def setup(self) -> None:
        self.pg.init()
        self.redis.start()
        for name in ("GUNICORN_ACCESS_LOG", "GUNICORN_BIND", "SENTRY_DSN", "TRUSTED_PROXIES", "WHOP_WEBHOOK_SECRET"):
            os.environ.pop(name, None)
        os.environ.update(
            DJANGO_SETTINGS_MODULE="bench.settings", DEBUG="false", SECRET_KEY=secrets.token_urlsafe(48),
            ALLOWED_HOSTS="127.0.0.1,localhost", SECURE_SSL_REDIRECT="false", RATELIMIT_ENABLE="false",
            DATABASE_URL=self.pg.url, REDIS_URL=self.redis.url, SITE_URL="http://127.0.0.1", LOG_LEVEL="WARNING",
            BACKUP_DIR=str(self.workdir / "backups"), PYTHONUNBUFFERED="1",
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH", "")])),
        )
        import django
        from django.core.management import call_command

        django.setup()
        call_command("migrate", interactive=False, verbosity=0)
        self.start_worker()
        log = self.workdir / "gunicorn.log"
        cmd = [sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "allumi.wsgi:application"]
        self.web = self.children.start(cmd, dict(os.environ, GUNICORN_BIND=f"127.0.0.1:{self.port}"), log)
        if not wait_until(lambda: call(self.port, "GET", "/healthz")[0] == 200, 60):
            raise FaultError(f"gunicorn did not answer /healthz:\n{tail(log)}")

    def start_worker(self) -> None:
        self.workers_started += 1
        n = self.workers_started
        log = self.workdir / f"celery-{n}.log"
        cmd = [
            sys.executable, "-m", "celery", "-A", "allumi", "worker", "--beat", "--concurrency=2", "--loglevel=info",
            f"--schedule={self.workdir / f'beat-schedule-{n}'}", f"--hostname=faults{n}@%h",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]
        self.worker = self.children.start(cmd, os.environ.copy(), log)
        if not wait_until(lambda: self.worker.poll() is None and re.search(r"ready\.", log.read_text(errors="replace")), 90):
            raise FaultError(f"celery worker not ready:\n{tail(log)}")

    def worker_death(self) -> str:
        if self.worker.poll() is None:
            return ""
        log = self.workdir / f"celery-{self.workers_started}.log"
        fatal = re.findall(r"(?:CRITICAL|Unrecoverable error).*|^\w*Error: .*", log.read_text(errors="replace"), re.MULTILINE)
        return f" (it exited with {self.worker.returncode}: {' / '.join(dict.fromkeys(fatal[-3:]))}; {log.name})"

    def kill_worker(self) -> None:
        self.children.stop(self.worker, sig=signal.SIGKILL)

    def ensure_up(self) -> None:
        """After a failed scenario: every service running again for the next one."""
        if not self.pg.running():
            self.pg.start()
        if not self.redis.running():
            self.redis.start()
        if self.worker is None or self.worker.poll() is not None:
            self.start_worker()

    def provision(self, scenario: str) -> dict:
        secret = "ws_" + secrets.token_urlsafe(24)
        cmd = [sys.executable, "manage.py", "create_creator", "--email", f"faults-{scenario}-{self.nonce}@allumi.invalid", "--whop-secret", secret, "--json"]
        proc = subprocess.run(cmd, cwd=ROOT, env=os.environ.copy(), capture_output=True, text=True, timeout=120, check=False)
        if proc.returncode != 0:
            raise FaultError(f"create_creator exited with {proc.returncode}: {proc.stderr}")
        creds = json.loads(proc.stdout.strip().splitlines()[-1])
        creds["creator_id"] = int(creds["creator_id"])
        return creds

    def create_links(self, creds: dict, count: int) -> list[dict]:
        links = []
        for n in range(count):
            body = json.dumps({"url": f"https://shop.example.com/p/{n}?ref=faults", "title": f"faults {n}"}).encode()
            status, _, data = call(self.port, "POST", "/api/v1/links", body=body, headers=auth(creds))
            if status != 201:
                raise FaultError(f"POST /api/v1/links answered {status}: {data[:300]!r}")
            links.append(json.loads(data))
        return links

    def close(self) -> None:
        self.children.stop_all()
        with contextlib.suppress(FaultError, OSError, subprocess.SubprocessError):
            if self.pg.running():
                self.pg.stop()
        shutil.rmtree(self.pg.data, ignore_errors=True)


# --- HTTP -----------------------------------------------------------------------------------


@dataclass
class Outcome:
    kind: str
    started: float
    ended: float
    status: int | str  # an HTTP status, or the name of the exception a request ended with
    key: str = ""  # click id of a redirect, external id of a track call
    cookie: str = ""

    @property
    def error(self) -> bool:
        return not isinstance(self.status, int) or self.status >= 500


def call(port: int, method: str, path: str, *, body: bytes | None = None, headers: dict | None = None, timeout: float = 15.0):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"User-Agent": USER_AGENT, "Accept-Language": "en-US,en;q=0.9", **(headers or {})})
        response = conn.getresponse()
        return response.status, response.msg, response.read()
    finally:
        conn.close()


def auth(creds: dict) -> dict:
    return {"Authorization": f"Bearer {creds['api_key']}", "Content-Type": "application/json"}


def redirect(port: int, short_id: str, cookie: str = "") -> Outcome:
    started = time.monotonic()
    try:
        status, headers, _ = call(port, "GET", f"/l/{short_id}", headers={"Cookie": f"allumi_vid={cookie}"} if cookie else None)
    except NETWORK_ERRORS as error:
        return Outcome("redirect", started, time.monotonic(), type(error).__name__)
    click_id = parse_qs(urlsplit(headers.get("Location", "")).query).get("allumi_cid", [""])[0]
    set_cookie = next((value for value in headers.get_all("Set-Cookie") or [] if value.startswith("allumi_vid=")), "")
    return Outcome("redirect", started, time.monotonic(), status, click_id, set_cookie.split(";")[0].partition("=")[2])


def track(port: int, creds: dict, external_id: str, click_id: str = "") -> Outcome:
    payload = {"event": "purchase", "external_id": external_id, "amount": "10.00", **({"click_id": click_id} if click_id else {})}
    started = time.monotonic()
    try:
        status, _, _ = call(port, "POST", "/api/v1/conversions/track", body=json.dumps(payload).encode(), headers=auth(creds))
    except NETWORK_ERRORS as error:
        status = type(error).__name__
    return Outcome("track", started, time.monotonic(), status, external_id)


def run_all(fn, items, threads: int = 8) -> list:
    with ThreadPoolExecutor(threads) as pool:
        return list(pool.map(fn, items))


def under_load(fn, *, rate: float, duration: float, fault, threads: int = 32) -> tuple[list[Outcome], float, float, float]:
    """fn() about `rate` times a second for `duration` s while fault(start) runs here and returns
    the monotonic times the service went down and came back. No catching up after a slow
    request: the load stays at most `rate`."""
    outcomes: list[Outcome] = []
    started = time.monotonic()

    def loop(n: int) -> None:
        next_at = started + n / rate
        while next_at < started + duration:
            time.sleep(max(0.0, next_at - time.monotonic()))
            outcomes.append(fn())
            next_at = max(next_at + threads / rate, time.monotonic())

    with ThreadPoolExecutor(threads) as pool:
        futures = [pool.submit(loop, n) for n in range(threads)]
        down, up = fault(started)
        for future in futures:
            future.result()
    return outcomes, started, down, up


def outage(started: float, at: float, seconds: float, stop, start) -> tuple[float, float]:
    time.sleep(max(0.0, started + at - time.monotonic()))
    down = time.monotonic()
    stop()
    time.sleep(max(0.0, down + seconds - time.monotonic()))
    start()
    return down, time.monotonic()


def sign(secret: str, webhook_id: str, timestamp: int, body: bytes) -> str:
    """Whop's Standard Webhooks signature (../shared/whop/verify_example.py)."""
    digest = hmac.new(secret.encode(), f"{webhook_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


# --- reading the database -------------------------------------------------------------------


def fresh() -> None:
    """This process keeps no connection across a fault: a restarted server broke the old one."""
    from django.db import connections

    connections.close_all()


def clicks_stored(links: list[dict]) -> int:
    from attribution.models import Click

    fresh()
    return Click.objects.filter(link_id__in=[link["id"] for link in links]).count()


def statuses(creator_id: int) -> Counter:
    from django.db.models import Count

    from attribution.models import Conversion

    fresh()
    return Counter({row["status"]: row["n"] for row in Conversion.objects.filter(creator_id=creator_id).values("status").annotate(n=Count("id"))})


def drain_clicks(stack: Stack, timeout: float = 120.0) -> str:
    """Wait for beat's flusher to empty the click buffer; flush here if it makes no progress."""
    from attribution.buffer import CLICK_BUFFER_KEY
    from attribution.services import clicks_flush

    started = time.monotonic()
    client = stack.redis.client()
    last, changed = client.llen(CLICK_BUFFER_KEY), time.monotonic()
    while last:
        if time.monotonic() - changed > 20 or time.monotonic() - started > timeout:
            fresh()
            while client.llen(CLICK_BUFFER_KEY):
                clicks_flush() or time.sleep(0.2)
            return f"flushed here after the flusher stalled ({time.monotonic() - started:.1f} s)"
        time.sleep(0.25)
        now = client.llen(CLICK_BUFFER_KEY)
        if now != last:
            last, changed = now, time.monotonic()
    return f"drained by the flusher in {time.monotonic() - started:.1f} s"


def wait_attributed(creator_id: int, timeout: float) -> tuple[bool, float, Counter]:
    started = time.monotonic()
    done = wait_until(lambda: statuses(creator_id).get("pending", 0) == 0, timeout, interval=1.0)
    return done, time.monotonic() - started, statuses(creator_id)


# --- reporting ------------------------------------------------------------------------------


class Report:
    def __init__(self, name: str, plan: str):
        self.name, self.checks = name, []
        print(f"\n== {name} " + "=" * (90 - len(name)), flush=True)
        self.figure("plan", plan)

    def figure(self, label: str, text: str) -> None:
        print(f"  {label:<10} {text}", flush=True)

    def check(self, ok: bool, text: str) -> None:
        self.checks.append(ok)
        print(f"  {'PASS' if ok else 'FAIL'}  {text}", flush=True)

    @property
    def ok(self) -> bool:
        return bool(self.checks) and all(self.checks)


def latency(outcomes: list[Outcome]) -> str:
    times = sorted(o.ended - o.started for o in outcomes) or [0.0]
    return f"latency p50 {times[len(times) // 2] * 1000:.0f} ms, p99 {times[len(times) * 99 // 100] * 1000:.0f} ms, max {times[-1] * 1000:.0f} ms"


def answers(outcomes: list[Outcome]) -> str:
    return ", ".join(f"{status}: {n}" for status, n in sorted(Counter(o.status for o in outcomes).items(), key=str)) or "none"


def during(outcome: Outcome, down: float, up: float) -> bool:
    return outcome.ended >= down and outcome.started <= up + GRACE


# --- scenarios ------------------------------------------------------------------------------


def redis_down(stack: Stack, args, report: Report) -> None:
    creds = stack.provision("redis-down")
    links = stack.create_links(creds, 3)
    at = (args.duration - args.redis_outage) / 2
    report.figure("setup", f"creator {creds['creator_id']}, links {', '.join(link['short_id'] for link in links)}")
    outcomes, started, down, up = under_load(
        lambda: redirect(stack.port, random.choice(links)["short_id"]), rate=args.rate, duration=args.duration,
        fault=lambda start: outage(start, at, args.redis_outage, lambda: stack.redis.stop(args.redis_stop), stack.redis.start),
    )
    report.figure("timeline", f"Redis stopped ({args.redis_stop}) at {down - started:.1f} s, answering again at {up - started:.1f} s; load ended at {time.monotonic() - started:.1f} s")
    drained = drain_clicks(stack)
    redirected = sum(o.status == 302 for o in outcomes)
    stored = clicks_stored(links)
    report.figure("sent", f"{len(outcomes)} redirects ({len(outcomes) / args.duration:.0f}/s; {latency(outcomes)}), {sum(during(o, down, up) for o in outcomes)} of them while Redis was down")
    report.figure("accepted", f"{redirected} answered 302; all answers: {answers(outcomes)}")
    report.figure("stored", f"{stored} clicks ({drained})")
    report.figure("lost", f"{max(redirected - stored, 0)} (302 without a stored click); {max(stored - redirected, 0)} clicks more than 302s")
    report.check(redirected == len(outcomes), f"every redirect answered 302 ({len(outcomes) - redirected} did not)")
    report.check(stored == redirected, f"clicks stored {stored} == redirects answered 302 {redirected}")


def postgres_restart(stack: Stack, args, report: Report) -> None:
    creds = stack.provision("postgres-restart")
    links = stack.create_links(creds, 3)
    numbers = itertools.count()
    at = (args.duration - args.postgres_outage) / 2

    def one() -> Outcome:
        if random.random() < args.track_share:
            return track(stack.port, creds, f"pg-{stack.nonce}-{next(numbers)}")
        return redirect(stack.port, random.choice(links)["short_id"])

    outcomes, started, down, up = under_load(
        one, rate=args.rate, duration=args.duration, fault=lambda start: outage(start, at, args.postgres_outage, stack.pg.stop, stack.pg.start)
    )
    report.figure("timeline", f"PostgreSQL stopped at {down - started:.1f} s, accepting again at {up - started:.1f} s; load ended at {time.monotonic() - started:.1f} s")
    drained = drain_clicks(stack)
    redirects = [o for o in outcomes if o.kind == "redirect"]
    tracks = [o for o in outcomes if o.kind == "track"]
    accepted = {o.key for o in tracks if isinstance(o.status, int) and 200 <= o.status < 300}
    from attribution.models import Conversion

    fresh()
    stored = set(Conversion.objects.filter(creator_id=creds["creator_id"]).values_list("external_id", flat=True))
    redirected = sum(o.status == 302 for o in redirects)
    clicks = clicks_stored(links)
    inside = [o for o in outcomes if o.error and during(o, down, up)]
    outside = [o for o in outcomes if o.error and not during(o, down, up)]
    attributed, seconds, by_status = wait_attributed(creds["creator_id"], args.pending_timeout)
    report.figure("sent", f"{len(redirects)} redirects, {len(tracks)} track calls ({len(outcomes) / args.duration:.0f}/s; {latency(outcomes)})")
    report.figure("accepted", f"redirects {answers(redirects)}; track {answers(tracks)}")
    report.figure("errors", f"while down (+{GRACE:.0f} s): redirects {answers([o for o in inside if o.kind == 'redirect'])}; track {answers([o for o in inside if o.kind == 'track'])}")
    report.figure("", f"outside the outage: {answers(outside)}")
    report.figure("stored", f"{clicks} clicks ({drained}); {len(stored)} conversions, {len(stored - accepted)} of them answered with an error; by status {dict(by_status)}")
    report.figure("lost", f"{max(redirected - clicks, 0)} clicks, {len(accepted - stored)} conversions")
    report.check(not outside, f"no error outside the outage ({len(outside)})")
    report.check(clicks == redirected, f"clicks stored {clicks} == redirects answered 302 {redirected}")
    report.check(not accepted - stored, f"every 2xx track call stored ({len(accepted)} accepted, {len(accepted - stored)} missing)")
    report.check(attributed, f"no conversion left pending ({by_status.get('pending', 0)} after {seconds:.0f} s)")


def worker_kill(stack: Stack, args, report: Report) -> None:
    from django.db.models import Count, Sum

    from allumi.accounts.models import Creator
    from attribution.conversions import recompute_start
    from attribution.credit import MODELS
    from attribution.models import Conversion, Credit, CreditLedger, Recompute

    creds = stack.provision("worker-kill")
    links = stack.create_links(creds, 4)
    n = args.conversions

    def person(i: int) -> tuple[Outcome, Outcome]:
        first = redirect(stack.port, links[i % 4]["short_id"])
        return first, redirect(stack.port, links[(i + 1 + i // 4) % 4]["short_id"], first.cookie)

    started = time.monotonic()
    people = run_all(person, range(n))
    drained = drain_clicks(stack)
    tracks = run_all(lambda i: track(stack.port, creds, f"wk-{stack.nonce}-{i}", people[i][1].key), range(n))
    attributed, seconds, by_status = wait_attributed(creds["creator_id"], args.pending_timeout)
    clicks = clicks_stored(links)
    redirected = sum(o.status == 302 for pair in people for o in pair)
    report.figure("setup", f"{2 * n} redirects ({redirected} answered 302, {clicks} clicks stored, {drained}), {n} track calls ({answers(tracks)}),"
                  f" attributed in {seconds:.0f} s after {time.monotonic() - started - seconds:.0f} s of requests: {dict(by_status)}")
    if not attributed or redirected != 2 * n or clicks != 2 * n:
        report.check(False, "setup: every click stored and every conversion attributed before the recompute")
        return

    recompute = recompute_start(creator=Creator.objects.get(pk=creds["creator_id"]))
    started = time.monotonic()

    def progress() -> Recompute:
        fresh()
        return Recompute.objects.get(pk=recompute.pk)

    wait_until(lambda: progress().done * 3 >= recompute.total or progress().finished_at, 300, interval=0.05)
    state = progress()
    if state.finished_at:
        report.check(False, f"the recompute finished before the kill ({state.done}/{state.total}): raise --conversions")
        return
    stack.kill_worker()
    killed, killed_wall = time.monotonic(), time.time()
    report.figure("kill", f"recompute {state.pk} of {state.total} conversions: SIGKILL to the worker's process group at {state.done}/{state.total}, {killed - started:.1f} s after recompute_start")
    stack.start_worker()
    ready = time.monotonic() - killed
    finished = wait_until(lambda: progress().finished_at is not None, args.recompute_timeout, interval=1.0)
    state = progress()
    broker = stack.redis.client()
    report.figure("resume", f"new worker ready {ready:.0f} s after the kill; " + (
        f"recompute finished {state.finished_at.timestamp() - killed_wall:.0f} s after the kill ({state.done}/{state.total}, {state.progress}%)" if finished else
        f"{args.recompute_timeout:.0f} s after the kill the recompute is at {state.done}/{state.total}; broker: {broker.llen('celery')} queued,"
        f" {broker.hlen('unacked')} unacked (a killed task's message comes back only after the visibility timeout)"))
    _, _, by_status = wait_attributed(creds["creator_id"], 0)
    fresh()
    conversions = Conversion.objects.filter(creator_id=creds["creator_id"])
    attributed_ids = set(conversions.filter(status=Conversion.Status.ATTRIBUTED).values_list("id", flat=True))
    sums = list(Credit.objects.filter(conversion__in=conversions).values("conversion_id", "model").annotate(total=Sum("weight"), rows=Count("id")))
    not_one = [row for row in sums if row["total"] != 1]
    per_conversion = Counter(row["conversion_id"] for row in sums)
    incomplete = [cid for cid in attributed_ids if per_conversion[cid] != len(MODELS)]
    stray = set(per_conversion) - attributed_ids
    credit_rows = Counter({(row["model"], row["link_id"]): row["n"] for row in Credit.objects.filter(conversion__in=conversions).values("model", "link_id").annotate(n=Count("id"))})
    ledger = Counter({(row["model"], row["link_id"]): row["n"] for row in CreditLedger.objects.filter(creator_id=creds["creator_id"]).values("model", "link_id").annotate(n=Sum("conversions")) if row["n"]})
    differing = {key for key in credit_rows.keys() | ledger.keys() if credit_rows[key] != ledger[key]}
    report.figure("sent", f"{n} conversions, recompute of {state.total}")
    report.figure("stored", f"conversions by status {dict(by_status)}; {sum(row['rows'] for row in sums)} credit rows over {len(per_conversion)} conversions")
    report.figure("lost", f"{by_status.get('pending', 0)} pending; per conversion and model, weights not summing to 1: {len(not_one)}; attributed without every model's credits {len(incomplete)};"
                  f" credits of unattributed conversions {len(stray)}; ledger differing from credits on {len(differing)} (model, link) pairs")
    report.check(finished and state.progress == 100, f"recompute finished within {args.recompute_timeout:.0f} s of the kill ({state.done}/{state.total})")
    report.check(not by_status.get("pending") and sum(by_status.values()) == n, f"every conversion attributed or unattributed ({dict(by_status)})")
    report.check(not not_one and not incomplete and not stray, "credits not doubled: weights sum to 1 per conversion and model")
    report.check(not differing, "the credit ledger (what rollups read) matches the credits")


def webhook_dup(stack: Stack, args, report: Report) -> None:
    from attribution.models import Conversion
    from billing.models import WhopEvent

    creds = stack.provision("webhook-dup")
    payload = json.loads((args.whop_samples / "payment.succeeded.json").read_text())
    payment_id = f"pay_faults{stack.nonce}"
    payload["id"], payload["data"]["id"] = f"evt_faults{stack.nonce}", payment_id
    payload["timestamp"] = time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime())
    body = json.dumps(payload).encode()
    webhook_ids = [f"msg_faults{stack.nonce}_same"] * 10 + [f"msg_faults{stack.nonce}_{n}" for n in range(10)]
    barrier = threading.Barrier(len(webhook_ids))

    def deliver(webhook_id: str) -> tuple[int | str, str]:
        barrier.wait()  # all twenty at the same moment
        timestamp = int(time.time())
        headers = {"Content-Type": "application/json", "webhook-id": webhook_id, "webhook-timestamp": str(timestamp),
                   "webhook-signature": sign(creds["whop_webhook_secret"], webhook_id, timestamp, body)}
        try:
            status, _, data = call(stack.port, "POST", creds["whop_webhook_url"], body=body, headers=headers)
        except NETWORK_ERRORS as error:
            return type(error).__name__, ""
        with contextlib.suppress(ValueError, AttributeError):
            return status, json.loads(data).get("status", "")
        return status, ""

    results = run_all(deliver, webhook_ids, threads=len(webhook_ids))
    events = WhopEvent.objects.filter(connection__creator_id=creds["creator_id"])
    processed = wait_until(lambda: not events.exclude(status=WhopEvent.Status.PROCESSED).exists(), 60, interval=0.5)
    per_id = Counter(events.values_list("webhook_id", flat=True))
    conversions = list(Conversion.objects.filter(creator_id=creds["creator_id"], external_id=payment_id).values_list("amount", "source", "status"))
    answered = Counter(status for status, _ in results)
    said = Counter(said for _, said in results)
    report.figure("sent", f"{len(webhook_ids)} deliveries of payment {payment_id}: {len(set(webhook_ids))} distinct webhook-ids (one of them ten times)")
    report.figure("accepted", f"answers {dict(answered)}; {dict(said)}")
    report.figure("stored", f"{sum(per_id.values())} events ({dict(Counter(events.values_list('status', flat=True)))}); conversions for the payment: {conversions}")
    report.figure("lost", f"{len(set(webhook_ids) - set(per_id))} webhook-ids without an event; {sum(n - 1 for n in per_id.values())} extra events")
    report.check(answered == {200: len(webhook_ids)} and said == {"received": 11, "duplicate": 9}, "every delivery answered 200: 11 received, 9 duplicate")
    report.check(set(per_id) == set(webhook_ids) and set(per_id.values()) == {1}, "exactly one stored event per webhook-id")
    report.check(len(conversions) == 1 and str(conversions[0][0]) == "49.00", "exactly one conversion for the payment id (49.00)")
    report.check(processed, "every event processed within 60 s")


def broker_down(stack: Stack, args, report: Report) -> None:
    creds = stack.provision("broker-down")
    links = stack.create_links(creds, 2)
    n = args.broker_conversions
    clicks = run_all(lambda i: redirect(stack.port, links[i % 2]["short_id"]), range(n))
    drain_clicks(stack)
    stack.redis.stop(args.redis_stop)
    down = time.monotonic()
    tracks = run_all(lambda i: track(stack.port, creds, f"bd-{stack.nonce}-{i}", clicks[i].key), range(n), threads=4)
    sent_for = time.monotonic() - down
    stack.redis.start()
    up = time.monotonic()
    from attribution.models import Conversion

    fresh()
    stored = set(Conversion.objects.filter(creator_id=creds["creator_id"]).values_list("external_id", flat=True))
    accepted = {o.key for o in tracks if o.status == 202}
    attributed, seconds, by_status = wait_attributed(creds["creator_id"], args.pending_timeout)
    report.figure("setup", f"{n} clicks on 2 links ({sum(o.status == 302 for o in clicks)} answered 302), then Redis stopped ({args.redis_stop})")
    report.figure("sent", f"{n} track calls with the click ids in {sent_for:.1f} s while Redis was down ({latency(tracks)});"
                  f" Redis back {up - down:.1f} s after the stop")
    report.figure("accepted", f"answers {answers(tracks)}")
    report.figure("stored", f"{len(stored)} conversions; {seconds:.0f} s after Redis came back: {dict(by_status)}")
    report.figure("lost", f"{len(accepted - stored)} accepted but not stored; {by_status.get('pending', 0)} still pending")
    report.check(len(accepted) == n, f"every track call answered 202 while the broker was down ({len(accepted)}/{n})")
    report.check(stored == accepted, f"every accepted conversion stored ({len(stored)})")
    report.check(attributed and by_status.get("attributed", 0) == n, f"all {n} attributed within {args.pending_timeout:.0f} s of Redis coming back (took {seconds:.0f} s)")


RUNNERS = {"redis-down": redis_down, "postgres-restart": postgres_restart, "worker-kill": worker_kill, "webhook-dup": webhook_dup, "broker-down": broker_down}
PLANS = {
    "redis-down": lambda a: f"{a.duration:.0f} s of redirects at {a.rate:.0f}/s on 3 links; Redis stopped ({a.redis_stop}) for {a.redis_outage:.0f} s in the middle",
    "postgres-restart": lambda a: f"{a.duration:.0f} s at {a.rate:.0f}/s, {a.track_share:.0%} track calls, the rest redirects; PostgreSQL stopped (fast) for {a.postgres_outage:.0f} s in the middle",
    "worker-kill": lambda a: f"{a.conversions} people x 2 clicks + 1 conversion, a creator recompute, SIGKILL to the worker (and its beat) a third of the way through",
    "webhook-dup": lambda a: "payment.succeeded x10 under one webhook-id and x10 under ten others, all at once",
    "broker-down": lambda a: f"{a.broker_conversions} track calls while Redis ({a.redis_stop}) is down",
}


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("scenarios", nargs="*", metavar="SCENARIO", help=f"any of {', '.join(SCENARIOS)} (default: all)")
    parser.add_argument("--rate", type=float, default=200.0, help="requests/s of the load during redis-down and postgres-restart (default 200)")
    parser.add_argument("--duration", type=float, default=25.0, help="seconds of load (default 25)")
    parser.add_argument("--redis-outage", type=float, default=10.0, help="seconds Redis stays down in redis-down (default 10)")
    parser.add_argument("--postgres-outage", type=float, default=5.0, help="seconds PostgreSQL stays down (default 5)")
    parser.add_argument("--redis-stop", choices=("save", "kill"), default="save", help="SHUTDOWN SAVE and restart from the dump (default), or SIGKILL (a crash)")
    parser.add_argument("--track-share", type=float, default=0.25, help="share of track calls in postgres-restart's load (default 0.25)")
    parser.add_argument("--conversions", type=int, default=3000, help="conversions in worker-kill (default 3000)")
    parser.add_argument("--broker-conversions", type=int, default=40, help="track calls in broker-down (default 40)")
    parser.add_argument("--recompute-timeout", type=float, default=300.0, help="seconds a new worker has to finish the recompute (default 300)")
    parser.add_argument("--pending-timeout", type=float, default=180.0, help="seconds for conversions to leave pending (default 180)")
    parser.add_argument("--whop-samples", type=Path, default=SAMPLES, help="directory of the Whop sample payloads (default ../shared/whop)")
    args = parser.parse_args(argv)
    unknown = set(args.scenarios) - set(SCENARIOS)
    if unknown:
        parser.error(f"unknown scenario {', '.join(sorted(unknown))}; choose from {', '.join(SCENARIOS)}")
    chosen = [name for name in SCENARIOS if name in args.scenarios] or list(SCENARIOS)
    for tool in ("redis-server", "pg_config", *(["runuser"] if os.geteuid() == 0 else [])):
        if not shutil.which(tool):
            print(f"faults: {tool} is not on PATH", file=sys.stderr)
            return 2

    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(tempfile.mkdtemp(prefix="allumi-faults-"))
    stack = None
    results: dict[str, bool] = {}
    try:
        stack = Stack(workdir)
        stack.setup()
        print(f"private PostgreSQL on 127.0.0.1:{stack.pg.port} ({stack.pg.bindir}), Redis on 127.0.0.1:{stack.redis.port},"
              f" gunicorn on 127.0.0.1:{stack.port}, celery worker --beat; logs in {workdir}", flush=True)
        for name in chosen:
            report = Report(name, PLANS[name](args))
            try:
                RUNNERS[name](stack, args, report)
            except (FaultError, *NETWORK_ERRORS) as error:
                report.check(False, f"could not complete: {error}")
            report.check(stack.worker.poll() is None, f"the Celery worker (with beat) is still running{stack.worker_death()}")
            stack.ensure_up()
            results[name] = report.ok
            print(f"  => {name} {'PASS' if report.ok else 'FAIL'}", flush=True)
    except FaultError as error:
        print(f"\nfaults: could not run: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping the private services", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish
        if stack is not None:
            stack.close()
    print("\nsummary: " + ", ".join(f"{name} {'PASS' if ok else 'FAIL'}" for name, ok in results.items()) + f"  (logs in {workdir})")
    return 0 if all(results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())
