"""A small populated filing store for the portal's tests and the browser test (SQLite or PostgreSQL)."""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass, field
from pathlib import Path

import sqlalchemy as sa
from offset_ranges import ranges_of

from portal import accounts
from portal.db import open_engine
from sink.exports import export_month
from sink.filing import import_filings
from sink.loader import load_month
from sink.models import institutions
from sink.synthetic import synthetic_month

OWN, FOREIGN = "370102", "441802"
COUNTIES = ("370102", "370103", "441802", "441803")
MONTHS = ("2025-03", "2025-04")
PASSWORD = "correct horse battery 9"


@dataclass
class World:
    url: str
    out: Path
    engine: sa.Engine
    own_uscc: list[str] = field(default_factory=list)
    foreign_uscc: list[str] = field(default_factory=list)
    tokens: dict[str, str] = field(default_factory=dict)


def build(url: str, out: Path, per_month: int = 120) -> World:
    engine = open_engine(url)
    serial = 0
    for i, month in enumerate(MONTHS):
        events = list(
            synthetic_month(
                per_month,
                month=month,
                seed=i,
                counties=COUNTIES,
                start_serial=serial,
                first_offset=i * 10_000,
            )
        )
        serial += per_month
        ranges = ranges_of(events)
        load_month(
            engine,
            month=month,
            topic="registrations.valid",
            positioned=events,
            offset_ranges=ranges,
            run_id=f"r{i}",
        )
    # packages only for the first month: the second is then "本月无推送" for every county
    export_month(engine, MONTHS[0], out / "packages")
    world = World(url, out, engine)
    with engine.connect() as conn:
        for code, bucket in ((OWN, world.own_uscc), (FOREIGN, world.foreign_uscc)):
            bucket.extend(
                conn.scalars(
                    sa.select(institutions.c.uscc)
                    .where(
                        institutions.c.county_code == code,
                        institutions.c.status == "ACTIVE",
                        institutions.c.childcare.is_(True),
                    )
                    .order_by(institutions.c.uscc)
                )
            )
    # a few filings from the provincial system (some public 公示 rows in both provinces)
    path = out / "filings.csv"
    with path.open("w", encoding="utf-8-sig", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["统一社会信用代码", "备案编号", "备案日期", "县级行政区划代码", "状态"])
        for k, uscc in enumerate(world.own_uscc[:3] + world.foreign_uscc[:3]):
            writer.writerow([uscc, f"SEED{k:03d}", "2025-06-01", "", "已备案"])
    import_filings(engine, path)
    for name, role, region in (
        ("bureau_a", "bureau", OWN),
        ("bureau_b", "bureau", FOREIGN),
        ("city_a", "city", "3701"),
        ("prov_a", "province", "37"),
        ("auditor", "auditor", None),
        ("admin", "admin", None),
    ):
        accounts.add_user(engine, name, role, region, PASSWORD)
    world.tokens["3701"] = accounts.add_token(engine, "消防", "3701")[1]
    world.tokens["4418"] = accounts.add_token(engine, "市场监管", "4418")[1]
    return world


SECRET = "test-session-secret-that-must-not-leak-0123456789"
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def csrf_of(client, path: str = "/login") -> str:
    match = CSRF.search(client.get(path).text)
    assert match, f"no CSRF field on {path}"
    return match.group(1)


def login(client, user: str, password: str = PASSWORD):
    token = csrf_of(client)
    response = client.post(
        "/login",
        data={"username": user, "password": password, "csrf": token, "next": "/"},
        follow_redirects=False,
    )
    assert response.status_code == 303, response.text[:500]
    return client
