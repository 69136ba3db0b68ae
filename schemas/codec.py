"""Avro codec in the Confluent wire format, on fastavro.

Every Kafka value is ``0x00`` (magic byte) + the writer schema's registry id (4 bytes, big-endian) +
the schemaless Avro binary, so any Confluent-compatible consumer (a health bureau's Kafka Connect,
ksqlDB) can read what we write. :class:`AvroCodec` writes with one registered schema and reads any
registered writer version, resolved into its reader schema (Avro schema resolution; the registry
enforces FULL_TRANSITIVE compatibility, so every version reads every other, older or newer).

Fast path: schemas are parsed once and their strings interned (:func:`_interned`); values may name
their union branch with fastavro's tuple notation (``to_wire`` of :mod:`schemas.events`), so the
writer does not validate a whole nested record to choose a branch; a writer id seen once is cached
forever (registry ids are immutable); a payload written with the reader's own schema skips
resolution; each encode and decode calls fastavro's compiled core directly (:func:`_fastavro_core`),
so the per-call set-up of ``schemaless_writer``/``schemaless_reader`` is done once per codec. The slow
path — working out *which field* of a record does not fit — only runs after an encode has already
failed.

fastavro's writer is lenient in ways the codec does not second-guess (that would cost every encode):
it accepts ISO strings and even floats for ``date``, and a ``Decimal`` with a positive exponent
(``Decimal("1E+20")``) slips past the declared precision. Values built through :mod:`schemas.events`
have the right types; bounds on amounts belong to the quality rules.
"""

from __future__ import annotations

import importlib
import io
import json
import struct
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import date, datetime
from decimal import Decimal
from typing import Any, Protocol

import fastavro
from fastavro.read import SchemaResolutionError as _FastavroResolutionError

from schemas.errors import RecordError

MAGIC_BYTE = 0
HEADER_SIZE = 5
_HEADER = struct.Struct(">bI")

_INT_RANGE = (-(2**31), 2**31 - 1)
_Core = Callable[..., Any]
_LONG_RANGE = (-(2**63), 2**63 - 1)


class CodecError(RecordError):
    """Base of every codec failure; ``schema_id`` is set when known. Per record: the DLQ takes it."""

    def __init__(self, message: str, *, schema_id: int | None = None) -> None:
        super().__init__(message)
        self.schema_id = schema_id


class EncodeError(CodecError):
    """A record could not be encoded."""


class RecordMismatchError(EncodeError):
    """The record does not fit the writer schema; ``field`` is the dotted path of the first bad value."""

    def __init__(self, message: str, *, field: str | None, schema_id: int | None = None) -> None:
        super().__init__(message, schema_id=schema_id)
        self.field = field


class DecodeError(CodecError):
    """A payload could not be decoded."""


class MagicByteError(DecodeError):
    """The payload does not start with the Confluent magic byte 0x00 (not our wire format)."""


class TruncatedPayloadError(DecodeError):
    """The payload ends before the header or the Avro body is complete."""


class UnknownSchemaIdError(DecodeError):
    """The payload's writer schema id is not known to the registry."""


class WriterSchemaResolutionError(DecodeError):
    """The writer schema cannot be resolved into the reader schema (incompatible versions)."""


class MalformedPayloadError(DecodeError):
    """The Avro body is corrupt for its writer schema (bad lengths, indexes, UTF-8, trailing bytes)."""


class SchemaSource(Protocol):
    """Looks up registered writer schemas by id (the registry client, or a fake in unit tests).

    Must raise :class:`LookupError` (e.g. ``KeyError``) when the id is unknown.
    """

    def get_schema_by_id(self, schema_id: int) -> str | Mapping[str, Any]:
        """Return the schema registered under ``schema_id`` (JSON text or parsed JSON)."""
        ...


def frame(schema_id: int, body: bytes) -> bytes:
    """Prefix an Avro body with the Confluent header."""
    return _HEADER.pack(MAGIC_BYTE, schema_id) + body


def read_header(payload: bytes) -> int:
    """Return the writer schema id of a Confluent-framed payload, checking magic byte and length."""
    if len(payload) < HEADER_SIZE:
        raise TruncatedPayloadError(
            f"payload of {len(payload)} bytes is shorter than the {HEADER_SIZE}-byte Confluent header"
        )
    if payload[0] != MAGIC_BYTE:
        raise MagicByteError(f"payload starts with 0x{payload[0]:02x}, expected magic byte 0x00")
    schema_id: int = _HEADER.unpack_from(payload)[1]
    return schema_id


def _parse(schema: str | Mapping[str, Any]) -> dict[str, Any]:
    as_json: Mapping[str, Any] = json.loads(schema) if isinstance(schema, str) else schema
    parsed = fastavro.parse_schema(dict(as_json))
    assert isinstance(parsed, dict)  # a record schema parses to a dict
    interned: dict[str, Any] = _interned(parsed)
    return interned


def _interned(node: Any) -> Any:
    """A copy of a parsed schema whose every string (keys, type names, field names) is interned.

    Why: fastavro's compiled writer and reader dispatch on ``schema["type"] == "record"`` and look
    fields up with ``datum.get(field["name"])`` for every value of every record. Strings that come
    out of ``json.loads`` are equal to, but not the same object as, fastavro's own constants and the
    literal keys of our ``to_avro`` dicts, so each comparison falls through to a ``memcmp``; interned,
    it is a pointer comparison. The decoded dicts' keys are interned too, which speeds up
    ``from_avro``'s lookups. Same schema, same bytes: only object identity changes.
    """
    if isinstance(node, str):
        return sys.intern(node)
    if isinstance(node, dict):
        return {sys.intern(key): _interned(value) for key, value in node.items()}
    if isinstance(node, list):
        return [_interned(item) for item in node]
    return node


def _fastavro_core() -> tuple[_Core, _Core] | None:
    """Return fastavro's compiled ``write_data`` and ``_read_data``, or ``None`` on a pure-Python build.

    Why not the public ``schemaless_writer``/``schemaless_reader``: each call of those re-runs
    ``parse_schema`` on the already parsed schema, builds a fresh named-schemas table and an options
    dict, and the reader deep-compares writer and reader schema (``writer == reader``) — fixed work
    that is about 5 % of a whole encode or decode of the canonical event (bench/README.md, issue
    12). The codec does that work once, in ``__init__``, and calls the functions the public ones
    call. They are module-level ``cpdef`` functions of fastavro's Cython modules (1.13, as locked),
    not part of its documented API: the golden-bytes and round-trip tests pin their behaviour, and
    a build without the compiled modules falls back to the public calls.
    """
    try:
        write = getattr(importlib.import_module("fastavro._write"), "write_data", None)
        read = getattr(importlib.import_module("fastavro._read"), "_read_data", None)
    except ImportError:  # fastavro built without its Cython extensions
        return None
    return (write, read) if callable(write) and callable(read) else None


_CORE = _fastavro_core()


class AvroCodec:
    """Encode with one registered schema; decode any registered writer into the reader schema.

    ``schema`` is the local contract (reader, and writer for :meth:`encode`); ``schema_id`` is its
    registry id. ``schemas`` resolves other writer ids; without it, only ``schema_id`` and writers
    added with :meth:`add_writer` can be decoded.
    """

    def __init__(
        self,
        schema: str | Mapping[str, Any],
        schema_id: int,
        schemas: SchemaSource | None = None,
    ) -> None:
        self._reader = _parse(schema)
        self._schema_id = schema_id
        self._header = _HEADER.pack(MAGIC_BYTE, schema_id)
        self._schemas = schemas
        # writer id -> parsed writer schema, or None when it is the reader schema itself (no resolution)
        self._writers: dict[int, dict[str, Any] | None] = {schema_id: None}
        # What schemaless_writer/reader build on every call, built once (see _fastavro_core):
        # the named types of each schema, and empty options, which mean fastavro's defaults
        # (tuple notation on, not strict, strict UTF-8, no record names in the output).
        self._core = _CORE
        self._write_named: dict[str, Any] = {}
        fastavro.parse_schema(self._reader, self._write_named)
        self._options: dict[str, Any] = {}
        # writer id -> {"writer": named types, "reader": named types} for _read_data
        self._read_named: dict[int, dict[str, dict[str, Any]]] = {schema_id: self._named_for(None)}

    @property
    def schema_id(self) -> int:
        """Registry id this codec writes with."""
        return self._schema_id

    @property
    def schema(self) -> dict[str, Any]:
        """The parsed reader/writer schema."""
        return self._reader

    def add_writer(self, schema_id: int, schema: str | Mapping[str, Any]) -> None:
        """Make a writer schema known without asking the registry (ids are immutable, so cache it)."""
        parsed = _parse(schema)
        writer = None if _same_schema(parsed, self._reader) else parsed
        self._read_named[schema_id] = self._named_for(writer)
        self._writers[schema_id] = writer

    def _named_for(self, writer: dict[str, Any] | None) -> dict[str, dict[str, Any]]:
        """The named-types table fastavro's reader resolves name references through."""
        named: dict[str, dict[str, Any]] = {"writer": {}, "reader": {}}
        if writer is None:
            fastavro.parse_schema(self._reader, named["writer"])
        else:
            fastavro.parse_schema(writer, named["writer"])
            fastavro.parse_schema(self._reader, named["reader"])
        return named

    def encode(self, record: Mapping[str, Any]) -> bytes:
        """Encode ``record`` (an Avro dict: ``event.to_wire()``, or ``event.to_avro()``) as a Confluent-framed value."""
        buf = bytearray(self._header)
        try:
            if self._core is not None:
                self._core[0](buf, record, self._reader, self._write_named, "", self._options)
            else:
                out = io.BytesIO()
                fastavro.schemaless_writer(out, self._reader, record)
                buf += out.getbuffer()
        except Exception as exc:  # fastavro raises TypeError/ValueError/KeyError/... — say which field
            field, reason = _locate_mismatch(self._reader, record) or (None, str(exc))
            where = f"field {field!r}" if field else "record"
            raise RecordMismatchError(
                f"{where} does not fit schema {self._reader.get('name')} (id {self._schema_id}): {reason}",
                field=field,
                schema_id=self._schema_id,
            ) from exc
        return bytes(buf)

    def encode_many(self, records: Iterable[Mapping[str, Any]]) -> list[bytes]:
        """Encode a batch; fails on the first bad record."""
        return [self.encode(record) for record in records]

    def decode(self, payload: bytes) -> dict[str, Any]:
        """Decode a Confluent-framed value into a dict of the reader schema."""
        schema_id = read_header(payload)
        try:
            writer = self._writers[schema_id]
        except KeyError:
            writer = self._load_writer(schema_id)
        fo = io.BytesIO(payload)
        fo.seek(HEADER_SIZE)
        try:
            if self._core is None:
                record = fastavro.schemaless_reader(fo, writer or self._reader, writer and self._reader)
            elif writer is None:
                record = self._core[1](fo, self._reader, self._read_named[schema_id], None, self._options)
            else:
                record = self._core[1](fo, writer, self._read_named[schema_id], self._reader, self._options)
        except EOFError as exc:
            raise TruncatedPayloadError(
                f"Avro body ends early for writer schema id {schema_id} ({len(payload)} bytes)",
                schema_id=schema_id,
            ) from exc
        except _FastavroResolutionError as exc:
            raise WriterSchemaResolutionError(
                f"writer schema id {schema_id} cannot be read as {self._reader.get('name')}: {exc}",
                schema_id=schema_id,
            ) from exc
        except Exception as exc:  # corrupt lengths, enum/union indexes out of range, invalid UTF-8
            raise MalformedPayloadError(
                f"corrupt Avro body for writer schema id {schema_id}: {type(exc).__name__}: {exc}",
                schema_id=schema_id,
            ) from exc
        if fo.tell() != len(payload):
            raise MalformedPayloadError(
                f"{len(payload) - fo.tell()} trailing bytes after the Avro body (writer schema id "
                f"{schema_id}); the payload was not written with that schema",
                schema_id=schema_id,
            )
        return record  # type: ignore[return-value]  # fastavro types reads as Any-ish unions; a record schema reads a dict

    def decode_many(self, payloads: Iterable[bytes]) -> list[dict[str, Any]]:
        """Decode a batch; fails on the first bad payload."""
        return [self.decode(payload) for payload in payloads]

    def _load_writer(self, schema_id: int) -> dict[str, Any] | None:
        if self._schemas is None:
            raise UnknownSchemaIdError(
                f"writer schema id {schema_id} is unknown and this codec has no schema source",
                schema_id=schema_id,
            )
        try:
            text = self._schemas.get_schema_by_id(schema_id)
        except LookupError as exc:
            raise UnknownSchemaIdError(
                f"writer schema id {schema_id} is not registered: {exc}", schema_id=schema_id
            ) from exc
        self.add_writer(schema_id, text)
        return self._writers[schema_id]


def _same_schema(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    canonical = fastavro.schema.to_parsing_canonical_form
    return bool(canonical(dict(a)) == canonical(dict(b)))


def _join(path: str, name: str) -> str:
    return f"{path}.{name}" if path else name


def _locate_mismatch(
    schema: Any, datum: Any, named: Mapping[str, Any] | None = None, path: str = ""
) -> tuple[str, str] | None:
    """Return ``(dotted field path, reason)`` of the first value of ``datum`` that ``schema`` rejects.

    A structural re-check of what fastavro's writer accepts; only used to explain a failed encode.
    """
    if named is None:
        named = schema.get("__named_schemas", {}) if isinstance(schema, Mapping) else {}
    if isinstance(schema, str):
        if schema in named:
            return _locate_mismatch(named[schema], datum, named, path)
        return _check_primitive(schema, datum, path)
    if isinstance(schema, list):
        if isinstance(datum, tuple) and len(datum) == 2 and isinstance(datum[0], str):
            datum = datum[1]  # a branch hint (``to_wire``): judge the value, as fastavro writes it
        problems = []
        for branch in schema:
            problem = _locate_mismatch(branch, datum, named, path)
            if problem is None:
                return None
            if branch != "null":  # "expected null" explains nothing about a non-null value
                problems.append(problem)
        deeper = [p for p in problems if p[0] != path]
        if deeper:  # e.g. a dict that matches the record branch except for one nested field
            return deeper[0]
        if len(problems) == 1:
            return problems[0]
        return path, f"{_short(datum)} matches no branch of the union: " + "; ".join(r for _, r in problems)
    kind = schema["type"]
    logical = schema.get("logicalType")
    if logical is not None:
        checked = _check_logical(schema, logical, datum, path)
        if checked is not False:
            return None if checked is True else checked
    if kind == "record":
        if not isinstance(datum, Mapping):
            return path, f"expected a record ({schema.get('name')}), got {_short(datum)}"
        for field in schema["fields"]:
            name = field["name"]
            if name not in datum:
                if "default" in field:
                    continue
                return _join(path, name), "missing, and the field has no default"
            problem = _locate_mismatch(field["type"], datum[name], named, _join(path, name))
            if problem is not None:
                return problem
        return None
    if kind == "enum":
        if datum in schema["symbols"]:
            return None
        return path, f"{_short(datum)} is not a symbol of {schema.get('name')}"
    if kind == "array":
        if not isinstance(datum, Sequence) or isinstance(datum, str | bytes):
            return path, f"expected an array, got {_short(datum)}"
        for index, item in enumerate(datum):
            problem = _locate_mismatch(schema["items"], item, named, f"{path}[{index}]")
            if problem is not None:
                return problem
        return None
    if kind == "map":
        if not isinstance(datum, Mapping):
            return path, f"expected a map, got {_short(datum)}"
        for key, value in datum.items():
            problem = _locate_mismatch(schema["values"], value, named, f"{path}[{key!r}]")
            if problem is not None:
                return problem
        return None
    if kind == "fixed":
        if isinstance(datum, bytes) and len(datum) == schema["size"]:
            return None
        return path, f"expected {schema['size']} bytes, got {_short(datum)}"
    return _locate_mismatch(kind, datum, named, path)


def _check_logical(
    schema: Mapping[str, Any], logical: str, datum: Any, path: str
) -> tuple[str, str] | bool | None:
    """Check a logical type; ``False`` means "not handled here, check the underlying type"."""
    if logical == "decimal" and isinstance(datum, Decimal):
        if not datum.is_finite():
            return path, f"decimal {datum} is not finite"
        exponent = datum.as_tuple().exponent
        scale, precision = schema.get("scale", 0), schema["precision"]
        if isinstance(exponent, int) and -exponent > scale:
            return path, f"decimal {datum} has more than {scale} decimal places (scale {scale})"
        if len(datum.quantize(Decimal(1).scaleb(-scale)).as_tuple().digits) > precision:
            return path, f"decimal {datum} has more than {precision} digits (precision {precision})"
        return None
    if logical == "date" and isinstance(datum, date):
        return None
    if logical.startswith(("timestamp-", "local-timestamp-")) and isinstance(datum, datetime):
        return None
    return False


def _check_primitive(kind: str, datum: Any, path: str) -> tuple[str, str] | None:
    ok: bool
    if kind == "null":
        ok = datum is None
    elif kind == "boolean":
        ok = isinstance(datum, bool)
    elif kind in ("int", "long"):
        low, high = _INT_RANGE if kind == "int" else _LONG_RANGE
        ok = isinstance(datum, int) and not isinstance(datum, bool)
        if ok and not low <= datum <= high:
            return path, f"{datum} is out of the Avro {kind} range"
    elif kind in ("float", "double"):
        ok = isinstance(datum, int | float) and not isinstance(datum, bool)
    elif kind == "string":
        ok = isinstance(datum, str)
    elif kind == "bytes":
        ok = isinstance(datum, bytes | bytearray | memoryview)
    else:
        return path, f"unknown type {kind!r}"
    return None if ok else (path, f"expected {kind}, got {_short(datum)}")


def _short(datum: Any) -> str:
    text = repr(datum)
    return f"{text[:60]}… ({type(datum).__name__})" if len(text) > 60 else f"{text} ({type(datum).__name__})"
