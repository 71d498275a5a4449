"""`manage.py restore FILE [--yes] [--database-url URL]`: restore a backup made by `manage.py backup`.

The checksum is checked before anything else; a damaged or changed file is refused. Without
--database-url the configured database is replaced (stop web and worker first); with it, another
database, e.g. a scratch one to prove that last night's backup restores.
"""

from pathlib import Path

from django.core.management.base import BaseCommand, CommandError

from allumi.core.backups import (
    BackupError,
    backup_describe_target,
    backup_restore,
    backup_restore_target,
    backup_verify,
)


class Command(BaseCommand):
    help = "Restore a backup (checksum checked first) into the configured database or --database-url."

    def add_arguments(self, parser):
        parser.add_argument("file", type=Path, help="A backup file; its .sha256 must be beside it.")
        parser.add_argument("--yes", action="store_true", help="Do not ask for confirmation.")
        parser.add_argument(
            "--database-url", default=None,
            help="Restore into this database instead of the configured one (its password is never printed).",
        )

    def handle(self, *args, file, yes, database_url, **options):
        try:
            digest = backup_verify(path=file)
            self.stdout.write(f"Checksum OK: {file.name} (SHA-256 {digest})")
            target = backup_describe_target(db=backup_restore_target(database_url=database_url))
            if not yes and not self._confirm(f"This replaces the data in the {target} with {file.name}."):
                raise CommandError("Restore cancelled: nothing was changed.")
            restored = backup_restore(path=file, database_url=database_url, verified=True)
        except BackupError as error:
            raise CommandError(str(error)) from None
        self.stdout.write(self.style.SUCCESS(f"Restored {restored.path.name} into the {restored.target}."))

    def _confirm(self, warning: str) -> bool:
        self.stdout.write(warning)
        try:
            answer = input("Type 'yes' to continue: ")
        except EOFError:  # no terminal (cron, a pipe): never assume yes
            return False
        return answer.strip().lower() == "yes"
