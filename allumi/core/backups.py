"""Database backups for operators: `manage.py backup`, `manage.py restore` and a daily beat task.

A backup is two files in the backup folder: `allumi-<UTC time>.dump` (PostgreSQL, `pg_dump
--format=custom`) or `allumi-<UTC time>.sqlite3` (SQLite, a consistent copy through SQLite's backup
API), and beside it `<name>.sha256` in `sha256sum` format, so `sha256sum -c` checks it by hand too.

Both are written under hidden `.partial` names, flushed to disk and renamed into place, checksum
first: a backup file that can be seen always has its checksum, and a crash leaves nothing that
looks complete. Restore checks the checksum before it touches a database.
"""

import hashlib
import os
import re
import shutil
import sqlite3
import subprocess
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import dj_database_url
from django.conf import settings
from django.db import connections

BACKUP_PREFIX = "allumi-"
_POSTGRES_SUFFIX = ".dump"
_SQLITE_SUFFIX = ".sqlite3"
_CHECKSUM_SUFFIX = ".sha256"
_PARTIAL_SUFFIX = ".partial"
# The name's timestamp orders backups; retention never touches a file not named like this.
_BACKUP_NAME = re.compile(r"^allumi-\d{8}T\d{6}\.\d{6}Z\.(dump|sqlite3)$")
_CHECKSUM_NAME = re.compile(r"^(allumi-\d{8}T\d{6}\.\d{6}Z\.(dump|sqlite3))\.sha256$")
# A `.partial` file this old belongs to a run that died (a full disk, a killed worker).
_STALE_PARTIAL_SECONDS = 24 * 60 * 60
_STDERR_TAIL_LINES = 20
_CHUNK = 1024 * 1024
_SQLITE_HEADER = b"SQLite format 3\x00"
_PG_DUMP_HEADER = b"PGDMP"
_ENGINE_NAMES = {"postgresql": "PostgreSQL", "sqlite3": "SQLite"}


class BackupError(Exception):
    """A backup or restore that cannot be done; the message is safe to show an operator."""


@dataclass(frozen=True)
class Backup:
    path: Path
    size: int
    sha256: str


@dataclass(frozen=True)
class Restore:
    path: Path
    target: str  # "database NAME on HOST:PORT" or a SQLite file, never with a password


def backup_dir_default() -> Path:
    return Path(getattr(settings, "BACKUP_DIR", settings.BASE_DIR / "var" / "backups"))


def backup_keep_default() -> int:
    return int(getattr(settings, "BACKUP_KEEP", 14))


# --- backup ---------------------------------------------------------------------------------


def backup_create(*, directory: Path | None = None, keep: int | None = None) -> Backup:
    """Back up the configured database into `directory`, then keep only the newest `keep` backups."""
    directory = Path(directory) if directory is not None else backup_dir_default()
    keep = keep if keep is not None else backup_keep_default()
    if keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}.")
    db = settings.DATABASES["default"]
    engine = _engine(db)
    # Backups hold every creator's data: only the operator's account may read the folder.
    directory.mkdir(mode=0o700, parents=True, exist_ok=True)
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S.%fZ")
    suffix = _POSTGRES_SUFFIX if engine == "postgresql" else _SQLITE_SUFFIX
    final = directory / f"{BACKUP_PREFIX}{stamp}{suffix}"
    partial = directory / f".{final.name}{_PARTIAL_SUFFIX}"
    try:
        if engine == "postgresql":
            _pg_dump(db=db, into=partial)
        else:
            _sqlite_copy(source=_sqlite_path(db), into=partial)
        _fsync_file(partial)
        digest = _sha256(partial)
        _write_checksum(directory=directory, name=final.name, digest=digest)
        os.replace(partial, final)
        _fsync_dir(directory)
    finally:
        partial.unlink(missing_ok=True)
    backup = Backup(path=final, size=final.stat().st_size, sha256=digest)
    backups_prune(directory=directory, keep=keep)
    return backup


def backups_list(*, directory: Path) -> list[Path]:
    """The backups in `directory`, oldest first."""
    if not directory.is_dir():
        return []
    return sorted((p for p in directory.iterdir() if _BACKUP_NAME.match(p.name)), key=lambda p: p.name)


def backups_prune(*, directory: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` backups with their checksums; returns the deleted backups."""
    if keep < 1:
        raise BackupError(f"keep must be at least 1, not {keep}.")
    backups = backups_list(directory=directory)
    removed = backups[:-keep]
    for path in removed:
        path.unlink(missing_ok=True)
        _checksum_path(path).unlink(missing_ok=True)
    kept = backups[-keep:]
    oldest_kept = kept[0].name if kept else ""
    for path in directory.iterdir():
        if _is_leftover(path, oldest_kept=oldest_kept):
            path.unlink(missing_ok=True)
    if removed:
        _fsync_dir(directory)
    return removed


def _is_leftover(path: Path, *, oldest_kept: str) -> bool:
    """A checksum whose backup is gone (a crash between the two renames), or a `.partial` file of a
    run that died long ago. Only older than the oldest kept backup: a run beside us may be midway."""
    match = _CHECKSUM_NAME.match(path.name)
    if match:
        return match.group(1) < oldest_kept and not path.with_name(match.group(1)).exists()
    if path.name.startswith(f".{BACKUP_PREFIX}") and path.name.endswith(_PARTIAL_SUFFIX):
        return time.time() - path.stat().st_mtime > _STALE_PARTIAL_SECONDS
    return False


# --- verify and restore ---------------------------------------------------------------------


def backup_verify(*, path: Path) -> str:
    """The backup's SHA-256 when it matches its `.sha256` file; BackupError otherwise."""
    path = Path(path)
    if not path.is_file():
        raise BackupError(f"{path} does not exist.")
    checksum_path = _checksum_path(path)
    if not checksum_path.is_file():
        raise BackupError(f"{checksum_path.name} is missing: cannot check {path.name}, refusing to restore it.")
    fields = checksum_path.read_text(encoding="utf-8", errors="replace").split()
    if len(fields) < 2 or not re.fullmatch(r"[0-9a-f]{64}", fields[0].lower()):
        raise BackupError(f"{checksum_path.name} is not a sha256sum line: refusing to restore {path.name}.")
    expected, named = fields[0].lower(), fields[1].lstrip("*")
    if named != path.name:
        raise BackupError(f"{checksum_path.name} is the checksum of {named}, not of {path.name}: refusing to restore.")
    actual = _sha256(path)
    if actual != expected:
        raise BackupError(
            f"{path.name} does not match its checksum (expected {expected}, got {actual}): "
            "the file is damaged or was changed. Nothing was restored."
        )
    return actual


def backup_restore_target(*, database_url: str | None = None) -> dict:
    """The settings dict of the database a restore writes to: `database_url`'s, or the configured one."""
    if database_url:
        try:
            return dj_database_url.parse(database_url)
        except Exception:
            # The message of a parse error may quote the URL, and so its password.
            raise BackupError("--database-url is not a database URL this project understands.") from None
    return settings.DATABASES["default"]


def backup_describe_target(*, db: dict) -> str:
    if _engine(db) == "postgresql":
        where = f"{db.get('HOST') or 'local socket'}" + (f":{db['PORT']}" if db.get("PORT") else "")
        return f"PostgreSQL database {db.get('NAME')!s} on {where}"
    return f"SQLite database {_sqlite_path(db)}"


def backup_restore(*, path: Path, database_url: str | None = None, verified: bool = False) -> Restore:
    """Replace the contents of the target database (`database_url`, or the configured one) with the
    backup at `path`, in one transaction. The checksum is checked first unless `verified`."""
    path = Path(path)
    if not verified:
        backup_verify(path=path)
    db = backup_restore_target(database_url=database_url)
    engine = _engine(db)
    kind = _backup_kind(path)
    if kind != engine:
        raise BackupError(f"{path.name} is a {_ENGINE_NAMES[kind]} backup; the target is {_ENGINE_NAMES[engine]}.")
    # This process's own connections must not hold locks the restore waits for.
    connections.close_all()
    if engine == "postgresql":
        _pg_restore(db=db, path=path)
    else:
        _sqlite_restore(source=path, target=_sqlite_path(db))
    return Restore(path=path, target=backup_describe_target(db=db))


# --- PostgreSQL -----------------------------------------------------------------------------

# Django's psql client passes these OPTIONS through libpq's environment; so do we.
_PG_OPTION_ENV = {
    "sslmode": "PGSSLMODE",
    "sslrootcert": "PGSSLROOTCERT",
    "sslcert": "PGSSLCERT",
    "sslkey": "PGSSLKEY",
    "passfile": "PGPASSFILE",
    "service": "PGSERVICE",
}


def _engine(db: dict) -> str:
    engine = db.get("ENGINE", "")
    if engine.endswith("postgresql") or engine.endswith("postgis"):
        return "postgresql"
    if engine.endswith("sqlite3") or engine.endswith("spatialite"):
        return "sqlite3"
    raise BackupError(f"Backups support PostgreSQL and SQLite, not {engine or 'an unset ENGINE'}.")


def _backup_kind(path: Path) -> str:
    with path.open("rb") as file:
        head = file.read(len(_SQLITE_HEADER))
    if head.startswith(_PG_DUMP_HEADER):
        return "postgresql"
    if head == _SQLITE_HEADER:
        return "sqlite3"
    raise BackupError(f"{path.name} is neither a pg_dump custom-format file nor a SQLite database.")


def _pg_connection(db: dict) -> tuple[list[str], dict[str, str]]:
    """libpq connection options and environment for `db`. The password travels in PGPASSWORD:
    a command line is visible to every user of the machine (`ps`)."""
    args = []
    if db.get("HOST"):
        args.append(f"--host={db['HOST']}")
    if db.get("PORT"):
        args.append(f"--port={db['PORT']}")
    if db.get("USER"):
        args.append(f"--username={db['USER']}")
    # Never wait for a password prompt that nobody (a Celery worker) will answer.
    args.append("--no-password")
    env = {**os.environ, "PGAPPNAME": "allumi-backup"}
    if db.get("PASSWORD"):
        env["PGPASSWORD"] = str(db["PASSWORD"])
    for option, variable in _PG_OPTION_ENV.items():
        value = (db.get("OPTIONS") or {}).get(option)
        if value:
            env[variable] = str(value)
    return args, env


def _pg_dbname(db: dict) -> str:
    name = str(db.get("NAME") or "")
    if not name:
        raise BackupError("The database has no NAME.")
    # pg_dump and pg_restore read a --dbname holding "=" or a URI as a connection string.
    if "=" in name or "://" in name:
        raise BackupError(f"Cannot back up a database named {name!r}.")
    return name


def _run(tool: str, args: list[str], *, env: dict[str, str], password: str, stdout=None) -> None:
    executable = shutil.which(tool, path=env.get("PATH"))
    if executable is None:
        raise BackupError(f"{tool} is not installed or not on PATH (install the PostgreSQL client tools).")
    try:
        result = subprocess.run(  # noqa: S603 (a fixed tool; arguments are a list, never a shell)
            [executable, *args], env=env, stdin=subprocess.DEVNULL, stdout=stdout or subprocess.DEVNULL,
            stderr=subprocess.PIPE, check=False,
        )
    except OSError as error:
        raise BackupError(f"{tool} could not be started: {error.strerror}.") from None
    if result.returncode != 0:
        tail = _stderr_tail(result.stderr, password=password)
        raise BackupError(f"{tool} failed with exit code {result.returncode}:\n{tail}")


def _stderr_tail(stderr: bytes, *, password: str) -> str:
    text = stderr.decode("utf-8", errors="replace")
    if password:
        text = text.replace(password, "********")
    return "\n".join(text.strip().splitlines()[-_STDERR_TAIL_LINES:]) or "(no output)"


def _pg_dump(*, db: dict, into: Path) -> None:
    args, env = _pg_connection(db)
    # Created here, not by pg_dump, so the file is private whatever the process umask.
    fd = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as file:
        _run(
            "pg_dump", [*args, "--format=custom", f"--dbname={_pg_dbname(db)}"],
            env=env, password=str(db.get("PASSWORD") or ""), stdout=file,
        )


def _pg_restore(*, db: dict, path: Path) -> None:
    args, env = _pg_connection(db)
    _run(
        "pg_restore",
        [
            *args, f"--dbname={_pg_dbname(db)}", "--clean", "--if-exists", "--no-owner",
            "--single-transaction", str(path),
        ],
        env=env, password=str(db.get("PASSWORD") or ""),
    )


# --- SQLite ---------------------------------------------------------------------------------


def _sqlite_path(db: dict) -> Path:
    name = str(db.get("NAME") or "")
    if not name or name == ":memory:" or name.startswith("file:") or "mode=memory" in name:
        raise BackupError("An in-memory SQLite database cannot be backed up or restored.")
    return Path(name).resolve()


def _sqlite_copy(*, source: Path, into: Path) -> None:
    if not source.is_file():
        raise BackupError(f"The SQLite database {source} does not exist.")
    fd = os.open(into, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    os.close(fd)
    # SQLite's backup API copies a consistent snapshot while other processes keep writing.
    src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(into)
    try:
        src.backup(dst)
        # One self-contained file: no -wal beside it to lose.
        dst.execute("PRAGMA journal_mode=DELETE")
    except sqlite3.Error as error:
        raise BackupError(f"SQLite backup of {source} failed: {error}") from None
    finally:
        dst.close()
        src.close()


def _sqlite_restore(*, source: Path, target: Path) -> None:
    """Copy `source` over `target` in one SQLite transaction. Renaming a file over a live database
    would be wrong: processes holding the old file keep writing to it, and its -wal would be
    replayed onto the new one. Through the backup API other connections simply see the new data."""
    if not target.parent.is_dir():
        raise BackupError(f"The folder of the SQLite database {target} does not exist.")
    src = sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)
    dst = sqlite3.connect(target, timeout=30)
    try:
        src.backup(dst)
    except sqlite3.Error as error:
        raise BackupError(f"SQLite restore into {target} failed: {error}") from None
    finally:
        dst.close()
        src.close()


# --- files ----------------------------------------------------------------------------------


def _checksum_path(path: Path) -> Path:
    return path.with_name(path.name + _CHECKSUM_SUFFIX)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        while chunk := file.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _write_checksum(*, directory: Path, name: str, digest: str) -> None:
    final = directory / f"{name}{_CHECKSUM_SUFFIX}"
    partial = directory / f".{final.name}{_PARTIAL_SUFFIX}"
    try:
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(f"{digest}  {name}\n")  # sha256sum's format: two spaces, then the name
            file.flush()
            os.fsync(file.fileno())
        os.replace(partial, final)
    finally:
        partial.unlink(missing_ok=True)


def _fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(directory: Path) -> None:
    # Makes the renames themselves durable, not only the files' contents.
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
