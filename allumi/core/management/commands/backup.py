"""`manage.py backup [--dir DIR] [--keep N]`: back up the database now.

Beat runs the same backup every day (`allumi.core.tasks.backup_database`); operators run this
before a risky deploy or to check that backups work. Defaults: BACKUP_DIR and BACKUP_KEEP.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from allumi.core.backups import BackupError, backup_create, backup_dir_default, backup_keep_default


def _positive(value: str) -> int:
    number = int(value)
    if number < 1:
        raise ValueError(value)
    return number


class Command(BaseCommand):
    help = "Back up the database (pg_dump on PostgreSQL, a consistent copy on SQLite) with a SHA-256 checksum."

    def add_arguments(self, parser):
        parser.add_argument("--dir", dest="directory", type=Path, default=None, help=f"Backup folder. Default: BACKUP_DIR ({backup_dir_default()}).")
        parser.add_argument(
            "--keep", type=_positive, default=None,
            help=f"Keep this many newest backups, delete older ones. Default: BACKUP_KEEP ({backup_keep_default()}).",
        )

    def handle(self, *args, directory, keep, **options):
        try:
            backup = backup_create(directory=directory, keep=keep)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Backup written: {backup.path}"))
        self.stdout.write(f"Size: {_size(backup.size)} ({backup.size} bytes)")
        self.stdout.write(f"SHA-256: {backup.sha256}")


def _size(size: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if size < 1024 or unit == "GB":
            return f"{size} {unit}" if unit == "bytes" else f"{size:.1f} {unit}"
        size /= 1024
    return f"{size:.1f} TB"
