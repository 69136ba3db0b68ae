#!/usr/bin/env python3
"""Generate every secret docker/compose.yaml needs, once, into docker/.env (git-ignored, mode 0600).

The names come from docker/.env.example, so the example, this script and compose cannot drift apart.
A secret already in docker/.env is kept (re-running adds only what is missing); nothing is printed
but the names. Standard library only: it runs on a host with nothing of the project installed.

    python scripts/secrets_init.py [--env docker/.env] [--example docker/.env.example]
"""

from __future__ import annotations

import argparse
import base64
import os
import re
import secrets
import sys
from pathlib import Path

DOCKER = Path(__file__).resolve().parents[1] / "docker"
_LINE = re.compile(r"^([A-Z][A-Z0-9_]*)=(.*)$")


def names(example: Path) -> list[str]:
    """The variables the example file lists, in its order."""
    found = []
    for line in example.read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line.strip())
        if match:
            found.append(match.group(1))
    return found


def read_env(path: Path) -> dict[str, str]:
    """``NAME=value`` lines of an existing env file (comments and blanks skipped)."""
    if not path.exists():
        return {}
    values = {}
    for line in path.read_text(encoding="utf-8").splitlines():
        match = _LINE.match(line.strip())
        if match:
            values[match.group(1)] = match.group(2)
    return values


def _name(line: str) -> str | None:
    match = _LINE.match(line.strip())
    return match.group(1) if match else None


def generate(name: str) -> str:
    """A fresh value: URL-safe characters only, since passwords end up inside database URLs."""
    if name == "AIRFLOW_FERNET_KEY":
        # Fernet's key format is exactly url-safe base64 of 32 random bytes (cryptography's
        # Fernet.generate_key does the same); no need to install cryptography on the host for it.
        return base64.urlsafe_b64encode(os.urandom(32)).decode("ascii")
    return secrets.token_urlsafe(32)


def init(env: Path, example: Path) -> list[str]:
    """Add every missing (or empty) secret to ``env``; returns the names added."""
    current = read_env(env)
    added = [n for n in names(example) if not current.get(n)]
    if not added:
        return []
    lines = env.read_text(encoding="utf-8").splitlines() if env.exists() else []
    lines = [line for line in lines if _name(line) not in added]  # drop the empty "NAME=" lines
    lines += [f"{n}={generate(n)}" for n in added]
    fd = os.open(env, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(lines) + "\n")
    env.chmod(0o600)
    return added


def main(argv: list[str] | None = None) -> int:
    """Command line: generate what is missing, print the names (never the values)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, default=DOCKER / ".env")
    parser.add_argument("--example", type=Path, default=DOCKER / ".env.example")
    args = parser.parse_args(argv)
    added = init(args.env, args.example)
    if added:
        print(f"{args.env}: generated {', '.join(added)}")
    else:
        print(f"{args.env}: every secret already set; nothing changed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
