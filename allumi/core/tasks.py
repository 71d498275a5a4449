from celery import shared_task

from allumi.core.backups import backup_create


# A dump of a large database outlasts the default limits. No acks_late: the broker's visibility
# timeout is shorter than this task, and a redelivered message would start a second dump; a
# backup lost with its worker is simply taken again the next day (or by `manage.py backup`).
@shared_task(
    name="allumi.core.tasks.backup_database", ignore_result=True, acks_late=False,
    soft_time_limit=3 * 60 * 60 - 60, time_limit=3 * 60 * 60,
)
def backup_database() -> dict:
    """Back up the database into BACKUP_DIR and keep the newest BACKUP_KEEP backups (beat: daily)."""
    backup = backup_create()
    return {"path": str(backup.path), "size": backup.size, "sha256": backup.sha256}
