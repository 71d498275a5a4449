"""Rollups: clicks per link per hour and per day, human clicks per link (and per creator), day and dimension,
and credit per link, model and day, maintained from id ranges of their source tables exactly once.

Each run locks its cursor row, reads source rows with ids in (last_id, safe horizon], adds their
aggregate to the rollup with one INSERT … ON CONFLICT DO UPDATE (increments), and moves the
cursor, all in one transaction: a run that dies changes nothing, two runs never count a row twice.
"""

import time
from datetime import timedelta

from django.conf import settings
from django.db import connection, transaction
from django.utils import timezone

from attribution.models import Click, CreditLedger, RollupCursor
from attribution.services import pause_after

BATCH = 200_000
PART_CLICKS = 1_000  # clicks per part of a rollup run (rollup_clicks)

_DIMENSIONS = {
    "referrer": "CASE WHEN c.referrer_domain = '' THEN 'direct' ELSE c.referrer_domain END",
    "country": "CASE WHEN c.country = '' THEN 'unknown' ELSE c.country END",
    "device": "CASE WHEN c.device_type = '' THEN 'other' ELSE c.device_type END",
    "browser": "CASE WHEN c.browser = '' THEN 'unknown' ELSE c.browser END",
    "os": "CASE WHEN c.os = '' THEN 'unknown' ELSE c.os END",
    # The visit's own UTM fields, else the ones the link adds to its destination.
    "utm_source": "CASE WHEN c.utm_source <> '' THEN c.utm_source ELSE l.utm_source END",
    "utm_medium": "CASE WHEN c.utm_medium <> '' THEN c.utm_medium ELSE l.utm_medium END",
    "utm_campaign": "CASE WHEN c.utm_campaign <> '' THEN c.utm_campaign ELSE l.utm_campaign END",
}

# The range's clicks are read once, into a temporary table of what the rollups need (each
# dimension's value computed there), and every part of the run then reads its own rows of it.
_STAGED = "rollup_staged_clicks"
_DIMENSION_COLUMNS = ", ".join(f"{sql} AS dim_{name}" for name, sql in _DIMENSIONS.items())
# One row per staged human click and dimension: the staged clicks are joined with the list of
# dimension names and each name picks its column. Only these fixed fragments are formatted in.
_DIMENSION_NAMES = " UNION ALL ".join(f"SELECT '{name}' AS name" for name in _DIMENSIONS)
_DIMENSION_VALUE = "CASE d.name " + " ".join(f"WHEN '{name}' THEN s.dim_{name}" for name in _DIMENSIONS) + " END"
_DIMENSION_COUNTS = "rollup_dimension_counts"  # a temporary table, within one rollup transaction


def _hour(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"date_trunc('hour', {column})"
    return f"strftime('%%Y-%%m-%%d %%H:00:00', {column})"


def _day(column: str) -> str:
    if connection.vendor == "postgresql":
        return f"(({column}) AT TIME ZONE 'UTC')::date"
    return f"date({column})"


def _stage(db, start: int, end: int, parts: int) -> None:
    """Copy the clicks with ids in (start, end] into the temporary staging table, each with its
    part (link id modulo `parts`, so a rollup row still takes all its range's clicks at once)."""
    db.execute(
        f"""
        CREATE TEMPORARY TABLE {_STAGED} AS
        SELECT c.creator_id, c.link_id, c.link_id %% %s AS part, c.is_bot, c.is_unique,
               {_hour("c.occurred_at")} AS hour, {_day("c.occurred_at")} AS day, {_DIMENSION_COLUMNS}
        FROM attribution_click c LEFT JOIN links_link l ON l.id = c.link_id
        WHERE c.id > %s AND c.id <= %s
        """,  # noqa: S608 (only fixed fragments)
        [parts, start, end],
    )
    db.execute(f"CREATE INDEX {_STAGED}_part ON {_STAGED} (part)")
    db.execute(f"ANALYZE {_STAGED}")  # a temporary table has no statistics until asked for


def _settled_range(name: str, table: str) -> tuple[RollupCursor, int]:
    """Lock the cursor and return it with the highest id that is safe to read now."""
    cursor, _ = RollupCursor.objects.get_or_create(name=name)
    cursor = RollupCursor.objects.select_for_update().get(pk=cursor.pk)
    now = timezone.now()
    settle = timedelta(seconds=settings.ROLLUP_SETTLE_SECONDS)
    if cursor.horizon_at is None or now - cursor.horizon_at >= settle:
        with connection.cursor() as db:
            db.execute(f"SELECT COALESCE(MAX(id), 0) FROM {table}")  # noqa: S608 (a fixed table name)
            current_max = db.fetchone()[0]
        # The horizon noted last time has settled; note the current one for next time. With no
        # settling period (SQLite, where writers queue, or tests) the current one is safe at once.
        cursor.horizon_id = current_max if not settle else cursor.next_horizon_id
        cursor.next_horizon_id = current_max
        cursor.horizon_at = now
    return cursor, cursor.horizon_id


def rollup_clicks(*, batch: int = BATCH) -> int:
    """Add clicks with new ids to the hourly and dimension rollups; returns how many were read.

    The range is read once into a temporary table, then rolled up in parts of about PART_CLICKS
    clicks, each part the clicks of a subset of the links (link id modulo the number of parts), so
    a rollup row still takes all its range's clicks at once. (Parts that read the click table
    itself read the whole range once per part: a backlog of 50,000 clicks took PostgreSQL 3.8 s
    instead of 1.5 s.) Between parts it pauses CLICK_FLUSH_PAUSE_RATIO times as long as the last
    step took: half a minute of clicks rolled up in one go took a core from the web processes of
    the same machine for a second or more, and every request of that second waited.
    """
    with transaction.atomic():
        cursor, safe = _settled_range("clicks", Click._meta.db_table)
        start, end = cursor.last_id, min(safe, cursor.last_id + batch)
        if end > start:
            parts = -(-(end - start) // PART_CLICKS)
            with connection.cursor() as db:
                if connection.vendor == "postgresql":
                    db.execute("SET LOCAL work_mem = '64MB'")  # the dimension grouping sorts in memory
                step_started = time.monotonic()
                _stage(db, start, end, parts)
                for part in range(parts):
                    pause_after(time.monotonic() - step_started)
                    step_started = time.monotonic()
                    _rollup_click_part(db, part)
                db.execute(f"DROP TABLE {_STAGED}")
            cursor.last_id = end
        cursor.save()
    return max(end - start, 0)


def _rollup_click_part(db, part: int) -> None:
    """The staged clicks of the links whose id is `part` modulo the number of parts."""
    # The same counts per hour and per whole day; only fixed SQL fragments are formatted in.
    for table, column in (("attribution_hourlylinkclicks", "hour"), ("attribution_dailylinkclicks", "day")):
        db.execute(
            f"""
            INSERT INTO {table} (creator_id, link_id, {column}, clicks, unique_clicks, bot_clicks)
            SELECT creator_id, link_id, {column},
                   SUM(CASE WHEN is_bot THEN 0 ELSE 1 END),
                   SUM(CASE WHEN is_unique AND NOT is_bot THEN 1 ELSE 0 END),
                   SUM(CASE WHEN is_bot THEN 1 ELSE 0 END)
            FROM {_STAGED} WHERE part = %s
            GROUP BY creator_id, link_id, {column}
            ON CONFLICT (link_id, {column}) DO UPDATE SET
                clicks = {table}.clicks + excluded.clicks,
                unique_clicks = {table}.unique_clicks + excluded.unique_clicks,
                bot_clicks = {table}.bot_clicks + excluded.bot_clicks
            """,  # noqa: S608
            [part],
        )
    # Per link (link pages), then per creator (the overview) from the per-link counts: the human
    # clicks times eight dimensions are grouped once, not once per rollup.
    db.execute(
        f"""
        CREATE TEMPORARY TABLE {_DIMENSION_COUNTS} AS
        SELECT creator_id, link_id, day, dimension, value, COUNT(*) AS clicks
        FROM (
            SELECT s.creator_id, s.link_id, s.day, d.name AS dimension, {_DIMENSION_VALUE} AS value
            FROM {_STAGED} s CROSS JOIN ({_DIMENSION_NAMES}) AS d
            WHERE s.part = %s AND NOT s.is_bot
        ) AS rows
        WHERE value <> ''
        GROUP BY creator_id, link_id, day, dimension, value
        """,  # noqa: S608
        [part],
    )
    db.execute(
        f"""
        INSERT INTO attribution_dailyclickdimension (creator_id, link_id, day, dimension, value, clicks)
        SELECT creator_id, link_id, day, dimension, value, clicks FROM {_DIMENSION_COUNTS}
        WHERE true
        ON CONFLICT (link_id, day, dimension, value) DO UPDATE SET
            clicks = attribution_dailyclickdimension.clicks + excluded.clicks
        """  # noqa: S608 ("WHERE true": SQLite's parser needs it before an upsert's ON)
    )
    db.execute(
        f"""
        INSERT INTO attribution_dailycreatordimension (creator_id, day, dimension, value, clicks)
        SELECT creator_id, day, dimension, value, SUM(clicks) FROM {_DIMENSION_COUNTS}
        GROUP BY creator_id, day, dimension, value
        ON CONFLICT (creator_id, day, dimension, value) DO UPDATE SET
            clicks = attribution_dailycreatordimension.clicks + excluded.clicks
        """  # noqa: S608
    )
    db.execute(f"DROP TABLE {_DIMENSION_COUNTS}")


def rollup_credits(*, batch: int = BATCH) -> int:
    """Add new credit ledger rows to the per-link, per-model, per-day credit rollup."""
    with transaction.atomic():
        cursor, safe = _settled_range("credits", CreditLedger._meta.db_table)
        start, end = cursor.last_id, min(safe, cursor.last_id + batch)
        if end > start:
            with connection.cursor() as db:
                db.execute(
                    """
                    INSERT INTO attribution_dailylinkcredit (creator_id, link_id, model, day, conversions, revenue)
                    SELECT creator_id, link_id, model, day, SUM(conversions), SUM(revenue)
                    FROM attribution_creditledger WHERE id > %s AND id <= %s
                    GROUP BY creator_id, link_id, model, day
                    ON CONFLICT (link_id, model, day) DO UPDATE SET
                        conversions = attribution_dailylinkcredit.conversions + excluded.conversions,
                        revenue = attribution_dailylinkcredit.revenue + excluded.revenue
                    """,
                    [start, end],
                )
            cursor.last_id = end
        cursor.save()
    return max(end - start, 0)


def rollups_run() -> dict[str, int]:
    """Run both rollups until they catch up with the settled horizon."""
    read = {"clicks": 0, "credits": 0}
    for name, step in (("clicks", rollup_clicks), ("credits", rollup_credits)):
        while True:
            count = step()
            read[name] += count
            if count == 0:
                break
    return read
