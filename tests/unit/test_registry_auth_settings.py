"""Registry credentials come from settings, both or neither, and reach Apicurio only through a file."""

from __future__ import annotations

import pytest
from pydantic import SecretStr

from regsync.settings import Settings
from regsync.stack.schema_registry import admin_credentials, auth_properties
from schemas.errors import ConfigurationError


def test_both_or_neither() -> None:
    assert Settings(registry_username=None, registry_password=None).registry_auth() is None
    assert Settings(registry_username="admin", registry_password=SecretStr("x" * 20)).registry_auth() == (
        "admin",
        "x" * 20,
    )
    with pytest.raises(ConfigurationError):
        Settings(registry_username="admin").registry_auth()
    with pytest.raises(ConfigurationError):
        Settings(registry_password=SecretStr("x" * 20)).registry_auth()


def test_the_password_never_shows_in_settings_repr() -> None:
    settings = Settings(registry_username="admin", registry_password=SecretStr("hunter2-hunter2-hunter2"))
    assert "hunter2" not in repr(settings)


@pytest.mark.parametrize(
    ("user", "password"),
    [
        ("admin\nquarkus.http.auth.basic=false", "a" * 20),
        ("admin", "short"),
        ("admin", "a" * 20 + "${env.HOME}"),
        ("admin", "a" * 20 + "\napicurio.auth.role-based-authorization=false"),
    ],
)
def test_nothing_can_be_smuggled_into_the_properties_file(user: str, password: str) -> None:
    with pytest.raises(ValueError, match="registry"):
        auth_properties(user, password)


def test_writes_are_authenticated_and_reads_anonymous() -> None:
    text = auth_properties("regsync-admin", "p" * 24)
    lines = set(text.splitlines())
    assert "quarkus.http.auth.basic=true" in lines
    assert "quarkus.security.users.embedded.roles.regsync-admin=sr-admin" in lines
    assert "apicurio.auth.role-based-authorization=true" in lines
    assert "apicurio.auth.anonymous-read-access.enabled=true" in lines


def test_the_local_admin_is_generated_once_and_private(tmp_path) -> None:
    first = admin_credentials(tmp_path)
    assert admin_credentials(tmp_path) == first
    assert len(first[1]) >= 24
    secret = next(tmp_path.rglob("admin.secret"))
    assert secret.stat().st_mode & 0o077 == 0


def test_resolved_endpoints_never_show_the_admin_in_a_repr() -> None:
    from regsync.endpoints import Services
    from regsync.stack.launcher import Endpoints

    secret = "s3cret-s3cret-s3cret"
    assert secret not in repr(Services("k:9092", "http://r", "sqlite://", ("admin", secret)))
    assert secret not in repr(Endpoints("k:9092", "http://r", None, ("admin", secret)))
