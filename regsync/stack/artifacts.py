"""Fetch Kafka and Apicurio once from Maven Central into a cache folder, then reuse them offline.

Maven does the resolving (transitive Kafka dependencies, checksums, its own ~/.m2 cache); we only
copy the result into ``<cache>/<name>-<version>/`` and drop a ``.complete`` marker last, so a fetch
killed half-way is redone instead of used.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import subprocess
import tarfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from regsync.stack.prereq import find_maven
from schemas.errors import FatalError

MARKER = ".complete"


@dataclass(frozen=True, slots=True)
class Fetched:
    """Where an artifact lives and how long getting it took (0 when it came from the cache)."""

    path: Path
    fetch_seconds: float


@contextmanager
def folder_lock(folder: Path, name: str, *, mode: int = 0o777) -> Iterator[None]:
    """One process at a time in ``folder`` (an advisory ``flock`` on ``folder/name``, made if missing).

    Two processes (pytest-xdist, a CLI beside a test run, two compose init containers) must not fill
    one folder at once.
    """
    folder.mkdir(parents=True, exist_ok=True, mode=mode)
    with open(folder / name, "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def _run_maven(args: list[str], what: str) -> None:
    mvn = find_maven()
    proc = subprocess.run([str(mvn), "-B", "-q", *args], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        tail = "\n".join((proc.stdout + proc.stderr).strip().splitlines()[-15:])
        raise FatalError(f"Maven could not fetch {what} (exit {proc.returncode}):\n{tail}")


def kafka_libs(cache_dir: Path, kafka_version: str, log4j_version: str, kafka_home: Path | None) -> Fetched:
    """The folder of jars to put on the broker's classpath."""
    if kafka_home is not None:
        libs = Path(kafka_home) / "libs"
        if not any(libs.glob("kafka_2.13-*.jar")):
            raise FatalError(
                f"KAFKA_HOME={kafka_home} has no libs/kafka_2.13-*.jar; is it an unpacked Kafka?"
            )
        return Fetched(libs, 0.0)
    target = cache_dir / f"kafka-{kafka_version}" / "libs"
    with folder_lock(cache_dir, ".fetch.lock"):
        if (target / MARKER).exists():
            return Fetched(target, 0.0)
        started = time.monotonic()
        staging = target.with_name("libs.partial")
        shutil.rmtree(staging, ignore_errors=True)
        pom = resources.files("regsync.stack").joinpath("kafka-pom.xml")
        with resources.as_file(pom) as pom_path:
            _run_maven(
                [
                    "-f",
                    str(pom_path),
                    "dependency:copy-dependencies",
                    f"-Dkafka.version={kafka_version}",
                    f"-Dlog4j.version={log4j_version}",
                    "-DincludeScope=runtime",
                    f"-DoutputDirectory={staging}",
                ],
                f"Apache Kafka {kafka_version}",
            )
        (staging / MARKER).write_text(kafka_version)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        return Fetched(target, time.monotonic() - started)


def _apicurio_entrypoint(root: Path) -> Path | None:
    """3.0.x ships ``*-runner.jar``; later 3.x ship the fast-jar ``quarkus-run.jar``."""
    for pattern in ("quarkus-run.jar", "*-runner.jar"):
        found = sorted(root.glob(pattern))
        if found:
            return found[0]
    return None


def apicurio_app(cache_dir: Path, version: str) -> Fetched:
    """The runnable jar of Apicurio Registry ``version`` (its ``tar.gz:all`` distribution, unpacked)."""
    target = cache_dir / f"apicurio-{version}"
    with folder_lock(cache_dir, ".fetch.lock"):
        if (target / MARKER).exists():
            entry = _apicurio_entrypoint(target)
            if entry is not None:
                return Fetched(entry, 0.0)
        started = time.monotonic()
        staging = target.with_name(f"apicurio-{version}.partial")
        shutil.rmtree(staging, ignore_errors=True)
        staging.mkdir(parents=True)
        _run_maven(
            [
                "dependency:copy",
                f"-Dartifact=io.apicurio:apicurio-registry-app:{version}:tar.gz:all",
                f"-DoutputDirectory={staging}",
            ],
            f"Apicurio Registry {version}",
        )
        archives = list(staging.glob("*.tar.gz"))
        if len(archives) != 1:
            raise FatalError(f"expected one Apicurio archive in {staging}, found {len(archives)}")
        with tarfile.open(archives[0]) as tar:
            tar.extractall(staging, filter="data")
        archives[0].unlink()
        entry = _apicurio_entrypoint(staging)
        if entry is None:
            raise FatalError(f"Apicurio {version} archive has no quarkus-run.jar or *-runner.jar")
        (staging / MARKER).write_text(version)
        shutil.rmtree(target, ignore_errors=True)
        os.replace(staging, target)
        return Fetched(target / entry.relative_to(staging), time.monotonic() - started)
