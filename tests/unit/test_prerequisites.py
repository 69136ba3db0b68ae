"""A missing JDK, Maven or PostgreSQL ends in one line naming what to install, never a traceback."""

from __future__ import annotations

import subprocess
import sys

import pytest

from regsync.stack import prereq
from regsync.stack.errors import MissingPrerequisiteError
from schemas.errors import EXIT_CONFIG


def test_missing_java_names_the_package(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.delenv("JAVA_HOME", raising=False)
    with pytest.raises(MissingPrerequisiteError, match="openjdk-17-jdk-headless"):
        prereq.find_java()


def test_too_old_java_is_refused(monkeypatch, tmp_path):
    fake = tmp_path / "jdk" / "bin"
    fake.mkdir(parents=True)
    java = fake / "java"
    java.write_text("#!/bin/sh\necho 'openjdk version \"11.0.2\" 2019-01-15' >&2\n")
    java.chmod(0o755)
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingPrerequisiteError, match="Java 11"):
        prereq.find_java(java_home=tmp_path / "jdk")


def test_missing_maven(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    with pytest.raises(MissingPrerequisiteError, match="apt-get install maven"):
        prereq.find_maven()


def test_missing_postgres(monkeypatch):
    monkeypatch.setenv("PATH", "/nonexistent")
    monkeypatch.setattr(prereq.glob, "glob", lambda _pattern: [])
    with pytest.raises(MissingPrerequisiteError, match="apt-get install postgresql"):
        prereq.find_postgres()


def test_cli_prints_one_line_without_traceback(tmp_path):
    """With nothing on PATH, `stack up` fails on the first missing program in one readable line."""
    env = {
        "PATH": "/nonexistent",
        "HOME": str(tmp_path),
        "REGSYNC_STACK__STATE_DIR": str(tmp_path / "state"),
        "REGSYNC_STACK__WITH_POSTGRES": "false",
        "REGSYNC_STACK__CACHE_DIR": str(tmp_path / "cache"),
    }
    proc = subprocess.run(
        [sys.executable, "-m", "regsync", "stack", "up"], capture_output=True, text=True, env=env, check=False
    )
    assert proc.returncode == EXIT_CONFIG  # a person must install something
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, proc.stderr
    assert "not found" in lines[0]
    assert "install" in lines[0]
