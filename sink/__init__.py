"""The filing store: the health bureaus' roster of childcare institutions, loaded month by month.

Imports only ``schemas`` (plus SQLAlchemy, Alembic and openpyxl); it never talks to Kafka — the
composition root (``regsync.stages.load``) reads a month from the topic and hands the records over.

* :mod:`sink.models` — the tables; :mod:`sink.migrations` — their Alembic history;
  :mod:`sink.store` — engines, ``upgrade(url)``, the dialect-aware upsert.
* :mod:`sink.fold` — an institution's state as the pure fold of its events.
* :mod:`sink.loader` — ``load_month``: one month, one transaction, manifest included;
  :mod:`sink.rebuild` — replacing a loaded month and recomputing the roster from history.
* :mod:`sink.exports` / :mod:`sink.export_rows` — per-county push packages (CSV, XLSX, manifest).
* :mod:`sink.filing` — importing 备案 records and the filing gap (登记未备案 / 备案未登记).
* :mod:`sink.eventjson` — events as stored JSON, personal data masked at rest;
  :mod:`sink.synthetic` — lazily generated events for tests and benchmarks.
"""
