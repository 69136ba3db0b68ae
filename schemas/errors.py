"""One exception hierarchy for the whole project, grouped by what the caller should do.

Every error any layer raises on purpose derives from :class:`RegsyncError` through exactly one of
four groups, and each interface acts on the group in one place:

=====================  ==============================================  ==========================
group                  meaning                                         who acts, how
=====================  ==============================================  ==========================
:class:`FatalError`    retrying will not help; a person must act       CLI: one line, exit 78;
                       (configuration, a missing program, a refused    DAG helper: fail the task
                       login, a contract the registry rejects)         without retries
:class:`RetriableError`  the same call may succeed later (a service    CLI: one line, exit 69/75;
                       that does not answer, a broker still starting)  DAG helper: let Airflow retry
:class:`RecordError`   one input record cannot be used; the run goes   connectors and the gate: to
                       on without it                                   the DLQ with the reason
:class:`DataQualityError`  the data was read but fails a check that    CLI: one line, exit 65;
                       must stop the job (a critical expectation)      DAG helper: fail the task
=====================  ==============================================  ==========================

Like the Singer SDK's ``FatalSyncError`` / ``RetriableSyncError`` / ``InvalidRecord`` and Quix
Streams' errors that carry their handling: the class tells the caller what to do, and ``hint`` says
what a person can do about it, so the message never has to be read out of a traceback.

The exit codes follow BSD ``sysexits.h`` so shell scripts and schedulers can tell the groups apart;
Click/Typer keep 2 for bad command-line arguments.
"""

from __future__ import annotations

from typing import ClassVar

__all__ = [
    "EXIT_CONFIG",
    "EXIT_DATAERR",
    "EXIT_SOFTWARE",
    "EXIT_TEMPFAIL",
    "EXIT_UNAVAILABLE",
    "EXIT_USAGE",
    "ConfigurationError",
    "DataQualityError",
    "FatalError",
    "RecordError",
    "RegsyncError",
    "RetriableError",
    "ServiceUnavailableError",
]

EXIT_USAGE = 2  # bad command-line arguments (Click's own code)
EXIT_DATAERR = 65  # EX_DATAERR: the data fails a check that must stop the job
EXIT_UNAVAILABLE = 69  # EX_UNAVAILABLE: a service (Kafka, registry, database, registrar) did not answer
EXIT_SOFTWARE = 70  # EX_SOFTWARE: an error regsync raised but did not classify (a bug to report)
EXIT_TEMPFAIL = 75  # EX_TEMPFAIL: try again later
EXIT_CONFIG = 78  # EX_CONFIG: configuration or installation; a person must act


class RegsyncError(Exception):
    """Base of every error the project raises on purpose.

    ``hint`` is the one thing a person can do about it, printed after the message.
    """

    exit_code: ClassVar[int] = EXIT_SOFTWARE
    default_hint: ClassVar[str | None] = None

    def __init__(self, message: str = "", *, hint: str | None = None) -> None:
        super().__init__(message)
        self.hint = hint or self.default_hint

    def one_line(self) -> str:
        """The message (first line only) and the hint, for the CLI and task logs."""
        text = str(self).strip().splitlines()[0] if str(self).strip() else type(self).__name__
        return f"{text} — {self.hint}" if self.hint else text


class FatalError(RegsyncError):
    """Retrying will not help: a person must act (configure, install, fix the data contract)."""

    exit_code: ClassVar[int] = EXIT_CONFIG


class ConfigurationError(FatalError):
    """Settings or arguments are missing, malformed or contradict each other."""


class RetriableError(RegsyncError):
    """The same call may succeed later (a service still starting, a transient network error)."""

    exit_code: ClassVar[int] = EXIT_TEMPFAIL


class ServiceUnavailableError(RetriableError):
    """A service did not answer in time; names the service and where it was looked for."""

    exit_code: ClassVar[int] = EXIT_UNAVAILABLE

    def __init__(self, service: str, where: str, reason: str = "", *, hint: str | None = None) -> None:
        detail = f": {reason}" if reason else ""
        super().__init__(f"{service} at {where} did not answer{detail}", hint=hint)
        self.service = service
        self.where = where


class RecordError(RegsyncError):
    """One input record cannot be used; the caller sends it to the DLQ with this reason and goes on.

    ``key`` names the record (source record id or USCC) so the DLQ entry and the log line say which.
    """

    exit_code: ClassVar[int] = EXIT_DATAERR

    def __init__(self, message: str = "", *, key: str | None = None, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.key = key


class DataQualityError(RegsyncError):
    """The data was read but fails a check that must stop the job (a critical expectation)."""

    exit_code: ClassVar[int] = EXIT_DATAERR
