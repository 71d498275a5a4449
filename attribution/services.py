import contextlib
import json
import logging
import secrets
import time
from datetime import UTC, datetime, timedelta

import psycopg
import redis
from django.conf import settings
from django.core import signing
from django.db import connection, models, transaction

from allumi.core.breaker import redis_breaker
from allumi.core.client_ip import client_ip, network_prefix
from allumi.core.metrics import clicks_recorded
from attribution import buffer, spool
from attribution.enrich import (
    bot_reason,
    country_for_ip,
    fingerprint,
    first_language,
    parse_user_agent,
    referrer_domain,
)
from attribution.models import Click
from links.models import Link

logger = logging.getLogger(__name__)

UNIQUE_WINDOW = timedelta(hours=1)
_UTM_PARAMS = ("utm_source", "utm_medium", "utm_campaign", "utm_term", "utm_content")
_CDN_COUNTRY_HEADERS = ("HTTP_CF_IPCOUNTRY", "HTTP_CLOUDFRONT_VIEWER_COUNTRY", "HTTP_X_VERCEL_IP_COUNTRY")
_VISITOR_SIGNER = signing.Signer(salt="allumi.visitor")


# --- identifiers ---------------------------------------------------------------------------


_BASE62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def new_click_id() -> str:
    """`c_` and 12 base62 characters (71 bits) from one CSPRNG draw: fast enough for the hot path."""
    number = int.from_bytes(secrets.token_bytes(9), "big")
    characters = []
    for _ in range(12):
        number, digit = divmod(number, 62)
        characters.append(_BASE62[digit])
    return "c_" + "".join(characters)


def visitor_id_from_cookie(value: str | None) -> str | None:
    """The visitor id inside a signed `allumi_vid` cookie value, or None if it is missing or forged."""
    if not value or len(value) > 100:
        return None
    try:
        visitor_id = _VISITOR_SIGNER.unsign(value)
    except signing.BadSignature:
        return None
    return visitor_id if 16 <= len(visitor_id) <= 32 and visitor_id.isalnum() else None


def visitor_cookie_value(visitor_id: str) -> str:
    return _VISITOR_SIGNER.sign(visitor_id)


def new_visitor_id() -> str:
    return secrets.token_hex(11)


# --- capture (the redirect's hot path) ------------------------------------------------------


def click_payload(*, request, link_id: int, creator_id: int, click_id: str, visitor_id: str, occurred_at: float) -> dict:
    """The raw signals of one request, cheap to gather and JSON-safe for the buffer."""
    meta = request.META
    ip = client_ip(request)
    payload = {
        "id": click_id,
        "link": link_id,
        "creator": creator_id,
        "ts": occurred_at,
        "method": request.method,
        "ip": ip,
        "ua": meta.get("HTTP_USER_AGENT", "")[:1024],
        "al": meta.get("HTTP_ACCEPT_LANGUAGE", "")[:255],
        "ae": meta.get("HTTP_ACCEPT_ENCODING", "")[:255],
        "ch": meta.get("HTTP_SEC_CH_UA_PLATFORM", "")[:64] + meta.get("HTTP_SEC_CH_UA_MOBILE", "")[:8],
        "ref": meta.get("HTTP_REFERER", "")[:2048],
        "vid": visitor_id,
    }
    query = request.GET
    if query:
        utm = {name: query[name][:100] for name in _UTM_PARAMS if query.get(name)}
        if utm:
            payload["utm"] = utm
    if ip and ip != meta.get("REMOTE_ADDR"):
        # The request came through a trusted proxy (a CDN): its country header can be believed.
        for header in _CDN_COUNTRY_HEADERS:
            if meta.get(header):
                payload["cc"] = meta[header][:2].upper()
                break
    return payload


def click_capture(*, payload: dict) -> None:
    """Make one click durable: appended to this process's spool file (shipped to the Redis buffer
    in batches), or to the Redis buffer directly where there is no spool, or written to the
    database when there is no Redis or it does not answer. Never raises for a Redis failure."""
    line = json.dumps(payload, separators=(",", ":"))
    click_spool = _click_spool()
    if click_spool is not None:
        try:
            click_spool.append(line)
            return
        except OSError as error:  # a full or unwritable disk: store this click the other way
            logger.error("click spool unusable (%r); writing the click directly", error)
    if not (buffer.buffer_enabled() and _into_buffer(buffer.append, line)):
        clicks_store(payloads=[payload])


def _into_buffer(write, value) -> bool:
    """`write(value)` to the Redis buffer unless the breaker is open; False when Redis did not take
    it (the breaker then stays open a few seconds, and the caller writes to the database)."""
    if redis_breaker.is_open:
        return False
    try:
        write(value)
    except Exception as error:  # Redis down or slow
        redis_breaker.trip(error)
        return False
    return True


_spools: dict[str, spool.ClickSpool] = {}


def _click_spool() -> spool.ClickSpool | None:
    """This process's click spool, when clicks are buffered and CLICK_SPOOL_DIR names a directory."""
    directory = settings.CLICK_SPOOL_DIR
    if not directory or not buffer.buffer_enabled():
        return None
    if directory not in _spools:
        _spools[directory] = spool.ClickSpool(directory, deliver=_deliver_spooled, interval=settings.CLICK_SPOOL_INTERVAL)
    return _spools[directory]


def click_spool_close() -> None:
    """Ship what this process has spooled and stop its spool (gunicorn's worker_exit)."""
    for click_spool in _spools.values():
        click_spool.close()


def _deliver_spooled(lines: list[bytes]) -> None:
    """A spool shipment: into the Redis buffer in one transaction, or, when Redis does not answer,
    straight into the database. Raises when neither takes it (the spool then keeps it)."""
    if not _into_buffer(buffer.append_many, lines):
        clicks_store(payloads=_readable(lines), drop_deleted_links=True)


def _readable(lines: list[bytes]) -> list[dict]:
    """The clicks of buffered or spooled JSON lines; an unreadable line is logged and dropped
    (kept, it would fail its whole batch at every try)."""
    payloads = []
    for line in lines:
        try:
            payloads.append(json.loads(line))
        except ValueError:
            logger.error("dropping an unreadable buffered click: %r", line[:200])
    return payloads


def request_signals(request) -> dict:
    """What a browser's request to the track endpoint says about the person behind it."""
    meta = request.META
    ip = client_ip(request)
    network = network_prefix(ip)
    user_agent = meta.get("HTTP_USER_AGENT", "")[:1024]
    accept_language = meta.get("HTTP_ACCEPT_LANGUAGE", "")[:255]
    return {
        "ip": ip,
        "network": network,
        "user_agent": user_agent,
        "accept_language": accept_language,
        "fingerprint": fingerprint(
            user_agent=user_agent,
            accept_language=accept_language,
            accept_encoding=meta.get("HTTP_ACCEPT_ENCODING", "")[:255],
            client_hints=meta.get("HTTP_SEC_CH_UA_PLATFORM", "")[:64] + meta.get("HTTP_SEC_CH_UA_MOBILE", "")[:8],
            network=network,
        ),
    }


# --- storing ---------------------------------------------------------------------------------


def _click_row(payload: dict) -> dict:
    """A buffered click's columns (by attribute name), parsed and enriched."""
    user_agent = payload.get("ua", "")
    reason = "head_request" if payload.get("method") == "HEAD" else bot_reason(user_agent)
    browser, os_name, device, model = parse_user_agent(user_agent)
    ip = payload.get("ip")
    network = network_prefix(ip)
    accept_language = payload.get("al", "")
    referrer = payload.get("ref", "")
    utm = payload.get("utm", {})
    return {
        "public_id": payload["id"],
        "link_id": payload["link"],
        "creator_id": payload["creator"],
        "occurred_at": datetime.fromtimestamp(payload["ts"], tz=UTC),
        "method": payload.get("method", "GET")[:8],
        "ip": ip,
        "network": network,
        "user_agent": user_agent,
        "browser": browser,
        "os": os_name,
        "device_type": "bot" if reason and reason != "head_request" else device,
        "device_model": model,
        "accept_language": accept_language,
        "language": first_language(accept_language),
        "referrer": referrer,
        "referrer_domain": referrer_domain(referrer),
        "visitor_id": payload.get("vid", ""),
        "fingerprint": fingerprint(
            user_agent=user_agent,
            accept_language=accept_language,
            accept_encoding=payload.get("ae", ""),
            client_hints=payload.get("ch", ""),
            network=network,
        ),
        "country": payload.get("cc") or country_for_ip(ip),
        "is_bot": bool(reason),
        "bot_reason": reason,
        **{name: utm.get(name, "") for name in _UTM_PARAMS},
        "is_unique": False,
    }


def _mark_unique(rows: list[dict]) -> None:
    """Flag each human click that is its visitor's first on that link within UNIQUE_WINDOW."""
    humans = [row for row in rows if not row["is_bot"] and row["visitor_id"]]
    if not humans:
        return
    start = min(row["occurred_at"] for row in humans) - UNIQUE_WINDOW
    end = max(row["occurred_at"] for row in humans)
    batch = {row["public_id"] for row in humans}  # stored already when a batch is flushed again
    keys = {(row["link_id"], row["visitor_id"]) for row in humans}
    events = [
        (when, 0, (link_id, visitor_id), None)
        for link_id, visitor_id, when, public_id in _earlier_clicks(visitors=list({key[1] for key in keys}), start=start, end=end)
        if public_id not in batch and (link_id, visitor_id) in keys
    ]
    events += [(row["occurred_at"], 1, (row["link_id"], row["visitor_id"]), row) for row in humans]
    last_seen: dict[tuple, datetime] = {}
    for when, _, key, row in sorted(events, key=lambda event: (event[0], event[1])):
        if row is not None:
            previous = last_seen.get(key)
            row["is_unique"] = previous is None or when - previous >= UNIQUE_WINDOW
        last_seen[key] = when


def _earlier_clicks(*, visitors: list[str], start: datetime, end: datetime) -> list[tuple]:
    """(link id, visitor id, time, click id) of these visitors' human clicks in [start, end].

    By visitor only, the leading column of the visitor index: a filter on the batch's links as
    well made PostgreSQL scan a link or creator index across every recent click. On PostgreSQL the
    visitors go as one array parameter, not one placeholder each (thousands per batch, which the
    driver and the server each parsed on every flush)."""
    if connection.vendor == "postgresql":
        with connection.cursor() as cursor:
            cursor.execute(
                "SELECT link_id, visitor_id, occurred_at, public_id FROM attribution_click"
                " WHERE visitor_id = ANY(%s::varchar[]) AND occurred_at >= %s AND occurred_at <= %s AND NOT is_bot",
                [visitors, start, end],
            )
            return cursor.fetchall()
    return list(
        Click.objects.filter(is_bot=False, visitor_id__in=visitors, occurred_at__gte=start, occurred_at__lte=end).values_list(
            "link_id", "visitor_id", "occurred_at", "public_id"
        )
    )


def _column_adapter(field):
    """How the database driver wants a value of this column, where it is not the Python value."""
    if isinstance(field, models.DateTimeField):
        return connection.ops.adapt_datetimefield_value
    if isinstance(field, models.GenericIPAddressField):
        return connection.ops.adapt_ipaddressfield_value
    return None


_INCOMING = "attribution_click_incoming"  # a temporary table of the flushing session


def _insert_clicks(rows: list[dict]) -> None:
    """Store the rows, skipping click ids already stored.

    On PostgreSQL: COPY straight into the table; when that meets a click id stored already (COPY
    cannot skip conflicts), COPY into a temporary table instead and insert from it with ON
    CONFLICT DO NOTHING, which costs the server half as much again. COPY is PostgreSQL's and
    psycopg's way to load in bulk: the values go out in C, where a thousand-row VALUES statement
    had the driver parse tens of thousands of placeholders on every batch (two thirds of the
    flusher's CPU when profiled) and the server parse it again. Elsewhere (SQLite): multi-row
    INSERTs from the model's columns.
    """
    fields = [field for field in Click._meta.concrete_fields if not field.primary_key]
    quote = connection.ops.quote_name
    table = quote(Click._meta.db_table)
    columns = ", ".join(quote(field.column) for field in fields)
    conflict = f"ON CONFLICT ({quote(Click._meta.get_field('public_id').column)}) DO NOTHING"
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            names = [field.attname for field in fields]
            # Straight into the table: the usual case, no click of the batch stored yet. A
            # savepoint keeps the transaction usable when one is (a batch flushed again).
            try:
                with transaction.atomic(), cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                    for row in rows:
                        copy.write_row([row[name] for name in names])
                return
            except psycopg.errors.UniqueViolation:
                pass
            # One per session, created on its first use and emptied after every use (a flush
            # may run twice in one transaction), so the catalog sees no churn.
            cursor.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {_INCOMING} AS SELECT {columns} FROM {table} WITH NO DATA")  # noqa: S608
            with cursor.cursor.copy(f"COPY {_INCOMING} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[name] for name in names])
            cursor.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM {_INCOMING} {conflict}")  # noqa: S608
            cursor.execute(f"TRUNCATE {_INCOMING}")
            return
        adapters = [(field.attname, _column_adapter(field)) for field in fields]
        row_sql = "(" + ", ".join(["%s"] * len(fields)) + ")"
        per_statement = min(1000, (connection.features.max_query_params or 65535) // len(fields))
        for first in range(0, len(rows), per_statement):
            chunk = rows[first : first + per_statement]
            params = [adapt(row[name]) if adapt else row[name] for row in chunk for name, adapt in adapters]
            cursor.execute(f"INSERT INTO {table} ({columns}) VALUES " + ", ".join([row_sql] * len(chunk)) + f" {conflict}", params)  # noqa: S608


def clicks_store(*, payloads: list[dict], drop_deleted_links: bool = False) -> int:
    """Write buffered clicks to the database. Safe to repeat: a click id already stored is skipped,
    so a flusher that dies after inserting and before trimming the buffer loses and doubles nothing.

    `drop_deleted_links` (the flusher's and the spool's batches, which waited while their links
    could be deleted): leave out the clicks whose link is gone, and hold the others' links until
    the insert commits. The redirect's own direct write has just read its link."""
    with transaction.atomic():
        if drop_deleted_links:
            payloads = _of_existing_links(payloads)
        rows = [_click_row(payload) for payload in payloads]
        _mark_unique(rows)
        _insert_clicks(rows)
    bots = sum(row["is_bot"] for row in rows)
    clicks_recorded.labels(kind="bot").inc(bots)
    clicks_recorded.labels(kind="human").inc(len(rows) - bots)
    return len(rows)


def _of_existing_links(payloads: list[dict]) -> list[dict]:
    """The buffered clicks whose link still exists, with its creator. A link deleted while its
    clicks waited in the buffer (from the admin, or with its creator's account) can no longer take
    them. On PostgreSQL the links are locked against deletion (FOR KEY SHARE, what a foreign key
    check takes) until the transaction ends, so none goes between this check and the insert."""
    if not payloads:
        return payloads
    link_ids = list({payload["link"] for payload in payloads})
    if connection.vendor == "postgresql":  # one array parameter, as in _earlier_clicks
        with connection.cursor() as cursor:
            cursor.execute("SELECT id, creator_id FROM links_link WHERE id = ANY(%s::bigint[]) FOR KEY SHARE", [link_ids])
            owners = dict(cursor.fetchall())
    else:
        owners = dict(Link.objects.filter(pk__in=link_ids).values_list("id", "creator_id"))
    kept = [payload for payload in payloads if owners.get(payload["link"]) == payload["creator"]]
    if len(kept) < len(payloads):
        logger.warning("dropping %d buffered clicks of deleted links", len(payloads) - len(kept))
    return kept


def pause_after(took: float) -> None:
    """Sleep CLICK_FLUSH_PAUSE_RATIO times `took` seconds (at most one): between the flusher's
    batches and the rollup's parts, the CPU goes back to the web processes of the same machine."""
    if took > 0 and settings.CLICK_FLUSH_PAUSE_RATIO:
        time.sleep(min(settings.CLICK_FLUSH_PAUSE_RATIO * took, 1.0))


def clicks_flush(*, batch_size: int | None = None, max_batches: int | None = None) -> int:
    """Move clicks from the Redis buffer into the database, one batch at a time.

    A lock keeps one flusher at a time; a batch is removed from the buffer only after its insert
    has committed, so a flusher killed at any point leaves every click either stored or buffered.

    Between two batches it pauses CLICK_FLUSH_PAUSE_RATIO times as long as the last one took. The
    flusher shares its machine with the web processes: a second's clicks stored in one go took a
    core from them for a tenth of a second, which every request in that moment waited for (the
    redirect's p99 rose by half); small batches with pauses between spread that over the second.
    """
    if not buffer.buffer_enabled():
        return 0
    batch_size = batch_size or settings.CLICK_FLUSH_BATCH_SIZE
    redis_client = buffer.client()
    lock = redis_client.lock(buffer.FLUSH_LOCK_KEY, timeout=settings.CLICK_FLUSH_LOCK_TIMEOUT, blocking=False)
    if not lock.acquire():
        return 0
    stored = taken = batches = 0
    last_took = 0.0
    try:
        # Only what is buffered now: clicks arriving meanwhile wait for the next run (a second
        # later), so that a run ends instead of chasing every click.
        waiting = redis_client.llen(buffer.CLICK_BUFFER_KEY)
        while taken < waiting and (max_batches is None or batches < max_batches):
            pause_after(last_took)
            started = time.monotonic()
            raw = redis_client.lrange(buffer.CLICK_BUFFER_KEY, 0, min(batch_size, waiting - taken) - 1)
            if not raw:
                break
            written = clicks_store(payloads=_readable(raw), drop_deleted_links=True)
            if not lock.owned():
                # Our lock expired and another flusher may be trimming: stop without touching the
                # buffer; the rows just written are skipped when that batch is read again.
                logger.warning("click flush lock lost; stopping")
                break
            redis_client.ltrim(buffer.CLICK_BUFFER_KEY, len(raw), -1)
            lock.extend(settings.CLICK_FLUSH_LOCK_TIMEOUT, replace_ttl=True)
            taken += len(raw)
            stored += written
            batches += 1
            last_took = time.monotonic() - started
    finally:
        with contextlib.suppress(redis.exceptions.LockError):  # expired already: nothing to release
            lock.release()
    return stored


def clicks_buffered() -> int:
    if not buffer.buffer_enabled():
        return 0
    return buffer.client().llen(buffer.CLICK_BUFFER_KEY)
