"""Process logging: one configuration for the CLI and the DAG tasks, the run id on every line.

Importing a module of ours never changes logging (kafka-python's chatter used to be silenced at
import of ``regsync.kafka.bus``, for every program that imported it). The CLI calls
:func:`configure` once, from ``--log-level`` and ``--log-json``; a stage that starts a run calls
:func:`bind_run_id` so every line it logs says which run wrote it.
"""

from __future__ import annotations

import contextvars
import json
import logging
import sys
import uuid
from datetime import UTC, datetime
from typing import TextIO

#: The run a line belongs to: the process's own id until a stage binds its run id.
_run_id: contextvars.ContextVar[str] = contextvars.ContextVar("regsync_run_id", default="-")

LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")


def new_process_run_id() -> str:
    """An id for a process that has no stage run (yet): ``proc-<12 hex>``."""
    return f"proc-{uuid.uuid4().hex[:12]}"


def bind_run_id(run_id: str) -> None:
    """Stamp every later log line of this context with ``run_id`` (a stage's own run id)."""
    _run_id.set(run_id)


def current_run_id() -> str:
    """The run id log lines carry now."""
    return _run_id.get()


class _RunIdFilter(logging.Filter):
    """Puts ``run_id`` on every record, including those of third-party loggers."""

    def filter(self, record: logging.LogRecord) -> bool:
        if not hasattr(record, "run_id"):
            record.run_id = _run_id.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: what log shippers parse without a grok pattern."""

    def format(self, record: logging.LogRecord) -> str:
        """The record as one JSON line (ts, level, logger, run_id, msg, exc)."""
        payload: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "run_id": getattr(record, "run_id", _run_id.get()),
            "msg": record.getMessage(),
        }
        if record.exc_info:
            payload["exc"] = self.formatException(record.exc_info)
        return json.dumps(payload, ensure_ascii=False)


TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s [%(run_id)s] %(message)s"


def configure(level: str = "WARNING", json_lines: bool = False, stream: TextIO | None = None) -> None:
    """Configure the root logger once per process (the CLI's global options call this).

    kafka-python logs connection churn at INFO/WARNING on every broker restart; it stays at WARNING
    or above unless the operator asks for DEBUG.
    """
    name = level.upper()
    if name not in LEVELS:
        raise ValueError(f"log level must be one of {', '.join(LEVELS)}, got {level!r}")
    if _run_id.get() == "-":
        bind_run_id(new_process_run_id())
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.addFilter(_RunIdFilter())
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        if getattr(old, "_regsync", False):
            root.removeHandler(old)
    handler._regsync = True  # type: ignore[attr-defined]  # marks our handler for a reconfigure
    root.addHandler(handler)
    root.setLevel(name)
    logging.getLogger("kafka").setLevel(name if name == "DEBUG" else max(logging.WARNING, root.level))
