"""docker/compose.yaml's Kafka, secure by default, from the same code as ``regsync stack up --secure``.

The compose init service ``kafka-secrets`` runs ``regsync stack secrets`` once per ``up``: the CA and
node certificate are made once (:func:`kafka_secrets.ensure_tls`, never overwritten), and each
node's ``server.properties`` is rendered by :func:`kafka_broker.server_properties`, the function
the local stack starts its brokers with, so compose and ``stack up --secure`` cannot drift apart.
The SCRAM passwords are not generated here: they are compose secrets (``KAFKA_<PRINCIPAL>_PASSWORD``
in docker/.env, made by scripts/secrets_init.py), so compose hands each service only its own.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from regsync.stack import kafka_broker, kafka_secrets
from regsync.stack.artifacts import folder_lock
from regsync.stack.kafka_secrets import MECHANISM, PRINCIPALS, KafkaSecrets, scram_arguments, write_private
from schemas.errors import ConfigurationError

#: Inside the containers: the brokers' storage, their client and host listeners' ports.
DATA_DIR = Path("/var/lib/kafka/data")
CLIENT_PORT = 9092
HOST_PORT = 9094
#: The names compose's PostgreSQL answers to: its service name inside, loopback from the host.
POSTGRES_HOSTS = ("postgres", "localhost")
#: Safe inside a JAAS string and a ``--add-scram [name=…,password=…]`` argument, and long enough.
_PASSWORD = re.compile(r"[A-Za-z0-9._~-]{16,}")
_HOST = r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?"
_VOTER = re.compile(rf"(\d+)@({_HOST}):(\d+)")


def password_variable(principal: str) -> str:
    """The docker/.env name of a principal's SCRAM password."""
    return f"KAFKA_{principal.upper()}_PASSWORD"


@dataclass(frozen=True, slots=True)
class Voter:
    """One KRaft voter of ``controller.quorum.voters``: node id, host, controller port."""

    node_id: int
    host: str
    port: int


def parse_voters(text: str) -> list[Voter]:
    """``1@kafka:9093,2@kafka-2:9093`` as voters; anything else is a configuration error."""
    voters = []
    for part in text.split(","):
        match = _VOTER.fullmatch(part.strip())
        if match is None:
            raise ConfigurationError(
                f"not a KRaft voter: {part.strip()!r}", hint="KAFKA_QUORUM_VOTERS is id@host:port,…"
            )
        voters.append(Voter(int(match[1]), match[2], int(match[3])))
    if len({v.node_id for v in voters}) != len(voters):
        raise ConfigurationError(f"a node id appears twice in {text!r}")
    return voters


def passwords_from(env: Mapping[str, str]) -> dict[str, str]:
    """Every principal's SCRAM password from ``env``; all missing or unsafe ones named at once."""
    missing = [password_variable(p) for p in PRINCIPALS if not env.get(password_variable(p))]
    if missing:
        raise ConfigurationError(
            f"unset: {', '.join(missing)}", hint="run scripts/secrets_init.py (docker/.env)"
        )
    unsafe = [password_variable(p) for p in PRINCIPALS if not _PASSWORD.fullmatch(env[password_variable(p)])]
    if unsafe:
        raise ConfigurationError(
            f"{', '.join(unsafe)}: use at least 16 of A-Z a-z 0-9 . _ ~ -",
            hint="delete the line and run scripts/secrets_init.py to generate one",
        )
    return {p: env[password_variable(p)] for p in PRINCIPALS}


def admin_properties(secrets: KafkaSecrets) -> str:
    """A Kafka tool's ``--command-config`` logging in as ``admin`` (the brokers' health check)."""
    return "\n".join(
        [
            "security.protocol=SASL_SSL",
            f"sasl.mechanism={MECHANISM}",
            "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
            f'username="admin" password="{secrets.password("admin")}";',
            "ssl.truststore.type=PEM",
            f"ssl.truststore.location={secrets.ca_file}",
            "",
        ]
    )


@dataclass(frozen=True, slots=True)
class Rendered:
    """What :func:`render` wrote, for the command's summary."""

    generated: bool  # a new CA and node certificate (first run on an empty volume)
    dns_names: list[str]
    properties: list[Path]


def render(
    out: Path,
    voters: str,
    env: Mapping[str, str],
    *,
    host_port: int = HOST_PORT,
    ca_out: Path | None = None,
    hosts: tuple[str, ...] = (),
    client_port: int = CLIENT_PORT,
    host_listener_port: int = HOST_PORT,
    data_dir: Path = DATA_DIR,
    postgres_out: Path | None = None,
) -> Rendered:
    """Certificates once, then every file a compose node and its clients read.

    Each node's ``server.properties``, the SCRAM format arguments and the admin's tool config (all
    0600, for the brokers' user), and a public copy of the CA for the clients. Idempotent: the TLS
    material is never overwritten; the rendered files follow the current settings (a rotated admin
    password reaches the brokers' inter-broker login on their restart).
    ``hosts`` are more names for the certificate (compose names all three nodes even when one
    runs, so adding the cluster profile later needs no new certificate). The ports and the data
    folder are compose's; a test that runs the rendered config outside containers picks free ones.
    ``postgres_out`` gets PostgreSQL's server certificate (``postgres``, ``localhost``) from the same CA.
    """
    nodes = parse_voters(voters)
    passwords = passwords_from(env)
    bad = [h for h in hosts if not re.fullmatch(_HOST, h)]
    if bad:
        raise ConfigurationError(f"not a host name for the certificate: {', '.join(map(repr, bad))}")
    # One render at a time per folder: two kafka-secrets runs on an empty volume would otherwise each
    # make a CA and could leave one's CA beside the other's node certificate.
    with folder_lock(out, ".render.lock", mode=0o700):
        done = _render(
            out, nodes, voters, passwords, host_port, ca_out, hosts, client_port, host_listener_port, data_dir
        )
        if postgres_out is not None:
            kafka_secrets.issue_server(out, POSTGRES_HOSTS, postgres_out)
        return done


def _render(
    out: Path,
    nodes: list[Voter],
    voters: str,
    passwords: dict[str, str],
    host_port: int,
    ca_out: Path | None,
    hosts: tuple[str, ...],
    client_port: int,
    host_listener_port: int,
    data_dir: Path,
) -> Rendered:
    fresh = not (out / "node.pem").exists()
    names = kafka_secrets.ensure_tls(out, tuple(dict.fromkeys((*hosts, *(v.host for v in nodes)))))
    secrets = KafkaSecrets(out, out / "ca.pem", out / "node.pem", passwords)
    written = []
    for v in nodes:
        folder = out / f"node-{v.node_id}"
        folder.mkdir(mode=0o700, exist_ok=True)
        text = kafka_broker.server_properties(
            data_dir,
            client_port,
            v.port,
            v.node_id,
            voters,
            len(nodes),
            secrets,
            bind="",
            advertise=v.host,
            # The first node also listens for tools on the host (published on loopback only).
            host_listener=(host_listener_port, "localhost", host_port) if v is nodes[0] else None,
            dev=False,
        )
        write_private(folder / "server.properties", text.encode())
        written.append(folder / "server.properties")
    write_private(out / "format.args", ("\n".join(scram_arguments(secrets)) + "\n").encode())
    write_private(out / "admin.properties", admin_properties(secrets).encode())
    if ca_out is not None:
        # Clients get the CA certificate only: never the CA key, the node key or a password.
        tmp = ca_out / "ca.pem.tmp"
        shutil.copyfile(out / "ca.pem", tmp)
        tmp.chmod(0o644)
        tmp.replace(ca_out / "ca.pem")
    return Rendered(fresh, names, written)
