"""The Connect peer's configuration, rendered without starting anything (the peer itself runs in the bench only)."""

from __future__ import annotations

from pathlib import Path

from bench.peers.connect import (
    CONNECTOR,
    TABLE,
    Versions,
    connector_config,
    jdbc,
    prune_plugin,
    registry_api,
    render,
    worker_properties,
)

DB = "postgresql+psycopg://postgres@127.0.0.1:5433/bench_100k_abcd1234"
CCOMPAT = "http://127.0.0.1:8081/apis/ccompat/v7"


def parse(text: str) -> dict[str, str]:
    """A minimal reader of what :func:`render` writes: ``key=value`` a line, backslash escapes."""
    out = {}
    for line in text.splitlines():
        key: list[str] = []
        value: list[str] = []
        target, chars = key, iter(line)
        for ch in chars:
            if ch == "\\":
                target.append(next(chars))
            elif ch == "=" and target is key:
                target = value
            else:
                target.append(ch)
        out["".join(key)] = "".join(value)
    return out


def test_registry_api_is_the_v3_api_beside_the_ccompat_one():
    assert registry_api(CCOMPAT) == "http://127.0.0.1:8081/apis/registry/v3"
    assert registry_api(CCOMPAT + "/") == "http://127.0.0.1:8081/apis/registry/v3"
    assert registry_api("http://h:1") == "http://h:1/apis/registry/v3"


def test_jdbc_url_user_and_password_come_from_the_sqlalchemy_url():
    assert jdbc(DB) == ("jdbc:postgresql://127.0.0.1:5433/bench_100k_abcd1234", "postgres", "")
    assert jdbc("postgresql+psycopg://u:p%40ss@db/x")[1:] == ("u", "p@ss")


def test_connector_reads_committed_avro_and_writes_one_flat_table_keyed_on_event_id():
    config = connector_config(topic="b.registrations.valid", registry_url=CCOMPAT, database_url=DB)
    assert config["name"] == CONNECTOR
    assert config["topics"] == "b.registrations.valid"
    assert config["consumer.override.isolation.level"] == "read_committed"
    assert config["value.converter"] == "io.apicurio.registry.utils.converter.AvroConverter"
    assert config["value.converter.apicurio.registry.use-id"] == "contentId"
    assert config["value.converter.apicurio.registry.headers.enabled"] == "false"
    assert config["transforms"] == "drop,flatten"
    assert config["transforms.drop.exclude"] == "changed_fields,quality_warnings"
    assert config["transforms.flatten.delimiter"] == "_"
    assert (config["primary.key.mode"], config["primary.key.fields"]) == ("record_value", "event_id")
    assert config["collection.name.format"] == TABLE
    assert config["insert.mode"] == "upsert"
    tuned = connector_config(
        topic="t", registry_url=CCOMPAT, database_url=DB, insert_mode="insert", batch_size=500, tasks=3
    )
    assert (tuned["insert.mode"], tuned["batch.size"], tuned["tasks.max"]) == ("insert", "500", "3")


def test_worker_listens_on_loopback_and_allows_client_overrides(tmp_path: Path):
    props = worker_properties("127.0.0.1:9092", 18083, tmp_path / "plugins", tmp_path / "offsets")
    assert props["listeners"] == "http://127.0.0.1:18083"
    assert props["connector.client.config.override.policy"] == "All"
    assert props["plugin.path"] == str(tmp_path / "plugins")


def test_render_escapes_what_java_properties_would_misread():
    props = {
        "a": "1",
        "transforms.drop.type": "org.apache.kafka.connect.transforms.ReplaceField$Value",
        "listeners": "http://127.0.0.1:8083",
        "weird key": "x=y#z",
        "path": "C:\\dir",
    }
    text = render(props)
    assert "listeners=http\\://127.0.0.1\\:8083\n" in text
    assert "weird\\ key=x\\=y\\#z\n" in text
    assert parse(text) == props


def test_prune_plugin_drops_jackson_and_kafka_clients_only(tmp_path: Path):
    names = [
        "jackson-core-2.19.0.jar",
        "jackson-databind-2.19.0.jar",
        "jackson-annotations-2.19.0.jar",
        "jackson-datatype-jsr310-2.19.0.jar",
        "kafka-clients-3.6.0.jar",
        "postgresql-42.7.7.jar",
    ]
    for name in names:
        (tmp_path / name).write_bytes(b"")
    dropped = prune_plugin(tmp_path)
    assert sorted(dropped) == sorted([*names[:3], "kafka-clients-3.6.0.jar"])
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "jackson-datatype-jsr310-2.19.0.jar",
        "postgresql-42.7.7.jar",
    ]


def test_cache_folder_names_every_version():
    folder = Versions().folder()
    for part in ("4.1.2", "3.4.0.Final", "3.0.9", "3.0.2"):
        assert part in folder
