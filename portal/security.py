"""Passwords, API tokens, signed session cookies and CSRF tokens — the portal's secrets handling.

Nothing secret is stored or logged in clear: passwords as argon2id hashes, API tokens as the SHA-256
of a 256-bit random secret (a token is a key, not a password: a fast hash is enough, and lookup by
hash stays an index probe), sessions as signed (not encrypted) cookies holding only the user id, the
account's session epoch and the CSRF token.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError
from itsdangerous import BadSignature, URLSafeTimedSerializer

__all__ = [
    "SessionCodec",
    "check_csrf",
    "hash_password",
    "hash_token",
    "new_csrf",
    "new_password",
    "new_token",
    "verify_password",
]

_HASHER = PasswordHasher()
TOKEN_PREFIX = "rst_"
"""Roster tokens start with this, so a leaked one is recognisable by secret scanners."""


def hash_password(password: str) -> str:
    """An argon2id hash (salted, parameters embedded)."""
    return _HASHER.hash(password)


def verify_password(stored_hash: str, password: str) -> bool:
    """Whether ``password`` matches; never raises on a mismatch or a malformed hash."""
    try:
        return _HASHER.verify(stored_hash, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def new_password() -> str:
    """A generated password for ``users add`` / ``users reset`` (shown once)."""
    return secrets.token_urlsafe(12)


def new_token() -> str:
    """A fresh roster-API bearer token (shown once, stored hashed)."""
    return TOKEN_PREFIX + secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    """The stored form of a bearer token."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def new_csrf() -> str:
    """A per-session CSRF token."""
    return secrets.token_urlsafe(24)


def check_csrf(expected: str | None, given: str | None) -> bool:
    """Constant-time comparison; a missing token on either side fails."""
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


class SessionCodec:
    """Signs and reads the session cookie's payload (a small dict), with an age limit."""

    def __init__(self, secret: str, max_age_s: float) -> None:
        self._serializer = URLSafeTimedSerializer(secret, salt="regsync-portal-session")
        self._max_age = max_age_s

    def dumps(self, payload: dict[str, Any]) -> str:
        """The cookie value."""
        return self._serializer.dumps(payload)

    def loads(self, value: str | None) -> dict[str, Any] | None:
        """The payload, or ``None`` when absent, tampered with or expired."""
        if not value:
            return None
        try:
            data = self._serializer.loads(value, max_age=int(self._max_age))
        except BadSignature:
            return None
        return data if isinstance(data, dict) else None
