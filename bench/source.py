"""A fast synthetic registrar for the pipeline benchmark: realistic events, generated lazily.

Events follow :func:`sink.synthetic.synthetic_month` (each institution 设立, then maybe 变更 and 注销;
a tenth of the 设立 dated in the previous month) with one difference that matters for speed: every
institution has its **own premises address** (in the county its code names) and its **own legal
representative**, so the gate's and the sink's memos miss as they would on a province's real data
(``synthetic_month`` repeats 200 addresses and one representative, which would flatter both).

:class:`SyntheticConnector` is an ordinary :class:`~connectors.base.Connector`: ``run_extract``
publishes its batches and commits its state like any registrar's. It counts the seconds spent
*building* events (``source_seconds``) so the benchmark can state the extract rate with and without
the source's own cost.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator, Mapping
from datetime import date, datetime, timedelta
from itertools import islice
from typing import Any, ClassVar
from zoneinfo import ZoneInfo

from connectors.base import Batch, Connector, ConnectorSpec, ExtractContext
from schemas.events import (
    EventType,
    FieldChange,
    InstitutionStatus,
    LegalRepresentative,
    Registrar,
    RegistrationEvent,
)
from sink.synthetic import COUNTIES, make_event, uscc_for

_SHANGHAI = ZoneInfo("Asia/Shanghai")
SURNAMES = (
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
)
GIVEN = (
    "伟芳娜秀英敏静丽强磊军洋勇艳杰娟涛明超秀兰霞平刚桂英华玉萍红娥玲芬燕彩春菊兰凤洁梅琳素云莲真环雪荣爱妹"
)
STREET: dict[str, str] = {
    "441802": "广东省清远市清城区凤城街道",
    "441803": "广东省清远市清新区太和镇",
    "370102": "山东省济南市历下区泉城路街道",
    "370103": "山东省济南市市中区大观园街道",
}


def synthetic_events(
    n: int, *, month: str, seed: int = 0, late_rate: float = 0.1
) -> Iterator[RegistrationEvent]:
    """``n`` events of institutions registered in ``month``, in constant memory (same seed, same events)."""
    rng = random.Random(seed)
    year, mon = int(month[:4]), int(month[5:])
    first = date(year, mon, 1)
    produced = serial = 0
    while produced < n:
        registrar = rng.choice((Registrar.SHICHANG, Registrar.SHENPI, Registrar.MINZHENG))
        county = COUNTIES[serial % len(COUNTIES)]
        uscc = uscc_for(serial, registrar=registrar, division=county[:4] + "00")
        address = f"{STREET[county]}{serial % 997 + 1}号{serial // 997 % 40 + 1}栋{serial}室"
        given = GIVEN[serial % len(GIVEN)] + GIVEN[serial // len(GIVEN) % len(GIVEN)]
        rep = LegalRepresentative(
            SURNAMES[serial // 7 % len(SURNAMES)] + given,
            f"{county}{'*' * 8}{serial % 10_000:04d}",
            True,
            f"1{3 + serial % 6}{serial % 10}****{serial // 10 % 10_000:04d}",
        )
        day = first + timedelta(days=rng.randrange(27))
        established = first - timedelta(days=rng.randint(3, 20)) if rng.random() < late_rate else day
        kinds = [(EventType.ESTABLISHED, established)]
        if rng.random() < 0.3:
            kinds.append((EventType.CHANGED, day))
            if rng.random() < 0.2:
                kinds.append((EventType.DEREGISTERED, day + timedelta(days=1)))
        for version, (kind, when) in enumerate(kinds[: n - produced], start=1):
            status = (
                InstitutionStatus.DEREGISTERED if kind is EventType.DEREGISTERED else InstitutionStatus.ACTIVE
            )
            changed = (
                (FieldChange("legal_representative.name", "张三", "李四"),)
                if kind is EventType.CHANGED
                else ()
            )
            pushed = datetime.combine(max(when, day), datetime.min.time(), _SHANGHAI) + timedelta(
                hours=9 + version
            )
            yield make_event(
                uscc,
                kind,
                when,
                registrar=registrar,
                county=county,
                version=version,
                extracted_at=pushed,
                status=status,
                changed=changed,
                address=address,
                rep=rep,
                record_id=f"B{serial:09d}",
            )
            produced += 1
        serial += 1


class SyntheticConnector(Connector):
    """``n`` synthetic events in batches of ``ctx.batch_size``; state = how many were emitted."""

    spec: ClassVar[ConnectorSpec] = ConnectorSpec(
        name="bench-synthetic",
        registrar=Registrar.SHICHANG,
        source_system="bench",
        key="record id + version",
        cursor_field="events emitted",
        description="synthetic childcare registrations for the benchmark",
    )

    def __init__(self, n: int, *, month: str, seed: int = 0) -> None:
        self.n, self.month, self.seed = n, month, seed
        self.source_seconds = 0.0
        self.source_cpu_seconds = 0.0  # the same, in this thread's CPU time (steadier on a busy machine)

    def batches(self, state: Mapping[str, Any], ctx: ExtractContext) -> Iterator[Batch]:
        """Yield the events not emitted yet, ``ctx.batch_size`` at a time."""
        emitted = int(state.get("emitted", 0))
        events = islice(synthetic_events(self.n, month=self.month, seed=self.seed), emitted, None)
        while True:
            began, began_cpu = time.perf_counter(), time.thread_time()
            chunk = list(islice(events, ctx.batch_size))
            self.source_seconds += time.perf_counter() - began
            self.source_cpu_seconds += time.thread_time() - began_cpu
            if not chunk:
                return
            emitted += len(chunk)
            yield Batch(events=chunk, read=len(chunk), state={"emitted": emitted})
