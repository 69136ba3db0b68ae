"""No default passwords: every secret in docker/compose.yaml is required, and documented.

A plain text check (no Docker needed): compose's ``${VAR:-default}`` and ``${VAR-default}`` would
start a deployment on a known password, ``${VAR:?message}`` refuses to start without one.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
COMPOSE = ROOT / "docker" / "compose.yaml"
EXAMPLE = ROOT / "docker" / ".env.example"
SECRET = re.compile(r"PASSWORD|SECRET|_KEY$|TOKEN|FERNET")
# ${NAME}, ${NAME:-x}, ${NAME-x}, ${NAME:?x}, ${NAME?x}
USE = re.compile(r"\$\{([A-Z][A-Z0-9_]*)(?:(:?[-?+])([^}]*))?\}")

sys.path.insert(0, str(ROOT / "scripts"))
from secrets_init import generate, init, names  # noqa: E402


def _uses(text: str) -> list[tuple[str, str, str]]:
    return [(m.group(1), m.group(2) or "", m.group(3) or "") for m in USE.finditer(text)]


def test_every_secret_is_required_never_defaulted() -> None:
    uses = [u for u in _uses(COMPOSE.read_text(encoding="utf-8")) if SECRET.search(u[0])]
    assert uses, "the check found no secrets at all: the pattern is broken"
    offenders = [f"${{{n}{op}{arg}}}" for n, op, arg in uses if op != ":?"]
    assert offenders == []


def test_no_password_is_written_into_the_file() -> None:
    text = COMPOSE.read_text(encoding="utf-8")
    # user:password@host in a URL must take the password from a variable
    literal = [m.group(0) for m in re.finditer(r"://[\w.-]+:([^@$\s]+)@", text)]
    assert literal == []
    for match in re.finditer(r"^\s*([A-Z][A-Z0-9_]*):[ \t]*(\S.*)$", text, re.MULTILINE):
        key, value = match.groups()
        if SECRET.search(key) and not key.endswith("_FILE") and "${" not in value:
            pytest.fail(f"literal secret: {match.group(0).strip()}")


# Required by compose but not a secret: a choice the operator makes (docker/README.md), never generated.
REQUIRED_SETTINGS = {"REGSYNC_AIRFLOW__START_DATE"}


def test_the_example_documents_exactly_the_secrets_compose_needs() -> None:
    required = {n for n, op, _ in _uses(COMPOSE.read_text(encoding="utf-8")) if op == ":?"}
    assert required >= REQUIRED_SETTINGS  # still required, so the exclusion below stays honest
    assert set(names(EXAMPLE)) == required - REQUIRED_SETTINGS
    assert all(not value for value in _values(EXAMPLE).values()), "the example holds no values"


def _values(path: Path) -> dict[str, str]:
    return dict(line.split("=", 1) for line in path.read_text().splitlines() if re.match(r"^[A-Z]", line))


def test_the_generator_fills_every_secret_once_privately_and_keeps_what_is_set(tmp_path: Path) -> None:
    env = tmp_path / ".env"
    env.write_text("REGSYNC_DB_PASSWORD=\nPOSTGRES_PASSWORD=mine-mine-mine-mine\n", encoding="utf-8")
    added = init(env, EXAMPLE)
    assert "POSTGRES_PASSWORD" not in added
    values = _values(env)
    assert values["POSTGRES_PASSWORD"] == "mine-mine-mine-mine"
    assert set(values) == set(names(EXAMPLE))
    assert all(re.fullmatch(r"[A-Za-z0-9_=-]{32,}", v) for k, v in values.items() if k != "POSTGRES_PASSWORD")
    assert len(set(values.values())) == len(values)  # no value reused
    assert env.stat().st_mode & 0o077 == 0
    assert init(env, EXAMPLE) == []
    assert _values(env) == values


def test_the_fernet_key_is_one_airflow_accepts() -> None:
    from cryptography.fernet import Fernet

    Fernet(generate("AIRFLOW_FERNET_KEY").encode())
