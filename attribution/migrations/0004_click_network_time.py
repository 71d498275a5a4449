"""An index for probabilistic matching, which looks clicks up by network (/24 or /48) and time.

The click table is the largest there is: on PostgreSQL the index is built CONCURRENTLY, so
clicks keep being written while it builds (hence a non-atomic migration).
"""

from django.db import migrations, models

from allumi.core.migration_operations import AddIndexConcurrentlyOnPostgres


class Migration(migrations.Migration):
    atomic = False

    dependencies = [
        ("attribution", "0003_rollups"),
    ]

    operations = [
        AddIndexConcurrentlyOnPostgres(
            model_name="click",
            index=models.Index(fields=["network", "occurred_at"], name="click_network_time"),
        ),
    ]
