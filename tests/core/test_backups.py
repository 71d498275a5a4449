"""`manage.py backup` and `manage.py restore`: checksummed backups that really restore.

PostgreSQL tests dump the test database with pg_dump and restore it with pg_restore into a scratch
database; the SQLite run backs up and restores pytest-django's test database file.
"""

import hashlib
import io
import os
import stat
import time
from pathlib import Path
from urllib.parse import quote

import psycopg
import pytest
from django.conf import settings
from django.core.management import call_command
from django.core.management.base import CommandError
from psycopg import sql

from allumi.accounts.models import Creator
from allumi.accounts.services import creator_create
from allumi.core.backups import _pg_connection, backups_list
from allumi.core.management.commands.restore import Command as RestoreCommand
from allumi.core.tasks import backup_database
from links.models import Link
from links.services import link_create
from tests.conftest import PASSWORD

SCRATCH_DATABASE = "allumi_restore_check"
ON_SQLITE = settings.DATABASES["default"]["ENGINE"].endswith("sqlite3")
sqlite_only = pytest.mark.sqlite  # run on the SQLite run, deselected on PostgreSQL


def _creator_with_link(email: str = "alice@example.com") -> tuple[Creator, Link]:
    creator = creator_create(email=email, password=PASSWORD, name="Alice", confirmed=True)
    link = link_create(creator=creator, url="https://example.com/course", title="The course")
    return creator, link


def _backup(directory: Path, *args: str) -> tuple[Path, str]:
    out = io.StringIO()
    call_command("backup", "--dir", str(directory), *args, stdout=out)
    return backups_list(directory=directory)[-1], out.getvalue()


def _restore(path: Path, *args: str) -> str:
    out = io.StringIO()
    call_command("restore", str(path), *args, stdout=out)
    return out.getvalue()


def _change_one_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


def _connection_params(dbname: str) -> dict:
    db = settings.DATABASES["default"]
    params = {"host": db.get("HOST"), "port": db.get("PORT"), "user": db.get("USER"), "password": db.get("PASSWORD")}
    return {"dbname": dbname, **{key: value for key, value in params.items() if value}}


def _scratch_url() -> str:
    db = settings.DATABASES["default"]
    credentials = quote(str(db["USER"]), safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(str(db["PASSWORD"]), safe="")
    return f"postgres://{credentials}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/{SCRATCH_DATABASE}"


@pytest.fixture
def scratch_database():
    """An empty database `allumi_restore_check`, dropped again afterwards; yields its URL."""
    statements = [
        sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(SCRATCH_DATABASE)),
        sql.SQL("CREATE DATABASE {}").format(sql.Identifier(SCRATCH_DATABASE)),
    ]
    with psycopg.connect(**_connection_params("postgres"), autocommit=True) as admin:
        for statement in statements:
            admin.execute(statement)
    yield _scratch_url()
    with psycopg.connect(**_connection_params("postgres"), autocommit=True) as admin:
        admin.execute(statements[0])


def _on(model, query: str) -> sql.Composed:
    return sql.SQL(query).format(table=sql.Identifier(model._meta.db_table))


def _scratch_query(query: str | sql.Composed, *params) -> list[tuple]:
    with psycopg.connect(**_connection_params(SCRATCH_DATABASE)) as scratch:
        return scratch.execute(query, params).fetchall()


def _scratch_tables() -> list[tuple]:
    return _scratch_query("SELECT table_name FROM information_schema.tables WHERE table_schema = 'public'")


# --- PostgreSQL -----------------------------------------------------------------------------


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_postgres_backup_restores_into_another_database(tmp_path, scratch_database):
    creator, link = _creator_with_link()

    path, output = _backup(tmp_path)
    _restore(path, "--yes", "--database-url", scratch_database)

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    assert path.name.startswith("allumi-") and path.suffix == ".dump"
    assert path.read_bytes().startswith(b"PGDMP")  # pg_dump's custom format
    assert f"Backup written: {path}" in output
    assert f"({path.stat().st_size} bytes)" in output
    assert f"SHA-256: {digest}" in output
    creators = _scratch_query(_on(Creator, "SELECT email, name FROM {table} WHERE id = %s"), creator.pk)
    links = _scratch_query(_on(Link, "SELECT short_id, url, creator_id FROM {table} WHERE id = %s"), link.pk)
    assert creators == [("alice@example.com", "Alice")]
    assert links == [(link.short_id, "https://example.com/course", creator.pk)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_restore_over_a_database_in_use_replaces_its_data(tmp_path, scratch_database):
    creator, link = _creator_with_link()
    path, _ = _backup(tmp_path)
    _restore(path, "--yes", "--database-url", scratch_database)
    with psycopg.connect(**_connection_params(SCRATCH_DATABASE)) as scratch:
        scratch.execute(_on(Creator, "UPDATE {table} SET name = 'Changed' WHERE id = %s"), (creator.pk,))
        scratch.execute(_on(Link, "DELETE FROM {table}"))

    _restore(path, "--yes", "--database-url", scratch_database)

    assert _scratch_query(_on(Creator, "SELECT name FROM {table} WHERE id = %s"), creator.pk) == [("Alice",)]
    assert _scratch_query(_on(Link, "SELECT id FROM {table}")) == [(link.pk,)]


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_refuses_a_tampered_dump_and_restores_nothing(tmp_path, scratch_database):
    _creator_with_link()
    path, _ = _backup(tmp_path)
    _change_one_byte(path)

    with pytest.raises(CommandError) as refused:
        _restore(path, "--yes", "--database-url", scratch_database)

    assert refused.value.returncode == 1
    assert "does not match its checksum" in str(refused.value)
    assert _scratch_tables() == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_it_reports_a_missing_pg_dump_and_leaves_no_file(tmp_path, monkeypatch):
    (tmp_path / "empty-bin").mkdir()
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))

    with pytest.raises(CommandError, match="pg_dump is not installed"):
        _backup(tmp_path / "backups")

    assert list((tmp_path / "backups").iterdir()) == []


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_a_failing_pg_restore_shows_its_error_but_never_the_password(tmp_path, scratch_database):
    _creator_with_link()
    path, _ = _backup(tmp_path)
    secret = "pw-never-printed-7781"
    db = settings.DATABASES["default"]
    url = f"postgres://{db['USER']}:{secret}@{db['HOST'] or 'localhost'}:{db['PORT'] or 5432}/allumi_no_such_database"
    out = io.StringIO()

    with pytest.raises(CommandError) as failed:
        call_command("restore", str(path), "--yes", "--database-url", url, stdout=out)

    assert "pg_restore failed" in str(failed.value)
    assert "allumi_no_such_database" in str(failed.value)  # the tail of pg_restore's own stderr
    assert secret not in str(failed.value) and secret not in out.getvalue()


@pytest.mark.postgres
@pytest.mark.django_db(transaction=True)
def test_restore_asks_first_and_changes_nothing_without_yes(tmp_path, scratch_database, monkeypatch):
    _creator_with_link()
    path, _ = _backup(tmp_path)
    monkeypatch.setattr("sys.stdin", io.StringIO("no\n"))

    with pytest.raises(CommandError, match="cancelled"):
        _restore(path, "--database-url", scratch_database)

    assert _scratch_tables() == []


# --- SQLite ---------------------------------------------------------------------------------


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_a_sqlite_backup_brings_the_data_back(tmp_path):
    creator, link = _creator_with_link()
    path, output = _backup(tmp_path)
    Creator.objects.filter(pk=creator.pk).update(name="Changed")
    Link.objects.filter(pk=link.pk).delete()
    link_create(creator=creator, url="https://example.com/after-the-backup")

    _restore(path, "--yes")

    assert path.suffix == ".sqlite3"
    assert f"SHA-256: {hashlib.sha256(path.read_bytes()).hexdigest()}" in output
    creator.refresh_from_db()
    assert creator.name == "Alice"
    assert list(Link.objects.values_list("pk", "url")) == [(link.pk, "https://example.com/course")]


@sqlite_only
@pytest.mark.django_db(transaction=True)
def test_restore_without_yes_asks_and_a_no_changes_nothing(tmp_path, monkeypatch):
    creator, _ = _creator_with_link()
    path, _ = _backup(tmp_path)
    link_create(creator=creator, url="https://example.com/after-the-backup")
    monkeypatch.setattr("sys.stdin", io.StringIO(""))  # no terminal: never taken as a yes

    with pytest.raises(CommandError, match="cancelled"):
        _restore(path)

    assert Link.objects.count() == 2


# --- both databases -------------------------------------------------------------------------


@pytest.mark.django_db(transaction=True)
def test_a_backup_has_a_sha256sum_file_and_is_private(tmp_path):
    _creator_with_link()

    path, _ = _backup(tmp_path / "backups")

    digest = hashlib.sha256(path.read_bytes()).hexdigest()
    checksum = path.with_name(path.name + ".sha256")
    assert checksum.read_text() == f"{digest}  {path.name}\n"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE((tmp_path / "backups").stat().st_mode) == 0o700
    assert sorted(p.name for p in (tmp_path / "backups").iterdir()) == [path.name, checksum.name]


@pytest.mark.django_db(transaction=True)
def test_a_changed_backup_is_refused_with_exit_code_1(tmp_path, capsys):
    creator, _ = _creator_with_link()
    path, _ = _backup(tmp_path)
    link_create(creator=creator, url="https://example.com/after-the-backup")
    _change_one_byte(path)

    with pytest.raises(SystemExit) as exit_info:
        RestoreCommand().run_from_argv(["manage.py", "restore", str(path), "--yes"])

    assert exit_info.value.code == 1
    assert "does not match its checksum" in capsys.readouterr().err
    assert Link.objects.count() == 2


@pytest.mark.django_db(transaction=True)
def test_a_backup_without_its_checksum_file_is_refused(tmp_path):
    _creator_with_link()
    path, _ = _backup(tmp_path)
    path.with_name(path.name + ".sha256").unlink()

    with pytest.raises(CommandError) as refused:
        _restore(path, "--yes")

    assert refused.value.returncode == 1
    assert ".sha256 is missing" in str(refused.value)


@pytest.mark.django_db(transaction=True)
def test_retention_keeps_exactly_the_newest_n_backups(tmp_path):
    _creator_with_link()
    (tmp_path / "notes.txt").write_text("not a backup")
    made = [_backup(tmp_path, "--keep", "10")[0] for _ in range(4)]

    newest, _ = _backup(tmp_path, "--keep", "3")

    kept = [*made[2:], newest]
    assert backups_list(directory=tmp_path) == kept
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(
        ["notes.txt", *(p.name for p in kept), *(p.name + ".sha256" for p in kept)]
    )


@pytest.mark.django_db(transaction=True)
def test_retention_clears_what_crashed_runs_left_behind(tmp_path):
    _creator_with_link()
    old_partial = tmp_path / ".allumi-20200101T000000.000000Z.dump.partial"
    recent_partial = tmp_path / ".allumi-20200102T000000.000000Z.dump.partial"
    orphan_checksum = tmp_path / "allumi-20200101T000000.000000Z.dump.sha256"
    for leftover in (old_partial, recent_partial, orphan_checksum):
        leftover.write_text("left by a crash")
    two_days_ago = time.time() - 2 * 24 * 3600
    os.utime(old_partial, (two_days_ago, two_days_ago))

    path, _ = _backup(tmp_path, "--keep", "1")

    # The recent one may belong to a backup still running beside this one.
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([recent_partial.name, path.name, path.name + ".sha256"])


def test_keep_must_be_at_least_one(tmp_path):
    with pytest.raises(CommandError, match="keep"):
        call_command("backup", "--dir", str(tmp_path), "--keep", "0")


@pytest.mark.django_db(transaction=True)
def test_the_daily_task_backs_up_into_backup_dir_and_keeps_backup_keep(tmp_path, settings):
    settings.BACKUP_DIR = tmp_path / "daily"
    settings.BACKUP_KEEP = 2
    _creator_with_link()

    results = [backup_database.delay().result for _ in range(3)]

    kept = backups_list(directory=tmp_path / "daily")
    assert [Path(result["path"]) for result in results[1:]] == kept
    assert results[-1]["sha256"] == hashlib.sha256(kept[-1].read_bytes()).hexdigest()


def test_the_database_password_travels_in_the_environment_never_on_the_command_line():
    db = {
        "HOST": "db.internal", "PORT": 5432, "USER": "allumi", "NAME": "allumi", "PASSWORD": "pw-s3cret",
        "OPTIONS": {"sslmode": "require"},
    }

    args, env = _pg_connection(db)

    assert args == ["--host=db.internal", "--port=5432", "--username=allumi", "--no-password"]
    assert not any("pw-s3cret" in arg for arg in args)
    assert env["PGPASSWORD"] == "pw-s3cret"
    assert env["PGSSLMODE"] == "require"
