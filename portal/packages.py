"""County packages as served: a deterministic zip with a signed manifest, empty months included.

Every county in a region gets a package for every loaded month. A month without pushes for a county
gets an explicit empty package (``rows: 0``, "本月无推送") so silence is never ambiguous. The zip
holds the files the pipeline wrote (``sink.exports``) plus:

* ``manifest.json.sig`` — Ed25519 signature of ``manifest.json`` (raw 64 bytes), verifiable with
  the public key the portal publishes (``openssl pkeyutl -verify -pubin -inkey … -rawin``);
* ``SHA256SUMS`` — ``sha256sum -c`` format, and the same hashes the manifest lists.

Zip entries carry a constant date and are sorted, so the same package always has the same SHA-256:
the receipt's hash identifies what the bureau received.
"""

from __future__ import annotations

import hashlib
import io
import json
import zipfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from sink.exports import CSV_NAME, MANIFEST_NAME, XLSX_NAME

SIGNATURE_NAME = MANIFEST_NAME + ".sig"
SUMS_NAME = "SHA256SUMS"
EMPTY_NOTE = "本月无推送 / No registrations were pushed to this county this month"
_EPOCH = (1980, 1, 1, 0, 0, 0)


def signing_key(seed_hex: str | None, fallback_secret: str) -> Ed25519PrivateKey:
    """The manifest signing key: a configured 32-byte seed, else one derived from the session secret."""
    seed = (
        bytes.fromhex(seed_hex)
        if seed_hex
        else hashlib.sha256(b"manifest:" + fallback_secret.encode()).digest()
    )
    return Ed25519PrivateKey.from_private_bytes(seed)


def public_pem(key: Ed25519PrivateKey) -> str:
    """The public key clerks verify signatures with (PEM, SubjectPublicKeyInfo)."""
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def verify(public: Ed25519PublicKey, manifest: bytes, signature: bytes) -> bool:
    """Whether ``signature`` is the key's signature of ``manifest``."""
    from cryptography.exceptions import InvalidSignature

    try:
        public.verify(signature, manifest)
    except InvalidSignature:
        return False
    return True


@dataclass(frozen=True, slots=True)
class Package:
    """One served package: zip bytes, their SHA-256, rows, and whether it is an empty month."""

    month: str
    county_code: str
    data: bytes
    sha256: str
    rows: int
    empty: bool
    manifest: dict[str, Any]


def build(
    key: Ed25519PrivateKey,
    month: str,
    county_code: str,
    county_name: str,
    push: dict[str, Any] | None,
    loaded_at: datetime | None,
) -> Package:
    """The zip of one county's month: the written package, or an explicit empty one."""
    files: dict[str, bytes] = {}
    if push is not None:
        for name, column in (
            (CSV_NAME, "csv_path"),
            (XLSX_NAME, "xlsx_path"),
            (MANIFEST_NAME, "manifest_path"),
        ):
            path = Path(push[column])
            if not path.is_file():
                raise FileNotFoundError(f"package file missing on the server: {path.name}")
            files[name] = path.read_bytes()
        manifest = json.loads(files[MANIFEST_NAME])
    else:
        stamp = (loaded_at or datetime(2000, 1, 1, tzinfo=UTC)).astimezone(UTC).isoformat(timespec="seconds")
        manifest = {
            "month": month,
            "county_code": county_code,
            "county_name": county_name,
            "rows": 0,
            "rows_by_event_type": {},
            "late": 0,
            "files": {},
            "note": EMPTY_NOTE,
            "generated_at": stamp,
        }
        files[MANIFEST_NAME] = (
            json.dumps(manifest, ensure_ascii=False, indent=2, sort_keys=True).encode() + b"\n"
        )
    files[SIGNATURE_NAME] = key.sign(files[MANIFEST_NAME])
    files[SUMS_NAME] = "".join(
        f"{hashlib.sha256(files[n]).hexdigest()}  {n}\n" for n in sorted(files) if n != SUMS_NAME
    ).encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        for name in sorted(files):
            entry = zipfile.ZipInfo(name, _EPOCH)
            entry.compress_type = zipfile.ZIP_DEFLATED
            entry.external_attr = 0o644 << 16
            archive.writestr(entry, files[name])
    data = buffer.getvalue()
    return Package(
        month,
        county_code,
        data,
        hashlib.sha256(data).hexdigest(),
        int(manifest.get("rows", 0)),
        push is None,
        manifest,
    )
