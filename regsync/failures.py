"""Third-party failures translated into the project's error groups, in one place.

The CLI and the Airflow helper act on :mod:`schemas.errors` groups only. Kafka, SQLAlchemy and
httpx raise their own exceptions when a service is down or refuses us; :func:`classify` turns the
ones whose meaning is clear into a :class:`~schemas.errors.RegsyncError` of the right group (keeping
the original as ``__cause__``), and returns ``None`` for anything else — which is then a bug and
keeps its traceback.
"""

from __future__ import annotations

from schemas.errors import ConfigurationError, RegsyncError, ServiceUnavailableError

__all__ = ["classify"]

_STACK_HINT = "is it running? `regsync stack status` shows the local stack; settings name the others"


def classify(exc: BaseException) -> RegsyncError | None:
    """The project error ``exc`` stands for, or ``None`` when it is not an expected failure."""
    if isinstance(exc, RegsyncError):
        return exc
    translated = _settings(exc) or _kafka(exc) or _database(exc) or _http(exc)
    if translated is not None:
        translated.__cause__ = exc
    return translated


def _settings(exc: BaseException) -> RegsyncError | None:
    from pydantic import ValidationError

    if isinstance(exc, ValidationError):
        where = "; ".join(
            f"{'.'.join(str(p) for p in err['loc']) or 'settings'}: {err['msg']}" for err in exc.errors()[:3]
        )
        return ConfigurationError(
            f"invalid settings: {where}", hint="see `docs/operations.md`, Configuration"
        )
    return None


def _kafka(exc: BaseException) -> RegsyncError | None:
    try:
        from kafka import errors as kerr
    except ImportError:  # pragma: no cover - kafka-python is a dependency
        return None
    unreachable = tuple(
        getattr(kerr, name)
        for name in (
            "NoBrokersAvailable",
            "KafkaConnectionError",
            "KafkaTimeoutError",
            "BrokerNotAvailableError",
        )
        if hasattr(kerr, name)  # the names differ between kafka-python releases
    )
    if isinstance(exc, unreachable):
        return ServiceUnavailableError(
            "Kafka", "the configured bootstrap servers", type(exc).__name__, hint=_STACK_HINT
        )
    refused = tuple(
        getattr(kerr, name)
        for name in (
            "TopicAuthorizationFailedError",
            "GroupAuthorizationFailedError",
            "SaslAuthenticationFailedError",
        )
        if hasattr(kerr, name)
    )
    if isinstance(exc, refused):
        return ConfigurationError(
            f"Kafka refused access: {exc}", hint="check the client's ACLs and credentials"
        )
    return None


def _database(exc: BaseException) -> RegsyncError | None:
    try:
        from sqlalchemy import exc as saexc
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, saexc.OperationalError | saexc.InterfaceError):
        first = str(exc.orig if getattr(exc, "orig", None) is not None else exc).strip().splitlines()
        reason = first[0] if first else type(exc).__name__
        if "password authentication failed" in reason or "authentication failed" in reason:
            return ConfigurationError(
                f"the database refused the login: {reason}", hint="check REGSYNC_DATABASE_URL"
            )
        return ServiceUnavailableError("the database", "REGSYNC_DATABASE_URL", reason[:200], hint=_STACK_HINT)
    if isinstance(exc, saexc.ArgumentError | saexc.NoSuchModuleError):
        return ConfigurationError(f"the database URL is not usable: {exc}", hint="check REGSYNC_DATABASE_URL")
    return None


def _http(exc: BaseException) -> RegsyncError | None:
    try:
        import httpx
    except ImportError:  # pragma: no cover
        return None
    if isinstance(exc, httpx.TransportError):
        where = str(exc.request.url) if _has_request(exc) else "its configured address"
        return ServiceUnavailableError("an HTTP service", where, type(exc).__name__, hint=_STACK_HINT)
    return None


def _has_request(exc: BaseException) -> bool:
    try:
        _ = exc.request  # type: ignore[attr-defined]  # httpx raises RuntimeError when unset
    except (RuntimeError, AttributeError):
        return False
    return True
