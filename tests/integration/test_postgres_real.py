"""PostgreSQL is real and each test gets its own database."""

from __future__ import annotations

import sqlalchemy as sa


def test_round_trip_through_sqlalchemy(database_url):
    engine = sa.create_engine(database_url)
    meta = sa.MetaData()
    table = sa.Table(
        "institutions",
        meta,
        sa.Column("uscc", sa.String(18), primary_key=True),
        sa.Column("name", sa.Text, nullable=False),
    )
    meta.create_all(engine)
    with engine.begin() as conn:
        conn.execute(table.insert(), [{"uscc": "91350100M000100Y43", "name": "福州示范托育中心有限公司"}])
    with engine.connect() as conn:
        rows = conn.execute(sa.select(table.c.uscc, table.c.name)).all()
        server = conn.execute(sa.text("SELECT version()")).scalar_one()
        dbname = conn.execute(sa.text("SELECT current_database()")).scalar_one()
    engine.dispose()
    assert rows == [("91350100M000100Y43", "福州示范托育中心有限公司")]
    assert server.startswith("PostgreSQL")
    assert dbname.startswith("t_")
