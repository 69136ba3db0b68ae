"""Personal data at rest (issue 13 item 9): nothing a demo run writes holds an unmasked resident ID or
mobile number — every record of every topic (aborted transactions included), every row of every
table, every file of the output folder (inside zips and XLSX too).

The registrar simulators' folder (``sim/``) is left out: they are the registrars' systems, which hold the
real values by design; what the pipeline writes from them is what is checked.
"""

from __future__ import annotations

import re
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka_auth import kafka_login, secure_wanted

from regsync.demo import run_demo
from regsync.settings import StackSettings
from regsync.stack.launcher import Endpoints, Stack
from schemas.resident_id import is_valid as is_resident_id

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        secure_wanted(),
        reason="regsync demo starts a plain stack of its own (run_demo has no --secure); it runs in the plain suite",
    ),
]

ID_LIKE = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")
MOBILE = re.compile(r"(?<![0-9A-Za-z])1[3-9]\d{9}(?![0-9A-Za-z])")  # not inside hashes or codes
FILE_IDENTITY = re.compile(r'(?:dev|ino)\\?"\s*:\s*\d+')  # also inside JSON kept as a JSON string
BINARY = {
    ".ttf",
    ".woff",
    ".woff2",
    ".eot",
    ".otf",
    ".png",
    ".jpg",
    ".jpeg",
    ".gif",
    ".ico",
}  # vendored assets


def _leaks(text: str) -> list[str]:
    ids = [m for m in ID_LIKE.findall(text) if is_resident_id(m)]  # all-digit USCCs are not IDs
    return ids + MOBILE.findall(text)


def _topic_texts(endpoints: Endpoints) -> Iterator[tuple[str, str]]:
    bootstrap, login = endpoints.bootstrap_servers, kafka_login(endpoints, "admin")
    admin = KafkaAdminClient(**login, bootstrap_servers=bootstrap)
    try:
        topics = [t for t in admin.list_topics() if not t.startswith("__") and not t.startswith("_")]
    finally:
        admin.close()
    consumer = KafkaConsumer(
        **login, bootstrap_servers=bootstrap, isolation_level="read_uncommitted", enable_auto_commit=False
    )
    try:
        for topic in topics:
            tps = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
            consumer.assign(tps)
            consumer.seek_to_beginning(*tps)
            ends = consumer.end_offsets(tps)
            for _ in range(600):  # bounded: a demo's topics hold a few thousand records
                if all(consumer.position(tp) >= ends[tp] for tp in tps):
                    break
                for records in consumer.poll(timeout_ms=500).values():
                    for r in records:
                        parts = [r.key or b"", r.value or b""] + [v or b"" for _, v in r.headers or ()]
                        yield (
                            f"{topic}@{r.partition}:{r.offset}",
                            " ".join(p.decode("utf-8", "ignore") for p in parts),
                        )
            else:
                pytest.fail(f"could not read {topic} to its end")
    finally:
        consumer.close()


def _table_texts(database_url: str) -> Iterator[tuple[str, str]]:
    engine = sa.create_engine(database_url)
    try:
        meta = sa.MetaData()
        meta.reflect(engine)
        with engine.connect() as conn:
            for table in meta.sorted_tables:
                for row in conn.execute(sa.select(table)):
                    text = " ".join("" if v is None else str(v) for v in row)
                    # The 教育 feed's file identity (device, inode) is a number, not a person's.
                    yield table.name, FILE_IDENTITY.sub("", text)
    finally:
        engine.dispose()


def _file_texts(folder: Path) -> Iterator[tuple[str, str]]:
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and p.suffix.lower() not in BINARY):
        data = path.read_bytes()
        if zipfile.is_zipfile(path):  # packages, XLSX workbooks
            with zipfile.ZipFile(path) as zf:
                for name in zf.namelist():
                    yield f"{path}!{name}", zf.read(name).decode("utf-8", "ignore")
        else:
            yield str(path), data.decode("utf-8", "ignore")


def test_a_demo_run_writes_no_unmasked_resident_id_or_mobile_number(tmp_path):
    root = tmp_path / "demo"
    run_demo(root=root, months=("2026-01", "2026-02"), per_month=20, keep_stack=True, say=lambda _m: None)
    stack = Stack(StackSettings(state_dir=root / "stack"))
    try:
        endpoints = stack.endpoints()
        assert endpoints is not None
        # The registrars' side does hold real values: the check below could fail.
        source_text = " ".join(text for _, text in _file_texts(root / "sim"))  # the registrars' systems
        assert _leaks(source_text), "the simulated registrar data should contain unmasked values"

        found: dict[str, list[str]] = {}
        scanned = 0
        for where, text in (
            *_topic_texts(endpoints),
            *_table_texts(endpoints.database_url),
            *_file_texts(root / "output"),
        ):
            scanned += 1
            leaks = _leaks(text)
            if leaks:
                at = text.find(leaks[0])
                found[where] = [*leaks[:3], text[max(0, at - 60) : at + 20]]
        assert scanned > 500
        assert found == {}, f"{len(found)} places hold unmasked personal data, e.g. {list(found.items())[:5]}"
    finally:
        stack.down()
