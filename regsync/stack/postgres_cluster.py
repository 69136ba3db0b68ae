"""A throwaway PostgreSQL cluster made with ``initdb`` and run with ``pg_ctl``.

PostgreSQL refuses to run as root, so when we are root (CI, containers) the cluster is created and
run as the unprivileged ``postgres`` user that Debian's package creates.
"""

from __future__ import annotations

import hashlib
import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

import psutil

from regsync.stack.errors import MissingPrerequisiteError, ServiceStartError
from regsync.stack.prereq import PostgresBinaries
from regsync.stack.process import ServiceRecord, tail

NAME = "postgres"
SUPERUSER = "regsync"
DATABASE = "regsync"


def _run_as() -> str | None:
    if os.geteuid() != 0:
        return None
    for candidate in ("postgres", "nobody"):
        try:
            pwd.getpwnam(candidate)
        except KeyError:
            continue
        return candidate
    raise MissingPrerequisiteError(
        "an unprivileged user for PostgreSQL",
        "PostgreSQL cannot run as root; install Debian's postgresql package (it creates user 'postgres')",
    )


def _chown_tree(path: Path, user: str) -> None:
    entry = pwd.getpwnam(user)
    for root, dirs, files in os.walk(path):
        os.chown(root, entry.pw_uid, entry.pw_gid)
        for name in dirs + files:
            os.chown(os.path.join(root, name), entry.pw_uid, entry.pw_gid)


def cluster_home(state_dir: Path) -> Path:
    """Where the cluster lives: in the state folder, unless we are root.

    As root the server runs as ``postgres``, which may not traverse the state folder's parents
    (pytest's 0700 temp dirs, a home folder). Rather than loosen anyone's permissions, the cluster
    then lives in a world-traversable temp folder named after the state folder, so a warm restart
    finds it again; ``down --purge`` removes it.
    """
    if os.geteuid() != 0:
        return state_dir / NAME
    digest = hashlib.sha1(str(state_dir.absolute()).encode(), usedforsecurity=False).hexdigest()[:12]
    return Path(tempfile.gettempdir()) / f"regsync-postgres-{digest}"


def _run(cmd: list[str], user: str | None) -> subprocess.CompletedProcess[str]:
    # Drop the group and supplementary groups too: with root's gid the "group" permission bits of
    # root-owned 0701 folders (pytest's tmp dirs) would apply and deny traversal.
    ids: dict[str, object] = {}
    if user is not None:
        entry = pwd.getpwnam(user)
        ids = {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": []}
    return subprocess.run(cmd, capture_output=True, text=True, check=False, cwd="/", **ids)  # type: ignore[call-overload]  # ids is {} or the user/group kwargs run() takes


def start(state_dir: Path, bins: PostgresBinaries, port: int, timeout: float) -> ServiceRecord:
    """Initdb on first use, then ``pg_ctl start -w`` (which itself waits until connections work)."""
    home = cluster_home(state_dir)
    data = home / "data"
    log = home / "postgres.log"
    user = _run_as()
    home.mkdir(parents=True, exist_ok=True)
    if user is not None:
        _chown_tree(home, user)
    if not (data / "PG_VERSION").exists():
        shutil.rmtree(data, ignore_errors=True)
        init = _run(
            [
                str(bins.initdb),
                "-D",
                str(data),
                "-U",
                SUPERUSER,
                "--auth=trust",
                "-E",
                "UTF8",
                "--locale=C",
                "-N",
            ],
            user,
        )
        if init.returncode != 0:
            raise ServiceStartError(NAME, "initdb failed", (init.stdout + init.stderr)[-3000:])
    # fsync=off only risks data on an OS crash or power loss, never on a killed process: fine for a
    # throwaway cluster, and it keeps the test suite fast.
    options = (
        f"-p {port} -c listen_addresses=127.0.0.1 -k {home} -c fsync=off "
        "-c synchronous_commit=on -c full_page_writes=off -c max_connections=200"
    )
    started = _run(
        [
            str(bins.pg_ctl),
            "start",
            "-w",
            "-t",
            str(int(timeout)),
            "-D",
            str(data),
            "-l",
            str(log),
            "-o",
            options,
        ],
        user,
    )
    if started.returncode != 0:
        raise ServiceStartError(
            NAME, "pg_ctl start failed", (started.stdout + started.stderr + tail(log))[-3000:]
        )
    pid = int((data / "postmaster.pid").read_text().split()[0])
    _ensure_database(port)
    proc = psutil.Process(pid)
    return ServiceRecord.of(
        proc,
        name=NAME,
        log=str(log),
        endpoints={"url": f"postgresql+psycopg://{SUPERUSER}@127.0.0.1:{port}/{DATABASE}"},
        ports={"port": port},
        extra={"data": str(data), "pg_ctl": str(bins.pg_ctl), "user": user},
    )


def _ensure_database(port: int) -> None:
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user=SUPERUSER, dbname="postgres", autocommit=True
    ) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (DATABASE,)).fetchone()
        if not exists:
            conn.execute(f'CREATE DATABASE "{DATABASE}"')


def stop(record: ServiceRecord) -> bool:
    """``pg_ctl stop -m fast``; the launcher falls back to signals if that fails."""
    data = record.extra.get("data")
    pg_ctl = record.extra.get("pg_ctl")
    if not data or not pg_ctl or not Path(data, "postmaster.pid").exists():
        return False
    result = _run([pg_ctl, "stop", "-m", "fast", "-w", "-D", data], record.extra.get("user"))
    return result.returncode == 0


def probe(port: int) -> bool:
    """Ready when a connection to the pipeline's database succeeds."""
    import psycopg

    with psycopg.connect(
        host="127.0.0.1", port=port, user=SUPERUSER, dbname=DATABASE, connect_timeout=3
    ) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)
