"""Throwaway TLS material and SCRAM users for the local stack's ``--secure`` mode.

Generated once into ``<state_dir>/secure/`` (files 0600, folder 0700) and reused by every later
``up``: a restarted broker must present the same certificate and know the same passwords, and a
client that copied the CA file keeps working. Nothing here is for production: the CA lives next to
the broker it signs. The PEM files serve both sides: the JVM reads them with ``ssl.*.type=PEM``
and kafka-python with ``ssl_cafile``. The ``cryptography`` package signs them (no keytool step, no
shell-out, no JKS passwords).
"""

from __future__ import annotations

import datetime as dt
import ipaddress
import json
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

FOLDER = "secure"
#: The principals of the pipeline (docs/operations.md, "Kafka security"). One connector principal
#: for every registrar: the connectors run as one extract job, in one process, with one producer;
#: per-registrar principals would only be as strong as that shared process.
PRINCIPALS = ("admin", "connector", "gate", "loader", "reports", "bureau")
#: The SASL mechanism of the client listener; the users are created at format time for it.
MECHANISM = "SCRAM-SHA-512"
#: The brokers' certificate subject: the principal of broker↔controller (mTLS) connections.
NODE_CN = "regsync-kafka-node"
NODE_PRINCIPAL = f"User:CN={NODE_CN}"
VALID_DAYS = 365


@dataclass(frozen=True, slots=True)
class KafkaSecrets:
    """Where a secure stack's CA, node key/cert and user passwords are."""

    folder: Path
    ca_file: Path
    node_keystore: Path  # the node's private key followed by its certificate (Kafka's PEM keystore)
    passwords: dict[str, str]

    def password(self, user: str) -> str:
        """The SCRAM password of ``user`` (KeyError for a principal this stack does not know)."""
        return self.passwords[user]


def write_private(path: Path, data: bytes) -> None:
    """Write ``data`` to a file only its owner can read, atomically (no half-written key)."""
    tmp = path.with_suffix(path.suffix + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    tmp.replace(path)


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _key() -> ec.EllipticCurvePrivateKey:
    return ec.generate_private_key(ec.SECP256R1())


def _pem_key(key: ec.EllipticCurvePrivateKey) -> bytes:
    # Unencrypted PKCS#8: Kafka's PEM keystore reads it without ssl.key.password, and the file is 0600.
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _generate_tls(folder: Path, hosts: tuple[str, ...] = ()) -> None:
    """CA and node key/certificate; ``node.pem`` is written last, so its presence marks them complete."""
    now = dt.datetime.now(dt.UTC)
    ca_key = _key()
    ca_name = _name("regsync local stack CA (throwaway)")
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .sign(ca_key, hashes.SHA256())
    )
    node_key = _key()
    node = (
        x509.CertificateBuilder()
        .subject_name(_name(NODE_CN))
        .issuer_name(ca_name)
        .public_key(node_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        # Clients verify the host name: the local stack listens on loopback only; compose adds its
        # nodes' service names (one certificate for every node: they share one principal anyway).
        .add_extension(
            x509.SubjectAlternativeName(
                [
                    *(x509.DNSName(h) for h in dict.fromkeys((*hosts, "localhost"))),
                    x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                ]
            ),
            critical=False,
        )
        # Server and client: a node is the server of clients and the client of its controllers.
        .add_extension(
            x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    write_private(folder / "ca.pem", ca.public_bytes(pem))
    write_private(folder / "ca-key.pem", _pem_key(ca_key))
    write_private(folder / "node.pem", _pem_key(node_key) + node.public_bytes(pem))


def _generate(folder: Path) -> None:
    _generate_tls(folder)
    passwords = {user: secrets.token_urlsafe(24) for user in PRINCIPALS}
    write_private(folder / "client.env", client_env(folder, passwords).encode())
    # users.json last: its presence marks the folder complete (a crash before it regenerates all).
    write_private(folder / "users.json", json.dumps(passwords, indent=2).encode())


def client_env(folder: Path, passwords: dict[str, str]) -> str:
    """``REGSYNC_KAFKA__…`` lines that give every pipeline component its own principal.

    ``set -a; . client.env; set +a`` before a ``regsync`` command against the secure local stack.
    The bureau principal is left out: it belongs to a bureau's consumer, not to the pipeline.
    """
    lines = [
        "# Generated by `regsync stack up --secure`; throwaway credentials of a local stack.",
        "REGSYNC_KAFKA__SECURITY_PROTOCOL=SASL_SSL",
        f"REGSYNC_KAFKA__SASL_MECHANISM={MECHANISM}",
        f"REGSYNC_KAFKA__CA_FILE={folder / 'ca.pem'}",
    ]
    for user in PRINCIPALS:
        if user == "bureau":
            continue
        key = f"REGSYNC_KAFKA__PRINCIPALS__{user.upper()}"
        lines += [f"{key}__USERNAME={user}", f"{key}__PASSWORD={passwords[user]}"]
    return "\n".join(lines) + "\n"


def ensure(state_dir: Path) -> KafkaSecrets:
    """The stack's secrets, generated on first use and reused afterwards."""
    folder = state_dir / FOLDER
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (folder / "users.json").exists():
        _generate(folder)
    return load(state_dir)


def ensure_tls(folder: Path, hosts: tuple[str, ...]) -> list[str]:
    """CA and node certificate in ``folder`` for ``hosts``: made once, never overwritten.

    Returns the certificate's DNS names. An existing certificate that lacks one of ``hosts`` is a
    configuration error rather than a silent reissue: clients trust the CA that is already out.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    if not (folder / "node.pem").exists():
        _generate_tls(folder, hosts)
    names = node_dns_names(folder / "node.pem")
    missing = [h for h in hosts if h not in names]
    if missing:
        from schemas.errors import ConfigurationError

        raise ConfigurationError(
            f"the Kafka node certificate in {folder} does not name {', '.join(missing)}",
            hint="issue a new one (docs/security.md, rotating a certificate in compose)",
        )
    return names


def issue_server(folder: Path, hosts: tuple[str, ...], out: Path) -> bool:
    """A server certificate for ``hosts`` signed by ``folder``'s CA, as ``server.crt`` + ``server.key``.

    For compose's PostgreSQL, so its clients verify it against the CA they already trust for Kafka.
    Kept while it is signed by the current CA and names every host; otherwise reissued (a new CA
    makes the old one useless anyway). Returns whether it was (re)issued.
    """
    crt, key_file = out / "server.crt", out / "server.key"
    ca = x509.load_pem_x509_certificate((folder / "ca.pem").read_bytes())
    if crt.exists() and key_file.exists():
        current = x509.load_pem_x509_certificate(crt.read_bytes())
        san = current.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        try:
            current.verify_directly_issued_by(ca)
            if set(hosts) <= set(san.get_values_for_type(x509.DNSName)):
                return False
        except (ValueError, TypeError, InvalidSignature):
            pass
    ca_key = serialization.load_pem_private_key((folder / "ca-key.pem").read_bytes(), password=None)
    assert isinstance(ca_key, ec.EllipticCurvePrivateKey)
    now = dt.datetime.now(dt.UTC)
    key = _key()
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(hosts[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=VALID_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(h) for h in hosts]), critical=False)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(ca_key, hashes.SHA256())
    )
    # The key first: a crash between the two leaves no certificate, so the next run reissues both.
    write_private(key_file, _pem_key(key))
    write_private(crt, cert.public_bytes(serialization.Encoding.PEM))
    crt.chmod(0o644)
    return True


def node_dns_names(keystore: Path) -> list[str]:
    """The DNS names of the node certificate in a PEM keystore (key first, then the certificate)."""
    cert = x509.load_pem_x509_certificate(keystore.read_bytes())
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    return list(san.get_values_for_type(x509.DNSName))


def load(state_dir: Path) -> KafkaSecrets:
    """Read what :func:`ensure` wrote; FileNotFoundError when the stack was never started secure."""
    folder = state_dir / FOLDER
    passwords = json.loads((folder / "users.json").read_text())
    return KafkaSecrets(folder, folder / "ca.pem", folder / "node.pem", passwords)


def scram_arguments(secrets_: KafkaSecrets) -> list[str]:
    """``kafka-storage format --add-scram`` arguments creating every principal's SCRAM user.

    The users live in the KRaft metadata from the first record on: no window in which the broker
    runs secure but nobody can log in, and no plaintext bootstrap to create them.
    """
    out: list[str] = []
    for user in PRINCIPALS:
        out += ["--add-scram", f"{MECHANISM}=[name={user},password={secrets_.password(user)}]"]
    return out
