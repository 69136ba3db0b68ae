"""Find the programs the local stack needs, or fail with one line naming what to install."""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from regsync.stack.errors import MissingPrerequisiteError

MIN_JAVA = 17


@dataclass(frozen=True, slots=True)
class Java:
    """A Java runtime and its feature version (17, 21 …)."""

    executable: Path
    version: int


def _java_version(executable: Path) -> int | None:
    try:
        out = subprocess.run(
            [str(executable), "-version"], capture_output=True, text=True, timeout=30, check=False
        )
    except (OSError, subprocess.TimeoutExpired):
        return None
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if not match:
        return None
    major = int(match.group(1))
    # Java 8 and older report "1.8"; anything that old is below our minimum anyway.
    return int(match.group(2) or 0) if major == 1 else major


def find_java(java_home: Path | None = None, minimum: int = MIN_JAVA) -> Java:
    """Prefer the configured JAVA_HOME, then PATH; require at least ``minimum``."""
    candidates: list[Path] = []
    for home in (java_home, os.environ.get("JAVA_HOME")):
        if home:
            candidates.append(Path(home) / "bin" / "java")
    on_path = shutil.which("java")
    if on_path:
        candidates.append(Path(on_path))
    seen_versions: list[str] = []
    for candidate in candidates:
        if not candidate.exists():
            continue
        version = _java_version(candidate)
        if version is not None and version >= minimum:
            return Java(candidate, version)
        seen_versions.append(f"{candidate} is Java {version}")
    found = f" ({'; '.join(seen_versions)})" if seen_versions else ""
    raise MissingPrerequisiteError(
        f"Java {minimum}+",
        f"install a JDK {minimum} or newer (Debian: apt-get install openjdk-{minimum}-jdk-headless) "
        f"or set JAVA_HOME{found}",
    )


def find_maven() -> Path:
    """Maven resolves the Kafka and Apicurio artifacts on first use."""
    found = shutil.which("mvn")
    if not found:
        raise MissingPrerequisiteError(
            "Maven (mvn)", "install Apache Maven (Debian: apt-get install maven) to fetch Kafka and Apicurio"
        )
    return Path(found)


@dataclass(frozen=True, slots=True)
class PostgresBinaries:
    """The server programs of one PostgreSQL installation."""

    initdb: Path
    pg_ctl: Path
    postgres: Path


def find_postgres() -> PostgresBinaries:
    """PATH first, then Debian's versioned layout (/usr/lib/postgresql/N/bin), newest version first."""
    dirs: list[Path] = []
    on_path = shutil.which("pg_ctl")
    if on_path:
        dirs.append(Path(on_path).resolve().parent)
    versioned = sorted(
        glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name), reverse=True
    )
    dirs.extend(Path(d) for d in versioned)
    for d in dirs:
        names = {n: d / n for n in ("initdb", "pg_ctl", "postgres")}
        if all(p.exists() for p in names.values()):
            return PostgresBinaries(**names)
    raise MissingPrerequisiteError(
        "PostgreSQL server binaries (initdb, pg_ctl)",
        "install the PostgreSQL server (Debian: apt-get install postgresql) "
        "or set REGSYNC_DATABASE_URL to an existing database",
    )
