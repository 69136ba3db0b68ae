"""民政 (civil affairs) connector: 社会服务机构 registrations from the provincial 民政 open API.

The API (``GET /api/v1/social-orgs?updated_since=&page=&page_size=``; rows are record versions sorted by
``(updateTime, id)``, fields in :mod:`simulators.minzheng_api`) cuts pages by OFFSET from the live
table, so offset paging loses rows committed mid-read before the reader's offset. We page by
**keyset**: each request is ``updated_since=<high-water mark>&page=1``, the tie set dropping rows
already taken at that instant; only a page made entirely of rows at the mark's instant (a tie group
bigger than a page) is stepped through by ``page+1``. One page is one ``Batch``, whose state covers
exactly the rows read: a request that keeps failing raises ``RetriableSourceError`` before anything of
its page is yielded. Retried with exponential backoff and jitter, up to ``max_attempts``: 429 (waiting
at least ``Retry-After``, capped at ``max_retry_after``), 5xx, a non-zero body ``code``, bad JSON,
timeouts and connection errors; other 4xx (401/403: the token) raise ``FatalSourceError``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import operator
import re
import time
from collections.abc import Callable, Iterator, Mapping
from decimal import Decimal
from typing import Any, ClassVar, Final

import httpx
import tenacity
from pydantic import SecretStr

from connectors import base
from schemas.errors import RetriableError
from schemas.events import (
    EventType,
    FieldChange,
    Institution,
    InstitutionStatus,
    JurisdictionMove,
    LegalForm,
    Lineage,
    ProfitNature,
    Registrar,
    RegistrationEvent,
    ServiceForm,
)
from schemas.masking import mask_phone, mask_resident_id

log = logging.getLogger(__name__)

PATH: Final = "/api/v1/social-orgs"
MAX_PAGE_SIZE: Final = 500
EXTRACTED_BY: Final = "connectors.minzheng@0.1.0"
UPDATE_TIME_FORMAT: Final = "%Y-%m-%dT%H:%M:%S"
_CURSOR = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}")  # fixed width: string order is time order
_RETRIED = (httpx.TimeoutException, httpx.NetworkError, httpx.RemoteProtocolError)

CHANGE_TYPES: Final[Mapping[str, EventType]] = {
    "01": EventType.ESTABLISHED,  # 成立登记
    "02": EventType.CHANGED,  # 变更登记
    "03": EventType.DEREGISTERED,  # 注销登记
    "04": EventType.REVOKED,  # 撤销登记 (the penalty; 社会服务机构 are not 吊销)
    "05": EventType.MOVED_IN,
    "06": EventType.MOVED_OUT,
    "07": EventType.SCOPE_ADDED_CHILDCARE,
    "08": EventType.SCOPE_REMOVED_CHILDCARE,
}
STATUSES: Final = {"正常": "ACTIVE", "已注销": "DEREGISTERED", "已撤销": "REVOKED", "已迁出": "MOVED_OUT"}
# 民办非企业单位 is the pre-2016 name of 社会服务机构, still on older rows.
ORG_TYPES: Final = dict.fromkeys(("社会服务机构", "民办非企业单位"), LegalForm.PRIVATE_NON_ENTERPRISE)
_PERSONAL = {"legalPersonIdNo": mask_resident_id, "legalPersonPhone": mask_phone}
SERVICE_FORMS: Final = {form.label_zh: form for form in ServiceForm}
CHANGE_ITEMS: Final = {
    "法定代表人": "legal_representative.name",
    "名称": "name",
    "住所": "address",
    "业务范围": "business_scope",
    "开办资金": "registered_capital",
}


class _Transient(RetriableError):
    """A response worth retrying; carries the server's ``Retry-After`` in seconds when it sent one."""

    def __init__(self, message: str, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class _Unusable(base.UnusableRecord):
    """A row that cannot become an event; the message is the DLQ reason."""


class MinzhengConnector(base.Connector):
    """Reads the 民政 open API incrementally; see the module docstring for paging and retries."""

    spec: ClassVar[base.ConnectorSpec] = base.ConnectorSpec(
        name="minzheng",
        registrar=Registrar.MINZHENG,
        source_system="minzheng-api",
        key="id",
        cursor_field="updateTime",
        description="社会服务机构 (民办非企业单位, USCC 52…) registrations from the provincial 民政 open API",
        surfaced_field="updateTime",
    )

    def __init__(
        self,
        base_url: str,
        *,
        token: SecretStr | str | None = None,
        timeout: float = 30.0,
        max_attempts: int = 6,
        backoff_initial: float = 0.5,
        backoff_max: float = 30.0,
        jitter: float = 0.5,
        max_retry_after: float = 120.0,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self._token = SecretStr(token) if isinstance(token, str) else token
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.max_retry_after = max_retry_after
        self._sleep = sleep  # tests share a fake clock with the simulator's rate limit
        backoff = tenacity.wait_exponential(multiplier=backoff_initial, max=backoff_max)
        self._backoff = backoff + tenacity.wait_random(0, jitter)

    def batches(self, state: Mapping[str, Any], ctx: base.ExtractContext) -> Iterator[base.Batch]:
        """One batch per API page, in ``(updateTime, id)`` order, each with the state after it."""
        mark = base.HighWatermark.from_state(state)
        size = max(1, min(ctx.batch_size, MAX_PAGE_SIZE))
        since, page, end = mark.value, 1, ctx.local_end(UPDATE_TIME_FORMAT)
        headers = {"Authorization": f"Bearer {self._token.get_secret_value()}"} if self._token else {}
        with httpx.Client(base_url=self.base_url, headers=headers, timeout=self.timeout) as client:
            while True:
                rows = self._fetch(client, {"updated_since": since, "page": page, "page_size": size})
                batch, past_end = base.Batch(), False
                for row in rows:
                    if _after(row, end):  # surfaced after the as-of: left for the next run
                        past_end = True
                        break
                    mark = self._take(row, mark, batch, ctx)
                if batch.read:
                    batch.state = mark.to_state()
                    yield batch
                if past_end or len(rows) < size:
                    return
                if mark.value == since:
                    page += 1  # the whole page sat at the mark's instant: step through the tie group
                else:
                    since, page = mark.value, 1

    def _fetch(self, client: httpx.Client, params: dict[str, Any]) -> list[Any]:
        request = client.build_request("GET", PATH, params={k: v for k, v in params.items() if v is not None})
        retrying = tenacity.Retrying(
            stop=tenacity.stop_after_attempt(self.max_attempts),
            wait=self._wait,
            retry=tenacity.retry_if_exception_type((_Transient, *_RETRIED)),
            before_sleep=tenacity.before_sleep_log(log, logging.WARNING),
            sleep=self._sleep,
        )
        try:
            return retrying(self._get_once, client, request)
        except tenacity.RetryError as exc:
            last = exc.last_attempt.exception()
            raise base.RetriableSourceError(
                f"minzheng: GET {request.url} still failing after {exc.last_attempt.attempt_number} "
                f"attempts (last error: {last or 'none'}); the cursor was not advanced past the rows read"
            ) from last

    def _wait(self, state: tenacity.RetryCallState) -> float:
        """Exponential backoff with jitter; after a 429 at least ``Retry-After`` (up to the cap)."""
        backoff = self._backoff(state)
        exc = state.outcome.exception() if state.outcome else None
        if isinstance(exc, _Transient) and exc.retry_after is not None:
            return min(max(backoff, exc.retry_after), self.max_retry_after)
        return backoff

    def _get_once(self, client: httpx.Client, request: httpx.Request) -> list[Any]:
        response = client.send(request)
        status = response.status_code
        if status == 429 or status >= 500:
            raise _Transient(
                f"HTTP {status} at {request.url}",
                base.retry_after_seconds(response.headers.get("Retry-After")),
            )
        if status != 200:  # 401/403 (token refused) and other 4xx: retrying will not help
            raise base.FatalSourceError(f"minzheng: GET {request.url}: HTTP {status} {response.text[:200]}")
        try:
            body = response.json()
        except ValueError as exc:
            raise _Transient(f"unreadable JSON ({exc})") from exc
        if not isinstance(body, dict):  # e.g. a bare array: the gateway, not the API, answered
            raise _Transient(f"the body is a JSON {type(body).__name__}, not a JSON object")
        if body.get("code") != 0:
            raise _Transient(f"API code {body.get('code')}: {body.get('msg')}")
        records = body["data"].get("records") if isinstance(body.get("data"), dict) else None
        if not isinstance(records, list):
            raise base.FatalSourceError(f"minzheng: {request.url} sent no data.records; has the API changed?")
        return records

    def _take(
        self, row: Any, mark: base.HighWatermark, batch: base.Batch, ctx: base.ExtractContext
    ) -> base.HighWatermark:
        """Account for one row in ``batch`` and return the mark after it (unchanged if already taken)."""
        row = row if isinstance(row, dict) else {"row": row}
        key, version, cursor = row.get("id"), row.get("version"), row.get("updateTime")
        if not isinstance(cursor, str) or not _CURSOR.fullmatch(cursor):  # cannot be placed on the cursor
            batch.read += 1
            batch.invalid.append(_invalid(row, f"updateTime {cursor!r} is not YYYY-MM-DDTHH:MM:SS"))
            return mark
        if mark.value is not None and cursor < mark.value:
            raise base.FatalSourceError(f"minzheng: record {key} ({cursor}) sorts before cursor {mark.value}")
        # Rows are versions, so the tie key is id@version; a row without them is known by its content.
        tie_key = f"{key}@{version}" if key and version is not None else None
        tie_key = tie_key or hashlib.sha1(json.dumps(row, sort_keys=True, default=str).encode()).hexdigest()
        if not mark.admits(cursor, tie_key):
            return mark
        batch.read += 1

        def make() -> RegistrationEvent | None:
            if not key or version is None:
                raise _Unusable("no id or version")
            return self._event(row, str(key), str(version), cursor, ctx)

        self.take(batch, str(key or ""), _masked(row), make, f"minzheng: record {key or '(no id)'}")
        return mark.advance(cursor, tie_key)

    def _event(
        self, row: Mapping[str, Any], key: str, version: str, cursor: str, ctx: base.ExtractContext
    ) -> RegistrationEvent | None:
        """The event of a row; ``None`` for a non-childcare row. Faulty values pass on to the gate."""
        name, scope = _text(row, "orgName"), _text(row, "businessScope")
        if not name and not scope:  # nothing to judge childcare by: unreadable, not "not childcare"
            raise _Unusable("neither orgName nor businessScope")
        if not self.is_childcare(scope, name):
            return None
        event_type = base.event_type_from(str(row.get("changeType")), CHANGE_TYPES, self.spec.name, key)
        if (event_date := base.parse_date(row.get("approveDate"))) is None:
            raise _Unusable("approveDate is missing")
        status = InstitutionStatus(STATUSES[row.get("status") or ""])
        funds, forms, places = row.get("openingFunds"), row.get("serviceForms"), row.get("nurseryPlaces")
        capital = None if funds in (None, "") else Decimal(str(funds))
        service_forms = None if forms is None else tuple(SERVICE_FORMS[f] for f in forms)
        capacity = None if places is None else operator.index(places)  # an int, not 12.5 or "12"
        changes = [
            FieldChange(CHANGE_ITEMS.get(c["item"], c["item"]), c.get("before"), c.get("after"))
            for c in row.get("changeItems") or ()
        ]
        address = row.get("address") or ""
        rep = (row.get("legalPerson"), row.get("legalPersonIdNo"), row.get("legalPersonPhone"))
        county, resolution = self.resolve_county(address, row.get("addressAreaCode"))
        moved_from, moved_to = row.get("moveFromAreaCode"), row.get("moveToAreaCode")
        institution = Institution(
            uscc=row.get("creditCode") or "",
            name=name,
            legal_form=ORG_TYPES.get(row.get("orgType") or "", LegalForm.OTHER),
            profit_nature=ProfitNature.NON_PROFIT,
            address=address,
            business_scope=scope,
            status=status,
            county_code=county,
            county_resolution=resolution,
            legal_representative=base.legal_representative(*rep, ctx.extracted_at.date()),
            registered_capital=capital,
            service_forms=service_forms,
            capacity=capacity,
        )
        return RegistrationEvent.build(
            event_type=event_type,
            registrar=Registrar.MINZHENG,
            event_date=event_date,
            extracted_at=ctx.extracted_at,
            institution=institution,
            lineage=Lineage(self.spec.source_system, key, version, EXTRACTED_BY, cursor),
            changed_fields=changes,
            jurisdiction=JurisdictionMove(moved_from, moved_to) if moved_from or moved_to else None,
        )


def _after(row: Any, end: str) -> bool:
    """Whether a row's ``updateTime`` lies past the run's end bound (unplaceable rows are not)."""
    cursor = row.get("updateTime") if isinstance(row, dict) else None
    return isinstance(cursor, str) and bool(_CURSOR.fullmatch(cursor)) and cursor > end


def _masked(row: Mapping[str, Any]) -> dict[str, Any]:
    """The row for the DLQ; personal numbers masked even there."""
    return {**row, **{name: mask(str(row[name])) for name, mask in _PERSONAL.items() if row.get(name)}}


def _invalid(row: Mapping[str, Any], reason: str) -> base.InvalidRecord:
    """A DLQ entry for a row that cannot even be placed on the cursor."""
    key = str(row.get("id") or "")
    return base.InvalidRecord.of(key, _masked(row), f"minzheng: record {key or '(no id)'}: {reason}")


def _text(row: Mapping[str, Any], name: str) -> str:
    """A text field; another JSON type there makes the row unusable (a number is not a name)."""
    value = row.get(name)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise _Unusable(f"{name} is {type(value).__name__}, not text: {value!r:.60}")
    return value
