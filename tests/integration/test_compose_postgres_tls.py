"""compose's PostgreSQL TLS, run for real outside containers.

The certificate is the one ``regsync stack secrets --postgres-out`` issues for compose; the server
is set up as ``docker/postgres/start.sh`` and ``tls-only.sh`` do it (key installed 0600 as the
server's user, ``ssl=on``, ``hostnossl … reject`` first in pg_hba.conf); the clients connect with
compose's URL suffix. Only the host name differs: ``localhost`` (the certificate names it for the
host's tools) instead of ``postgres``.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa

from regsync.stack import compose_kafka, kafka_secrets
from regsync.stack.postgres_cluster import _run, _run_as
from regsync.stack.prereq import find_postgres
from regsync.stack.process import free_port

ROOT = Path(__file__).resolve().parents[2]
ROLE, PASSWORD = "regsync_pipeline", "pipeline-0123456789"


@pytest.fixture(scope="module")
def server() -> Iterator[dict]:
    """A PostgreSQL with compose's TLS settings; the CA file and port for the clients."""
    bins = find_postgres()
    user = _run_as()
    # World-traversable, so the server's own user reaches it when the tests run as root.
    home = Path(tempfile.mkdtemp(prefix="regsync-compose-pg-"))
    home.chmod(0o755)
    out, tls, run = home / "kafka", home / "tls", home / "run"
    tls.mkdir()
    run.mkdir()
    env = {compose_kafka.password_variable(p): f"{p}-0123456789abcdef" for p in kafka_secrets.PRINCIPALS}
    compose_kafka.render(out, "1@kafka:9093", env, postgres_out=tls)
    # start.sh: the key as the server user's own, 0600 (PostgreSQL refuses any other).
    shutil.copyfile(tls / "server.key", run / "server.key")
    shutil.copyfile(tls / "server.crt", run / "server.crt")
    (run / "server.key").chmod(0o600)
    if user is not None:
        entry = pwd.getpwnam(user)
        for path in (run, run / "server.key", run / "server.crt"):
            os.chown(path, entry.pw_uid, entry.pw_gid)
    data = run / "data"
    init = _run(
        [
            str(bins.initdb),
            "-D",
            str(data),
            "-U",
            "postgres",
            "--auth-local=trust",
            "--auth-host=scram-sha-256",
        ],
        user,
    )
    assert init.returncode == 0, init.stdout + init.stderr
    # tls-only.sh, as the image's init runs it on an empty volume (as the server's user, PGDATA set).
    hba = data / "pg_hba.conf"
    as_user = ["runuser", "-u", user, "--"] if user is not None else []
    done = subprocess.run(
        [*as_user, "env", f"PGDATA={data}", "sh", str(ROOT / "docker" / "postgres" / "tls-only.sh")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert hba.read_text().splitlines()[0] == "hostnossl all all all reject"
    port = free_port()
    options = (
        f"-p {port} -k {run} -c listen_addresses=127.0.0.1 -c ssl=on -c ssl_cert_file={run / 'server.crt'} "
        f"-c ssl_key_file={run / 'server.key'} -c ssl_min_protocol_version=TLSv1.2"
    )
    started = _run(
        [str(bins.pg_ctl), "start", "-w", "-D", str(data), "-l", str(run / "log"), "-o", options], user
    )
    assert started.returncode == 0, started.stdout + started.stderr + (run / "log").read_text()
    try:
        sql = f"CREATE ROLE {ROLE} LOGIN PASSWORD '{PASSWORD}'"
        made = _run(["psql", "-h", str(run), "-p", str(port), "-U", "postgres", "-c", sql], user)
        assert made.returncode == 0, made.stderr
        yield {"port": port, "ca": str(out / "ca.pem")}
    finally:
        _run([str(bins.pg_ctl), "stop", "-m", "fast", "-D", str(data)], user)
        shutil.rmtree(home, ignore_errors=True)


def _connect(server: dict, query: str) -> sa.Row:
    engine = sa.create_engine(
        f"postgresql+psycopg://{ROLE}:{PASSWORD}@localhost:{server['port']}/postgres{query}"
    )
    try:
        with engine.connect() as conn:
            return conn.execute(
                sa.text("SELECT ssl, version FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
            ).one()
    finally:
        engine.dispose()


def test_compose_urls_connect_over_verified_tls(server: dict) -> None:
    ssl, version = _connect(server, f"?sslmode=verify-full&sslrootcert={server['ca']}")
    assert ssl is True and version in ("TLSv1.3", "TLSv1.2")


def test_a_client_in_clear_is_refused_by_the_server(server: dict) -> None:
    with pytest.raises(sa.exc.OperationalError, match=r"pg_hba\.conf rejects"):
        _connect(server, "?sslmode=disable")


def test_a_server_the_ca_did_not_sign_is_refused_by_the_client(server: dict, tmp_path: Path) -> None:
    other = tmp_path / "other"
    kafka_secrets.ensure_tls(other, ("postgres",))  # another deployment's CA
    # Same CA name, other key: OpenSSL finds the issuer by name and the signature check fails.
    with pytest.raises(sa.exc.OperationalError, match="SSL error"):
        _connect(server, f"?sslmode=verify-full&sslrootcert={other / 'ca.pem'}")
