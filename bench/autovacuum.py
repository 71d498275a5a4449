"""What PostgreSQL's autovacuum would have done, for benchmarks on a server that runs without it."""

THRESHOLD_ROWS, THRESHOLD_SHARE = 50, 0.1  # autovacuum's analyze threshold: 50 rows + 10% of the table


def autovacuum_stand_in(tables, *, vacuum: bool = False) -> list[str]:
    """Where the server runs with autovacuum off (as a test machine's may), do for `tables` what it
    would have done by now: ANALYZE each whose rows changed by more than its threshold since last
    analyzed, or VACUUM ANALYZE every one of them when `vacuum`. On statistics older than a table's
    rows, PostgreSQL read whole indexes where it should have looked up a few rows (the flusher's
    unique-visitor check, identity resolution). Returns the tables it analyzed (none when
    autovacuum is on)."""
    from django.db import connection

    done = []
    with connection.cursor() as cursor:
        cursor.execute("SHOW autovacuum")
        if cursor.fetchone()[0] == "on":
            return done
        if vacuum:
            stale = list(tables)
        else:
            cursor.execute(
                "SELECT s.relname FROM pg_stat_user_tables s JOIN pg_class c ON c.oid = s.relid"
                " WHERE s.relname = ANY(%s) AND s.n_mod_since_analyze > %s + %s * GREATEST(c.reltuples, 0)",
                [list(tables), THRESHOLD_ROWS, THRESHOLD_SHARE],
            )
            stale = [table for (table,) in cursor.fetchall()]
        for table in stale:
            cursor.execute(f"{'VACUUM ' if vacuum else ''}ANALYZE {table}")
            done.append(table)
    return done
