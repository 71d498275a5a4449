"""Leave room in the click rollup tables' pages for the rollup's updates.

Every rollup run adds to rows that exist already (INSERT ... ON CONFLICT DO UPDATE). With full
pages each update writes its new row version to another page and a new entry into every index of
the table; with 30% of each page kept free the new version stays on its page (a HOT update) and
the indexes are left alone. On a copy of the per-link dimension rollup, one update pass over
69,000 rows took 24% less database CPU at fillfactor 70. PostgreSQL only; pages written before
this keep their fill until the table is rewritten.
"""

from django.db import migrations

TABLES = (
    "attribution_hourlylinkclicks",
    "attribution_dailylinkclicks",
    "attribution_dailyclickdimension",
    "attribution_dailycreatordimension",
)


def _set_fillfactor(value):
    def apply(apps, schema_editor):
        if schema_editor.connection.vendor != "postgresql":
            return
        for table in TABLES:
            schema_editor.execute(f"ALTER TABLE {schema_editor.quote_name(table)} SET (fillfactor = {value})")

    return apply


class Migration(migrations.Migration):
    dependencies = [("attribution", "0009_click_without_db_foreign_keys")]

    operations = [migrations.RunPython(_set_fillfactor(70), _set_fillfactor(100))]
