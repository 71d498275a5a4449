"""Load test of the short-link redirect, `GET /l/<short_id>`, against a bare 302 view.

    .venv/bin/python bench/redirect.py [--duration 20] [--connections 32] [--links 10000]

What it does, all on loopback:

1. Production settings (DEBUG=false, a generated SECRET_KEY, no SSL redirect, no rate limits) on
   PostgreSQL (database created if missing, then migrated) and Redis (its database flushed first).
2. One bench creator with `--links` links (bulk-inserted, as setup is not what is measured; kept
   from run to run), its old clicks deleted; every link put in the shared link cache (steady state,
   `--cold-cache` to skip).
3. A click flusher beside the web server (`celery -A allumi worker --beat`, as in production; or a
   plain `clicks_flush()` loop, or none and a flush after the runs: `--flusher`), then gunicorn with
   `--config gunicorn.conf.py` on a free port of 127.0.0.1 serving `bench.settings`.
   Where the server runs with autovacuum off, the click and link tables are vacuumed and analyzed
   after the warm-up, and analyzed between runs when autovacuum's threshold says it would have.
4. wrk, `--connections` connections, each request to a random one of the links: first the bare view
   (b) `/bench/bare/<id>`, then the real redirect (a) `/l/<id>`; `--rounds` times.
5. gunicorn stopped, the click buffer drained, and the clicks stored for the bench creator compared
   with the requests wrk sent during the real runs: wrk's "N requests" counts completed responses;
   the Lua script also counts the requests written, which include the one in flight on each
   connection when wrk stops (the server still answers and records them).

Printed per run: requests/s, latency percentiles, status codes, CPU seconds per process group (and
of the whole machine, so that load from other processes shows), bench database activity.

Exit status: 0 when every real request answered 302 and was stored exactly once, 1 when not, 2 when
the benchmark could not run; with `--strict` also 3 when a performance target is missed.
"""

import argparse
import contextlib
import http.client
import os
import re
import resource
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
# Run as `python bench/redirect.py`: import from the project root, not from bench/.
if sys.path and Path(sys.path[0] or ".").resolve() == Path(__file__).resolve().parent:
    sys.path[0] = str(ROOT)
elif str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.autovacuum import autovacuum_stand_in  # noqa: E402 (after the path fix)

BENCH_EMAIL = "bench-redirect@allumi.invalid"
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/allumi_bench"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/2"
BENCH_USER_AGENT = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
    "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1"
)
LOOPBACK = {"127.0.0.1", "localhost", "::1"}

TARGET_RATIO = 0.6  # requests/s of (a) over (b)
TARGET_P99 = 1.5  # p99 of (a) at most this many times p99 of (b)

# One request per call to request(): a random short id under the path prefix given after `--`.
# Every thread counts what it sent and the status codes it got; done() adds them up.
LUA_TEMPLATE = """
local ids = {%(ids)s}
local count = #ids
local threads = {}
local prefix = "/l/"

function setup(thread)
  table.insert(threads, thread)
  thread:set("thread_no", #threads)
end

function init(args)
  prefix = args[1] or prefix
  math.randomseed(os.time() * 1000 + thread_no * 7919)
  for _ = 1, 10 do math.random() end
  wrk.headers["User-Agent"] = "%(user_agent)s"
  wrk.headers["Accept-Language"] = "en-US,en;q=0.9"
  wrk.headers["Accept-Encoding"] = "gzip, deflate, br"
  sent, s302, s2xx, s3xx, s4xx, s5xx = 0, 0, 0, 0, 0, 0
end

function request()
  sent = sent + 1
  return wrk.format("GET", prefix .. ids[math.random(count)])
end

function response(status, headers, body)
  if status == 302 then s302 = s302 + 1
  elseif status < 300 then s2xx = s2xx + 1
  elseif status < 400 then s3xx = s3xx + 1
  elseif status < 500 then s4xx = s4xx + 1
  else s5xx = s5xx + 1 end
end

function done(summary, latency, requests)
  local total = {sent = 0, s302 = 0, s2xx = 0, s3xx = 0, s4xx = 0, s5xx = 0}
  for _, thread in ipairs(threads) do
    for name, _ in pairs(total) do total[name] = total[name] + (thread:get(name) or 0) end
  end
  -- wrk calls request() once on the first thread before any connection, to check the script
  -- (script_verify_request): that request is never sent.
  total.sent = total.sent - 1
  io.write(string.format("BENCH sent=%%d s302=%%d s2xx=%%d s3xx=%%d s4xx=%%d s5xx=%%d\\n",
    total.sent, total.s302, total.s2xx, total.s3xx, total.s4xx, total.s5xx))
end
"""


class BenchError(Exception):
    pass


# --- child processes ------------------------------------------------------------------------


class Children:
    """The processes this script started, each in its own session (so Ctrl-C in the terminal
    reaches only this script, which then stops them in order, within a bounded time)."""

    def __init__(self):
        self._procs: list[tuple[str, subprocess.Popen]] = []

    def start(self, name: str, cmd: list[str], *, env: dict, log_path: Path | None = None) -> subprocess.Popen:
        stdout = subprocess.PIPE if log_path is None else open(log_path, "ab")  # noqa: SIM115 (closed below)
        proc = subprocess.Popen(
            cmd, cwd=ROOT, env=env, stdout=stdout, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        if stdout is not subprocess.PIPE:
            stdout.close()
        self._procs.append((name, proc))
        return proc

    def stop(self, proc: subprocess.Popen, *, sig=signal.SIGTERM, grace: float = 10.0) -> None:
        """`sig` to the process, SIGKILL to its process group after `grace` seconds."""
        if proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(proc.pid, sig)
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(timeout=grace)
        # Anything left in the group (a worker whose master is gone, or the master itself).
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(proc.pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            proc.wait(timeout=5)
        self._procs = [(name, p) for name, p in self._procs if p is not proc]

    def forget(self, proc: subprocess.Popen) -> None:
        """A child that has exited and been waited for."""
        self._procs = [(name, p) for name, p in self._procs if p is not proc]

    def stop_all(self) -> None:
        for _name, proc in reversed(list(self._procs)):
            self.stop(proc, grace=8.0)


def _on_sigterm(signum, frame):
    raise KeyboardInterrupt


# --- environment ----------------------------------------------------------------------------


def check_loopback(url: str, what: str) -> None:
    host = urlsplit(url).hostname or ""
    if host not in LOOPBACK:
        raise BenchError(f"{what} must point at this machine's loopback, not {host!r}")


def bench_environment(args) -> dict:
    env = os.environ.copy()
    for name in ("GUNICORN_ACCESS_LOG", "GUNICORN_BIND", "SENTRY_DSN", "TRUSTED_PROXIES"):
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


def flush_redis(redis_url: str) -> None:
    import redis

    client = redis.Redis.from_url(redis_url, socket_connect_timeout=2, socket_timeout=5)
    client.flushdb()
    client.close()


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


# --- data -----------------------------------------------------------------------------------


def load_links(count: int) -> tuple[int, list[str]]:
    """The bench creator's id and the short ids of `count` of its links (created when missing).

    Links are kept from run to run (rollups and other tables refer to them); their clicks are not.
    """
    from django.db import connection, transaction

    from allumi.accounts.keys import random_base62
    from allumi.accounts.models import Creator
    from attribution.models import Click
    from links.models import Link
    from links.services import SHORT_ID_LENGTH

    creator, created = Creator.objects.get_or_create(email=BENCH_EMAIL, defaults={"name": "Redirect benchmark"})
    if created:
        creator.set_unusable_password()
        creator.save(update_fields=["password"])
    # A plain DELETE: QuerySet.delete() would collect every row of every table that refers to
    # clicks first, and only the bench creator's clicks are meant to go.
    with transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(f"DELETE FROM {Click._meta.db_table} WHERE creator_id = %s", [creator.id])  # noqa: S608
        old_clicks = cursor.rowcount
    if old_clicks:
        print(f"cleared {old_clicks} old bench clicks")

    kept = list(Link.objects.filter(creator=creator).order_by("id").values_list("id", "short_id")[:count])
    Link.objects.filter(id__in=[link_id for link_id, _ in kept]).update(is_active=True, expires_at=None, archived_at=None)
    short_ids = {short_id for _, short_id in kept}
    new_ids: set[str] = set()
    while len(short_ids) + len(new_ids) < count:
        wanted = count - len(short_ids) - len(new_ids)
        candidates = {random_base62(SHORT_ID_LENGTH) for _ in range(wanted + 16)} - new_ids
        taken = set(Link.objects.filter(short_id__in=candidates).values_list("short_id", flat=True))
        new_ids.update(list(candidates - taken)[:wanted])
    first = len(short_ids)
    links = [
        Link(
            creator=creator,
            short_id=short_id,
            url=f"https://shop.example.com/products/{number}?ref=bench#buy",
            title=f"Bench link {number}",
            utm_source="bench",
            utm_medium="social",
            utm_campaign="redirect-benchmark",
        )
        for number, short_id in enumerate(sorted(new_ids), start=first)
    ]
    Link.objects.bulk_create(links, batch_size=2000)
    if links:
        print(f"created {len(links)} bench links")
    return creator.id, sorted(short_ids | new_ids)


def database_activity() -> dict[str, int]:
    """Counters of the bench database: transactions, rows read, rows inserted (all sessions)."""
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT xact_commit + xact_rollback, tup_returned + tup_fetched, tup_inserted"
            " FROM pg_stat_database WHERE datname = current_database()"
        )
        transactions, rows_read, rows_inserted = cursor.fetchone()
    connection.close()  # the figures are per session until it ends or a second has passed
    return {"transactions": transactions, "rows read": rows_read, "rows inserted": rows_inserted}


AUTOVACUUM_TABLES = ("attribution_click", "links_link")


def bench_click_count(creator_id: int) -> int:
    from attribution.models import Click

    return Click.objects.filter(creator_id=creator_id).count()


def buffer_length() -> int:
    from attribution.services import clicks_buffered

    return clicks_buffered()


def drain_buffer(flusher: subprocess.Popen | None, *, timeout: float) -> tuple[int, str]:
    """Wait for the flusher to empty the click buffer; flush here when there is none, it has
    died, or it makes no progress for 15 s. Returns (clicks left, how it was drained)."""
    from attribution.services import clicks_flush

    how = "flusher"
    deadline = time.monotonic() + timeout
    last, last_change = buffer_length(), time.monotonic()
    while last > 0:
        stalled = time.monotonic() - last_change > 15
        if flusher is None or flusher.poll() is not None or stalled or time.monotonic() > deadline:
            how = "flusher, then clicks_flush() here" if flusher is not None else "clicks_flush() here"
            while buffer_length() > 0 and time.monotonic() < deadline + 300:
                if not clicks_flush():
                    time.sleep(0.2)  # another flusher holds the lock
            return buffer_length(), how
        time.sleep(0.25)
        now = buffer_length()
        if now != last:
            last, last_change = now, time.monotonic()
    return last, how


def flush_loop() -> None:
    """`--flusher loop`: call clicks_flush() until stopped (what the beat task does, without Celery)."""
    import django

    signal.signal(signal.SIGTERM, _on_sigterm)
    django.setup()
    from attribution.services import clicks_flush

    print("flush loop ready", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        while True:
            if not clicks_flush():
                time.sleep(0.2)


# --- HTTP -----------------------------------------------------------------------------------


def http_get(port: int, path: str, timeout: float = 2.0) -> tuple[int, dict]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path, headers={"User-Agent": BENCH_USER_AGENT})
        response = conn.getresponse()
        response.read()
        return response.status, {name.lower(): value for name, value in response.getheaders()}
    finally:
        conn.close()


def wait_healthy(port: int, proc: subprocess.Popen, log_path: Path, timeout: float = 40.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"gunicorn exited with {proc.returncode}:\n{tail(log_path)}")
        with contextlib.suppress(OSError, http.client.HTTPException):
            status, _ = http_get(port, "/healthz", timeout=1.0)
            if status == 200:
                return
        time.sleep(0.2)
    raise BenchError(f"gunicorn did not answer /healthz within {timeout:.0f}s:\n{tail(log_path)}")


def wait_for_line(proc: subprocess.Popen, log_path: Path, pattern: str, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise BenchError(f"{what} exited with {proc.returncode}:\n{tail(log_path)}")
        if re.search(pattern, log_path.read_text(errors="replace")):
            return
        time.sleep(0.2)
    raise BenchError(f"{what} was not ready within {timeout:.0f}s:\n{tail(log_path)}")


def tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# --- wrk ------------------------------------------------------------------------------------

_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _ms(value: str, unit: str) -> float:
    return float(value) * _UNITS_MS[unit]


def parse_wrk(output: str) -> dict:
    def find(pattern: str) -> re.Match:
        match = re.search(pattern, output, re.MULTILINE)
        if match is None:
            raise BenchError(f"unexpected wrk output (no match for {pattern!r}):\n{output}")
        return match

    result = {
        "rps": float(find(r"^Requests/sec:\s+([\d.]+)").group(1)),
        "requests": int(find(r"^\s*(\d+) requests in ([\d.]+)(us|ms|s|m|h)").group(1)),
    }
    elapsed = find(r"^\s*\d+ requests in ([\d.]+)(us|ms|s|m|h)")
    result["elapsed_s"] = _ms(elapsed.group(1), elapsed.group(2)) / 1000
    for pct in ("50", "75", "90", "99"):
        match = find(rf"^\s*{pct}(?:\.0+)?%\s+([\d.]+)(us|ms|s|m|h)")
        result[f"p{pct}_ms"] = _ms(match.group(1), match.group(2))
    non_ok = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    result["non_2xx_3xx"] = int(non_ok.group(1)) if non_ok else 0
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    result["socket_errors"] = dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()), strict=True)) if errors else {}
    counts = find(r"^BENCH (.*)$").group(1)
    result.update({key: int(value) for key, value in (item.split("=") for item in counts.split())})
    return result


# --- CPU accounting -----------------------------------------------------------------------

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
        self.used["other"] = self.used["all"] - sum(value for name, value in self.used.items() if name != "all")
        self.used["capacity"] = elapsed * (os.cpu_count() or 1)
        return False

    def summary(self) -> str:
        parts = [f"{name} {self.used[name]:.1f}" for name in (*self.groups, "wrk", *SERVICES, "other")]
        return f"{', '.join(parts)} of {self.used['capacity']:.1f} CPU s ({self.used['all'] / self.used['capacity']:.0%} busy)"


def run_wrk(children: Children, env: dict, *, port: int, prefix: str, lua: Path, args, duration: float) -> dict:
    cmd = [
        args.wrk, f"--threads={args.threads}", f"--connections={args.connections}", f"--duration={max(1, round(duration))}s",
        "--timeout=5s", "--latency", f"--script={lua}", f"http://127.0.0.1:{port}/", "--", prefix,
    ]
    proc = children.start("wrk", cmd, env=env)
    try:
        output, _ = proc.communicate(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        children.stop(proc, sig=signal.SIGKILL, grace=1)
        raise BenchError("wrk did not finish in time") from None
    children.forget(proc)
    text = output.decode(errors="replace")
    if proc.returncode != 0:
        raise BenchError(f"wrk exited with {proc.returncode}:\n{text}")
    result = parse_wrk(text)
    result["raw"] = text
    return result


# --- report ---------------------------------------------------------------------------------


def verdict(ok: bool) -> str:
    return "PASS" if ok else "FAIL"


def describe(label: str, result: dict) -> str:
    errors = sum(result["socket_errors"].values())
    other = result["s2xx"] + result["s3xx"] + result["s4xx"] + result["s5xx"]
    return (
        f"  {label:<22} {result['rps']:>9.1f} {result['p50_ms']:>8.2f} {result['p90_ms']:>8.2f} {result['p99_ms']:>8.2f}"
        f" {result['requests']:>10d} {result['sent']:>8d} {result['s302']:>8d} {other:>6d} {errors:>6d}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--duration", type=float, default=20.0, help="seconds per measured run (default 20)")
    parser.add_argument("--connections", type=int, default=32, help="wrk connections (default 32)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads (default 2)")
    parser.add_argument("--links", type=int, default=10_000, help="links of the bench creator (default 10000)")
    parser.add_argument("--rounds", type=int, default=1, help="bare-then-real pairs to run (default 1)")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of warm-up per endpoint (default 3)")
    parser.add_argument(
        "--flusher", choices=("celery", "loop", "after"), default="celery",
        help="drain the click buffer during the runs with `celery worker --beat` (default), with a plain "
        "clicks_flush() loop, or only after the runs",
    )
    parser.add_argument(
        "--cold-cache", action="store_true",
        help="do not put the links in the shared cache first (first clicks then read PostgreSQL)",
    )
    parser.add_argument("--database-url", default=os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL))
    parser.add_argument("--redis-url", default=os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL))
    parser.add_argument("--wrk", default="wrk", help="the wrk executable")
    parser.add_argument("--strict", action="store_true", help="also exit non-zero (3) when a performance target is missed")
    parser.add_argument("--show-wrk", action="store_true", help="print wrk's own output for every run")
    parser.add_argument("--flush-loop", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    if args.flush_loop:
        flush_loop()
        return 0

    children = Children()
    signal.signal(signal.SIGTERM, _on_sigterm)
    signal.signal(signal.SIGINT, signal.default_int_handler)  # even when started with SIGINT ignored
    try:
        return run(args, children)
    except BenchError as error:
        print(f"\nbenchmark failed: {error}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("\ninterrupted; stopping child processes", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)  # let the clean-up finish (it is bounded)
        children.stop_all()


def run(args, children: Children) -> int:
    if args.links < 1 or args.connections < 1 or args.threads < 1 or args.rounds < 1 or args.duration < 1:
        raise BenchError("--links, --connections, --threads, --rounds and --duration must be positive")
    args.wrk = shutil.which(args.wrk) or ""
    if not args.wrk:
        raise BenchError("wrk is not on PATH")
    check_loopback(args.database_url, "--database-url")
    check_loopback(args.redis_url, "--redis-url")

    env = bench_environment(args)
    os.environ.update({name: env[name] for name in (
        "DJANGO_SETTINGS_MODULE", "DEBUG", "SECRET_KEY", "ALLOWED_HOSTS", "SECURE_SSL_REDIRECT", "RATELIMIT_ENABLE",
        "DATABASE_URL", "REDIS_URL", "SITE_URL", "LOG_LEVEL",
    )})
    for name in ("SENTRY_DSN", "TRUSTED_PROXIES"):
        os.environ.pop(name, None)
    workdir = Path(tempfile.mkdtemp(prefix="allumi-bench-"))

    # 1. database and Redis
    started = time.monotonic()
    ensure_database(args.database_url)
    flush_redis(args.redis_url)
    import django
    from django.core.management import call_command

    django.setup()
    call_command("migrate", interactive=False, verbosity=0)

    # 2. links
    creator_id, short_ids = load_links(args.links)
    from django.db import connection

    # Steady state: every link in the shared cache, as it is while a link gets clicks (the shared
    # TTL is minutes); each worker's own short-lived copies start empty, as after a deploy.
    if not args.cold_cache:
        from links.cache import link_cache_clear_local, link_entry

        primed = time.monotonic()
        for short_id in short_ids:
            link_entry(short_id)
        link_cache_clear_local()
        print(f"primed the shared link cache in {time.monotonic() - primed:.1f}s")
    connection.close()
    lua = workdir / "redirect.lua"
    lua.write_text(LUA_TEMPLATE % {"ids": ",".join(f'"{short_id}"' for short_id in short_ids), "user_agent": BENCH_USER_AGENT})
    print(f"setup: {len(short_ids)} links for creator {creator_id} in {time.monotonic() - started:.1f}s")

    # 3. flusher and web server
    flusher = None
    if args.flusher == "celery":
        log = workdir / "celery.log"
        flusher = children.start("celery", [
            sys.executable, "-m", "celery", "-A", "allumi", "worker", "--beat", "--pool=solo", "--loglevel=info",
            f"--schedule={workdir / 'celerybeat-schedule'}", "--without-gossip", "--without-mingle", "--without-heartbeat",
        ], env=env, log_path=log)
        wait_for_line(flusher, log, r"ready\.", 60, "celery worker")
    elif args.flusher == "loop":
        log = workdir / "flusher.log"
        flusher = children.start("flusher", [sys.executable, str(Path(__file__).resolve()), "--flush-loop"], env=env, log_path=log)
        wait_for_line(flusher, log, r"flush loop ready", 60, "flush loop")

    port = free_port()
    gunicorn_log = workdir / "gunicorn.log"
    web_env = dict(env, GUNICORN_BIND=f"127.0.0.1:{port}")
    gunicorn = children.start("gunicorn", [
        sys.executable, "-m", "gunicorn", "--config", "gunicorn.conf.py", "allumi.wsgi:application",
    ], env=web_env, log_path=gunicorn_log)
    wait_healthy(port, gunicorn, gunicorn_log)
    workers = env.get("WEB_CONCURRENCY") or f"{os.cpu_count() * 2} (2 x {os.cpu_count()} cores)"
    print(f"gunicorn on 127.0.0.1:{port}, workers {workers}, flusher: {args.flusher}, wrk {args.threads} threads x {args.connections} connections")

    # One request each by hand: the real redirect must answer 302 to the link, with a click id and a cookie.
    status, headers = http_get(port, f"/l/{short_ids[0]}")
    location = headers.get("location", "")
    if status != 302 or "allumi_cid=c_" not in location or "utm_source=bench" not in location or "allumi_vid=" not in headers.get("set-cookie", ""):
        raise BenchError(f"/l/{short_ids[0]} answered {status} {headers}")
    status, headers = http_get(port, f"/bench/bare/{short_ids[0]}")
    if status != 302 or not headers.get("location"):
        raise BenchError(f"/bench/bare/{short_ids[0]} answered {status} {headers}")
    print(f"check: /l/{short_ids[0]} -> 302 {location}")

    # Warm-up: every worker imports its code paths and fills its caches.
    for prefix in ("/bench/bare/", "/l/"):
        if args.warmup > 0:
            run_wrk(children, env, port=port, prefix=prefix, lua=lua, args=args, duration=args.warmup)
    time.sleep(1.0)  # requests still in flight when wrk stopped
    left, _ = drain_buffer(flusher, timeout=120)
    if left:
        raise BenchError(f"the click buffer did not drain after the warm-up ({left} left)")
    if autovacuum_stand_in(AUTOVACUUM_TABLES, vacuum=True):
        print("autovacuum is off on this server: VACUUM ANALYZE of the click and link tables now, ANALYZE between"
              " runs where autovacuum would have run it")
    baseline = bench_click_count(creator_id)
    connection.close()

    # Anything else keeping the cores busy makes every figure below meaningless: say so.
    flusher_name = "celery" if args.flusher == "celery" else "flusher"
    with CpuMeter({"gunicorn": gunicorn, flusher_name: flusher}) as idle:
        time.sleep(2.0)
    background = idle.used["other"] / idle.used["capacity"]
    print(f"background load before the runs: {background:.0%} of the machine (not this benchmark's processes)")
    if background > 0.10:
        print("WARNING: other processes are using the CPU; requests/s will be low and noisy", flush=True)

    # 4. measured runs, alternating
    runs: list[tuple[str, dict]] = []
    buffer_after_real: list[int] = []
    for round_no in range(1, args.rounds + 1):
        for kind, prefix in (("bare", "/bench/bare/"), ("real", "/l/")):
            print(f"run {round_no}: {kind} {prefix}<id> for {args.duration:.0f}s ...", flush=True)
            database_before = database_activity()
            with CpuMeter({"gunicorn": gunicorn, flusher_name: flusher}) as meter:
                result = run_wrk(children, env, port=port, prefix=prefix, lua=lua, args=args, duration=args.duration)
            result["cpu"] = meter
            if kind == "real":
                buffer_after_real.append(buffer_length())
            time.sleep(1.2)  # PostgreSQL publishes a backend's statistics at most once a second
            result["db"] = {name: value - database_before[name] for name, value in database_activity().items()}
            autovacuum_stand_in(AUTOVACUUM_TABLES)
            connection.close()  # as database_activity() does: its figures are per session
            runs.append((f"{kind} {round_no}", result))
            if args.show_wrk:
                print(result["raw"])

    # 5. stop the web server (graceful: requests it accepted finish), drain, count
    time.sleep(1.0)
    children.stop(gunicorn, sig=signal.SIGTERM, grace=15)
    drain_started = time.monotonic()
    left, drained_by = drain_buffer(flusher, timeout=120)
    drain_seconds = time.monotonic() - drain_started
    if flusher is not None:
        children.stop(flusher, grace=10)
    stored = bench_click_count(creator_id) - baseline
    connection.close()
    problems = [line for line in gunicorn_log.read_text(errors="replace").splitlines() if re.search(r"WARNING|ERROR|CRITICAL|Traceback", line)]

    # report
    bare = [result for label, result in runs if label.startswith("bare")]
    real = [result for label, result in runs if label.startswith("real")]
    print()
    print(f"  {'run':<22} {'req/s':>9} {'p50 ms':>8} {'p90 ms':>8} {'p99 ms':>8} {'completed':>10} {'sent':>8} {'302':>8} {'other':>6} {'sockerr':>6}")
    for label, result in runs:
        name = f"(b) bare  {label.split()[1]}" if label.startswith("bare") else f"(a) /l/   {label.split()[1]}"
        print(describe(name, result))
    print(
        "  CPU seconds per run (gunicorn = master + workers; celery = worker with beat, every scheduled task;"
        " postgres = all its databases; other = everything else):"
    )
    for label, result in runs:
        print(f"    {label:<8} {result['cpu'].summary()}")
    print("  bench database during each run (every session: web workers, flusher, this script):")
    for label, result in runs:
        print(f"    {label:<8} " + ", ".join(f"{name} {value}" for name, value in result["db"].items()))
    print("  CPU milliseconds per request (less sensitive to other load than requests/s; PostgreSQL left out, it serves other databases too):")
    for label, result in runs:
        used, sent_here = result["cpu"].used, max(result["sent"], 1)
        stack = sum(used[name] for name in ("gunicorn", "celery", "flusher", "wrk", "redis-server") if name in used)
        result["cpu_ms_web"] = 1000 * used["gunicorn"] / sent_here
        result["cpu_ms_stack"] = 1000 * stack / sent_here
        print(f"    {label:<8} gunicorn {result['cpu_ms_web']:.3f}   gunicorn+{flusher_name}+wrk+redis {result['cpu_ms_stack']:.3f}")
    print()

    rps_a = statistics.fmean(r["rps"] for r in real)
    rps_b = statistics.fmean(r["rps"] for r in bare)
    p99_a = statistics.fmean(r["p99_ms"] for r in real)
    p99_b = statistics.fmean(r["p99_ms"] for r in bare)
    # The verdicts compare each real run with the bare run just before it and take the median of
    # those ratios: a mean over rounds lets one stalled run of either kind decide the result.
    round_ratios = [a["rps"] / b["rps"] if b["rps"] else 0.0 for a, b in zip(real, bare, strict=True)]
    round_p99_ratios = [a["p99_ms"] / b["p99_ms"] if b["p99_ms"] else float("inf") for a, b in zip(real, bare, strict=True)]
    ratio = statistics.median(round_ratios)
    p99_ratio = statistics.median(round_p99_ratios)
    sent = sum(r["sent"] for r in real)
    completed = sum(r["requests"] for r in real)
    non_302 = sum(max(r["s2xx"] + r["s3xx"] + r["s4xx"] + r["s5xx"], r["non_2xx_3xx"]) for r in real)
    socket_errors = sum(sum(r["socket_errors"].values()) for r in real)
    in_flight = sent - sum(r["s302"] + r["s2xx"] + r["s3xx"] + r["s4xx"] + r["s5xx"] for r in real)

    ratio_ok = ratio >= TARGET_RATIO
    p99_ok = p99_ratio <= TARGET_P99
    # Every request wrk wrote is one click: those it counted as completed plus the few still in
    # flight when it stopped (the server answered them after wrk had closed the connection).
    clicks_ok = stored == sent and non_302 == 0 and socket_errors == 0
    mean = " (mean of rounds)" if args.rounds > 1 else ""
    print(f"requests/s      (a) /l/ {rps_a:9.1f}   (b) bare {rps_b:9.1f}{mean}")
    print(f"p50 ms          (a) /l/ {statistics.fmean(r['p50_ms'] for r in real):9.2f}   (b) bare {statistics.fmean(r['p50_ms'] for r in bare):9.2f}")
    print(f"p99 ms          (a) /l/ {p99_a:9.2f}   (b) bare {p99_b:9.2f}")
    per_round = " (median of rounds: " if args.rounds > 1 else ""
    print(f"ratio a/b req/s {ratio:9.3f}   target >= {TARGET_RATIO}          {verdict(ratio_ok)}"
          + (f"{per_round}{', '.join(f'{r:.3f}' for r in round_ratios)})" if per_round else ""))
    print(f"p99 ratio a/b   {p99_ratio:9.3f}   target <= {TARGET_P99}          {verdict(p99_ok)}"
          + (f"{per_round}{', '.join(f'{r:.2f}' for r in round_p99_ratios)})" if per_round else ""))
    cpu_ratio_web = statistics.fmean(r["cpu_ms_web"] for r in bare) / statistics.fmean(r["cpu_ms_web"] for r in real)
    cpu_ratio_stack = statistics.fmean(r["cpu_ms_stack"] for r in bare) / statistics.fmean(r["cpu_ms_stack"] for r in real)
    print(f"CPU ratio b/a   {cpu_ratio_web:9.3f}   gunicorn CPU per request; {cpu_ratio_stack:.3f} with the whole stack (the req/s ratio to expect when CPU-bound)")
    print(
        f"clicks stored   {stored:9d}   requests sent {sent} = completed {completed} + in flight at stop {in_flight};"
        f" non-302 {non_302}, socket errors {socket_errors}   {verdict(clicks_ok)}"
    )
    print(f"click buffer    after each real run {buffer_after_real}; at end {left} (drained by {drained_by} in {drain_seconds:.1f}s)")
    if problems:
        print(f"gunicorn log    {len(problems)} warning/error lines, e.g.:")
        for line in problems[:5]:
            print(f"    {line}")
    if background > 0.10 or max(r["cpu"].used["other"] / r["cpu"].used["capacity"] for r in bare + real) > 0.35:
        print("NOTE            other processes used a large share of the CPU during the runs (see 'other' above)")
    print(f"logs            {workdir}")

    if not clicks_ok or left:
        return 1
    if args.strict and not (ratio_ok and p99_ok):
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
