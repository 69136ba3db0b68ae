"""After the first fetch nothing is downloaded again: Maven is not even called."""

from __future__ import annotations

from regsync.settings import StackSettings
from regsync.stack.artifacts import apicurio_app, kafka_libs


def test_cached_artifacts_need_no_maven(stack, monkeypatch):
    s = StackSettings()
    monkeypatch.setenv("PATH", "/nonexistent")  # a Maven call would now fail with MissingPrerequisiteError
    kafka = kafka_libs(s.cache_dir, s.kafka_version, s.log4j_version, None)
    registry = apicurio_app(s.cache_dir, s.apicurio_version)
    assert kafka.fetch_seconds == 0.0
    assert registry.fetch_seconds == 0.0
    assert any(kafka.path.glob(f"kafka_2.13-{s.kafka_version}.jar"))
    assert registry.path.exists()
