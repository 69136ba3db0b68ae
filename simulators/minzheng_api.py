"""The 民政 open API, simulated: a real HTTP server on loopback serving 社会服务机构 registrations.

A provincial 民政 (civil affairs) open-data platform publishes the register of 社会服务机构 (formerly
民办非企业单位, USCC ``52…``) as a paged JSON API. This module serves the world's 民政 records that way,
on ``127.0.0.1`` and a free port, from a stdlib ``ThreadingHTTPServer`` in a background thread (it
starts in milliseconds, needs no event loop, and :meth:`MinzhengApiSimulator.close` stops it and cuts
its keep-alive connections, so nothing outlives a test).

The API, which :mod:`connectors.minzheng` reads::

    GET /api/v1/social-orgs?updated_since=2026-01-01T00:00:00&page=1&page_size=100
    Authorization: Bearer <token>          (only when the simulator was given a token)
    → 200 {"code": 0, "msg": "ok",
           "data": {"total": T, "page": P, "pageSize": S, "records": [ … ]}}

* Each row is one *version* of a registration (a change-log row, 登记记录), not the current state: an
  institution changed twice between two reads shows both versions. Rows are sorted by
  ``(updateTime, id, version)``; ``updated_since`` is inclusive (``updateTime >= updated_since``) and
  optional; ``page`` counts from 1; ``page_size`` is 1 … ``max_page_size`` (500 by default).
* ``updateTime`` is Beijing local time (UTC+8) without offset, ``YYYY-MM-DDTHH:MM:SS``, so that plain
  string order is time order; it is the instant the version became visible (``surfaced_at``).
* Record fields (camelCase): ``id`` (登记记录号), ``version`` (int), ``updateTime``, ``changeType``
  (登记类型: ``01`` 成立登记, ``02`` 变更登记, ``03`` 注销登记, ``04`` 撤销登记, ``05`` 迁入, ``06`` 迁出,
  ``07`` 业务范围增加托育, ``08`` 业务范围删除托育), ``approveDate`` (核准日期, ``YYYY-MM-DD``),
  ``creditCode`` (统一社会信用代码), ``orgName``, ``orgType`` (``社会服务机构``, or the pre-2016 name
  ``民办非企业单位`` on older rows), ``legalPerson``, ``legalPersonIdNo`` and ``legalPersonPhone`` (in
  full: this is the source system), ``address`` (住所), ``addressAreaCode`` (住所所在区划, may be a 开发区
  code outside GB/T 2260), ``businessScope`` (业务范围), ``openingFunds`` (开办资金, 万元, decimal string),
  ``status`` (``正常`` / ``已注销`` / ``已撤销`` / ``已迁出``), ``serviceForms`` (list of 全日托/半日托/计时托/
  临时托), ``nurseryPlaces`` (托位数), ``changeItems`` (``[{"item": "法定代表人", "before", "after"}]``),
  ``moveFromAreaCode`` / ``moveToAreaCode``.
* Errors: 400 bad parameters, 401 missing or wrong token, 404 unknown path, 429 with ``Retry-After``
  (whole seconds, per RFC 9110), 500/502/503/504; the body is ``{"code": <status>, "msg": …}``.

Quirks (:class:`ApiQuirks`, deterministic from ``seed``, swappable at run time):

* **Rate limit**: at most ``rate_limit`` requests in any ``rate_window`` seconds (a sliding log of the
  requests let through); beyond that 429, with ``Retry-After`` = seconds until a slot frees, rounded up.
  A client that retries sooner is refused again, so ``max_consecutive_429`` shows whether it waited.
* **Server errors**: a share ``error_rate`` of requests answered 5xx, ``drop_rate`` closed without any
  answer (the client sees a connection error), and ``fail_after``: after that many requests every
  request gets 503 — the "the platform is down" mode.
* **Page boundaries**: pages are cut from the live table at request time (``OFFSET (page-1)*size``).
  A row committed between two page reads whose sort key falls before the reader's offset shifts all
  later rows by one: a naive offset reader sees one row twice and never sees the new one. In the world
  a version's ``updateTime`` is its commit instant, but :meth:`MinzhengApiSimulator.inject` commits rows
  stamped at any instant, the way a bulk import or a long transaction does (e.g. a row stamped with the
  same second as the last row a reader saw, but a smaller ``id``). The connector's answer is keyset
  paging; see :mod:`connectors.minzheng`.

Besides the world's (all childcare) 民政 records, the simulator registers seeded look-alikes
(:data:`LOOKALIKES`: 残疾人托养, 学生托管, 课后托管 and 早期教育 social organisations), with ground truth
``childcare: false``.
"""

from __future__ import annotations

import bisect
import contextlib
import json
import math
import random
import socket
import threading
import time
import zlib
from collections import Counter, deque
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from schemas.events import EventType, Registrar, ServiceForm
from simulators.base import Simulator
from simulators.world import SourceRecord, World, lookalike_records

API_PATH = "/api/v1/social-orgs"
BEIJING = timezone(timedelta(hours=8), "Asia/Shanghai")
UPDATE_TIME_FORMAT = "%Y-%m-%dT%H:%M:%S"

CHANGE_TYPE_CODES: dict[EventType, str] = {
    EventType.ESTABLISHED: "01",
    EventType.CHANGED: "02",
    EventType.DEREGISTERED: "03",
    EventType.REVOKED: "04",
    EventType.MOVED_IN: "05",
    EventType.MOVED_OUT: "06",
    EventType.SCOPE_ADDED_CHILDCARE: "07",
    EventType.SCOPE_REMOVED_CHILDCARE: "08",
}
STATUS_LABELS = {"ACTIVE": "正常", "DEREGISTERED": "已注销", "REVOKED": "已撤销", "MOVED_OUT": "已迁出"}
CHANGE_ITEM_LABELS = {
    "legal_representative.name": "法定代表人",
    "name": "名称",
    "address": "住所",
    "business_scope": "业务范围",
    "registered_capital": "开办资金",
}
# 社会服务机构 that look like childcare and are not (DOMAIN.md "Recognising childcare"): (name suffix,
# scope, USCC registrar+category), for :func:`simulators.world.lookalike_records`.
LOOKALIKES = (
    ("残疾人托养中心", "残疾人托养服务；康复训练", "52"),
    ("学生托管中心", "学生托管服务；午托、晚托", "52"),
    ("课后托管服务中心", "课后托管服务", "52"),
    ("早期教育指导中心", "早期教育咨询；亲子活动策划", "52"),
)


def update_time(moment: datetime) -> str:
    """The API's ``updateTime`` spelling of an instant: Beijing local time, no offset."""
    return moment.astimezone(BEIJING).strftime(UPDATE_TIME_FORMAT)


def render(record: SourceRecord) -> dict[str, Any]:
    """One record version as the API's JSON row."""
    snap = record.snapshot
    # Older rows keep the pre-2016 legal-form name; which ones is fixed by the record id.
    org_type = "民办非企业单位" if zlib.crc32(record.record_id.encode()) % 3 == 0 else "社会服务机构"
    return {
        "id": record.record_id,
        "version": record.version,
        "updateTime": update_time(record.surfaced_at),
        "changeType": CHANGE_TYPE_CODES[record.event_type],
        "approveDate": record.event_date.isoformat(),
        "creditCode": snap.uscc,
        "orgName": snap.name,
        "orgType": org_type,
        "legalPerson": snap.legal_rep.name,
        "legalPersonIdNo": snap.legal_rep.id_number,
        "legalPersonPhone": snap.legal_rep.phone,
        "address": snap.address,
        "addressAreaCode": snap.stated_division,
        "businessScope": snap.scope,
        "openingFunds": snap.capital_wan,
        "status": STATUS_LABELS[snap.status],
        "serviceForms": [ServiceForm(form).label_zh for form in snap.service_forms],
        "nurseryPlaces": snap.capacity,
        "changeItems": [
            {"item": CHANGE_ITEM_LABELS.get(name, name), "before": old, "after": new}
            for name, old, new in record.changed
        ],
        "moveFromAreaCode": record.moved_from,
        "moveToAreaCode": record.moved_to,
    }


# --------------------------------------------------------------------------------------------------
# The API


@dataclass(frozen=True, slots=True)
class ApiQuirks:
    """How badly the API behaves. Setting new quirks re-seeds the fault draws and ``fail_after``."""

    seed: int = 0
    rate_limit: int | None = None
    """Requests let through in any ``rate_window`` seconds; ``None`` means no limit."""
    rate_window: float = 1.0
    error_rate: float = 0.0
    """Share of requests answered 500/502/503/504."""
    drop_rate: float = 0.0
    """Share of requests whose connection is closed without an answer."""
    fail_after: int | None = None
    """After this many requests (counted from when these quirks were set) every request gets 503."""
    max_page_size: int = 500
    clock: Callable[[], float] = time.monotonic
    """The rate limit's clock. Tests pass one that advances only when the client sleeps, so whether
    a request lands inside the window never depends on how fast a loaded machine runs the client."""


@dataclass(slots=True)
class ApiStats:
    """What the server saw, so tests can prove retries happened (counted server-side)."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    dropped: int = 0
    max_consecutive_429: int = 0
    log: list[tuple[str, int]] = field(default_factory=list)
    """``(query string, status)`` per request; status 0 means the connection was dropped."""
    _run_429: int = 0

    def record(self, query: str, status: int) -> None:
        """Count one request."""
        self.requests += 1
        self.log.append((query, status))
        if status == 0:
            self.dropped += 1
        else:
            self.statuses[status] += 1
        self._run_429 = self._run_429 + 1 if status == 429 else 0
        self.max_consecutive_429 = max(self.max_consecutive_429, self._run_429)


@dataclass(frozen=True, slots=True)
class _Reply:
    status: int
    body: bytes
    headers: tuple[tuple[str, str], ...] = ()


def _error(status: int, msg: str, *headers: tuple[str, str]) -> _Reply:
    body = json.dumps({"code": status, "msg": msg}, ensure_ascii=False).encode()
    return _Reply(status, body, headers)


class _Api:
    """The table and the request logic, apart from HTTP plumbing; every request runs under one lock."""

    def __init__(self, quirks: ApiQuirks, token: str | None) -> None:
        self._lock = threading.Lock()
        self._keys: list[tuple[str, str, int]] = []  # (updateTime, id, version), sorted
        self._rows: list[bytes] = []  # JSON of each row, same order: pages are joined, not re-encoded
        self._token = token
        self.stats = ApiStats()
        self.set_quirks(quirks)

    def set_quirks(self, quirks: ApiQuirks) -> None:
        with self._lock:
            self.quirks = quirks
            self._rng = random.Random(quirks.seed)
            self._passed_since_quirks = 0
            self._window: deque[float] = deque()

    def insert(self, rows: Sequence[Mapping[str, Any]]) -> None:
        with self._lock:
            for row in rows:
                key = (
                    str(row.get("updateTime") or ""),
                    str(row.get("id") or ""),
                    int(row.get("version") or 0),
                )
                data = json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode()
                at = bisect.bisect_left(self._keys, key)
                if at < len(self._keys) and self._keys[at] == key:
                    self._rows[at] = data  # publishing is idempotent
                else:
                    self._keys.insert(at, key)
                    self._rows.insert(at, data)

    def handle(self, target: str, authorization: str | None) -> _Reply | None:
        """The reply to ``GET target``, or ``None`` to drop the connection without answering."""
        url = urlsplit(target)
        with self._lock:
            reply = self._decide(url.path, url.query, authorization)
            self.stats.record(url.query, 0 if reply is None else reply.status)
            return reply

    def _decide(self, path: str, query: str, authorization: str | None) -> _Reply | None:
        if path != API_PATH:
            return _error(404, f"no such resource: {path}")
        if self._token is not None and authorization != f"Bearer {self._token}":
            return _error(
                401, "未授权：缺少或错误的访问令牌", ("WWW-Authenticate", 'Bearer realm="minzheng"')
            )
        quirks = self.quirks
        if quirks.rate_limit is not None:
            now = quirks.clock()
            while self._window and self._window[0] <= now - quirks.rate_window:
                self._window.popleft()
            if len(self._window) >= quirks.rate_limit:
                wait = self._window[0] + quirks.rate_window - now
                return _error(429, "请求过于频繁", ("Retry-After", str(max(1, math.ceil(wait)))))
            self._window.append(now)
        self._passed_since_quirks += 1
        if quirks.fail_after is not None and self._passed_since_quirks > quirks.fail_after:
            return _error(503, "服务暂不可用")
        roll = self._rng.random()
        if roll < quirks.drop_rate:
            return None
        if roll < quirks.drop_rate + quirks.error_rate:
            return _error(self._rng.choice((500, 502, 503, 504)), "系统繁忙，请稍后再试")
        return self._page(parse_qs(query))

    def _page(self, params: dict[str, list[str]]) -> _Reply:
        since = (params.get("updated_since") or [""])[0].replace(" ", "T")
        try:
            if since:
                datetime.strptime(since, UPDATE_TIME_FORMAT)
            page = int((params.get("page") or ["1"])[0])
            size = int((params.get("page_size") or ["100"])[0])
        except ValueError as exc:
            return _error(400, f"参数错误: {exc}")
        if page < 1 or not 1 <= size <= self.quirks.max_page_size:
            return _error(400, f"参数错误: page >= 1, 1 <= page_size <= {self.quirks.max_page_size}")
        start = bisect.bisect_left(self._keys, (since,)) if since else 0
        offset = start + (page - 1) * size
        rows = self._rows[offset : offset + size]
        head = {"total": len(self._keys) - start, "page": page, "pageSize": size}
        prefix = json.dumps({"code": 0, "msg": "ok", "data": head}, ensure_ascii=False).encode()[:-2]
        return _Reply(200, prefix + b',"records":[' + b",".join(rows) + b"]}}")


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as a real API gateway speaks
    disable_nagle_algorithm = True  # headers and body go out as separate writes: no 40 ms delayed-ACK stall
    timeout = 30  # an idle keep-alive connection is closed after this many seconds
    server: _Server

    def do_GET(self) -> None:
        reply = self.server.api.handle(self.path, self.headers.get("Authorization"))
        if reply is None:
            self.close_connection = True  # drop: the client sees a disconnect, no status line
            return
        self.send_response(reply.status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(reply.body)))
        for name, value in reply.headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(reply.body)

    def log_message(self, format: str, *args: Any) -> None:
        """Silence the per-request stderr line; :class:`ApiStats` keeps the log."""


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address: tuple[str, int], api: _Api) -> None:
        super().__init__(address, _Handler)
        self.api = api
        self._open: set[socket.socket] = set()
        self._open_lock = threading.Lock()

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, address = super().get_request()
        with self._open_lock:
            self._open.add(sock)
        return sock, address

    def shutdown_request(self, request: Any) -> None:
        with self._open_lock:
            self._open.discard(request)
        super().shutdown_request(request)

    def cut_connections(self) -> None:
        """Close keep-alive connections still open, so their handler threads end now."""
        with self._open_lock:
            for sock in list(self._open):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


class MinzhengApiSimulator(Simulator):
    """The 民政 open API as a live HTTP server; see the module docstring for the API and its quirks."""

    registrar = Registrar.MINZHENG

    def __init__(
        self,
        world: World,
        root: Path,
        *,
        quirks: ApiQuirks | None = None,
        token: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(world, root)
        self.extra = lookalike_records(world, self.registrar, LOOKALIKES, "MZL")
        self.token = token
        self._api = _Api(quirks or ApiQuirks(seed=world.config.seed), token)
        self._server = _Server((host, port), self._api)
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="minzheng-api",
            daemon=True,
        )
        self._thread.start()
        self._closed = False

    @property
    def base_url(self) -> str:
        """``http://127.0.0.1:<port>``."""
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    @property
    def quirks(self) -> ApiQuirks:
        """The quirks in force."""
        return self._api.quirks

    @quirks.setter
    def quirks(self, quirks: ApiQuirks) -> None:
        self._api.set_quirks(quirks)

    @property
    def stats(self) -> ApiStats:
        """Requests the server has seen, by outcome."""
        return self._api.stats

    def pending(self, as_of: datetime) -> list[SourceRecord]:
        """The world's record versions plus this system's look-alikes, in surfacing order."""
        extra = [
            r for r in self.extra if r.surfaced_at <= as_of and (r.record_id, r.version) not in self.published
        ]
        return sorted(
            [*super().pending(as_of), *extra], key=lambda r: (r.surfaced_at, r.record_id, r.version)
        )

    def _write(self, records: list[SourceRecord], as_of: datetime) -> None:
        self._api.insert([render(r) for r in records])

    def inject(self, records: Sequence[SourceRecord]) -> None:
        """Commit versions outside the world's timeline (late commits, concurrent writers), with truth.

        Their ``updateTime`` comes from ``surfaced_at``, which may lie before rows already served.
        """
        self._write(list(records), datetime.now(BEIJING))
        self._append_truth(r.truth() for r in records)
        self.published.update((r.record_id, r.version) for r in records)

    def inject_rows(self, rows: Sequence[Mapping[str, Any]]) -> None:
        """Commit raw rows (e.g. malformed ones no world record can produce); no truth is written."""
        self._api.insert(rows)

    @property
    def location(self) -> str:
        """The base URL a reader is pointed at (``REGSYNC_SOURCES__MINZHENG_URL``)."""
        return self.base_url

    @property
    def reader_options(self) -> dict[str, Any]:
        """What else a reader needs (``REGSYNC_SOURCES__MINZHENG_TOKEN``): the bearer token, if any."""
        return {"token": self.token}

    def close(self) -> None:
        """Stop serving, cut open connections, and wait for the server thread."""
        if self._closed:
            return
        self._closed = True
        self._server.shutdown()
        self._server.cut_connections()
        self._server.server_close()
        self._thread.join(timeout=5)

    def __enter__(self) -> MinzhengApiSimulator:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
