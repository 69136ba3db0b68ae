"""The portal's settings: ``REGSYNC_PORTAL_…`` environment variables (secrets only from there).

Kept beside the portal rather than in :mod:`regsync.settings` so the web service can be configured
without touching the pipeline's settings; the database defaults to the pipeline's (the portal is a
window onto the filing store, not a second store).
"""

from __future__ import annotations

import secrets
from functools import lru_cache
from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class PortalSettings(BaseSettings):
    """How the web service runs; validated once at start."""

    model_config = SettingsConfigDict(env_prefix="REGSYNC_PORTAL_", extra="ignore")

    database_url: SecretStr | None = Field(
        default=None, description="Override of the filing-store database (default: the pipeline's)."
    )
    session_secret: SecretStr = Field(
        default_factory=lambda: SecretStr(secrets.token_urlsafe(32)),
        description="Signs session cookies; unset means a random one per process (sessions end on restart).",
    )
    signing_key: SecretStr | None = Field(
        default=None,
        description="Ed25519 private key seed (64 hex digits) that signs package manifests; "
        "unset derives one from the session secret.",
    )
    output_dir: Path | None = Field(
        default=None, description="The pipeline's output folder (reports); default: the pipeline's."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    secure_cookies: bool = Field(default=False, description="Mark cookies Secure (serve over TLS).")
    session_hours: float = Field(default=8.0, gt=0, description="A session's lifetime.")
    max_failures: int = Field(default=5, ge=1, description="Failed logins before the account locks.")
    lockout_minutes: float = Field(default=15.0, gt=0, description="How long a lockout lasts.")


@lru_cache(maxsize=1)
def get_portal_settings() -> PortalSettings:
    """Settings for this process, read once."""
    return PortalSettings()
