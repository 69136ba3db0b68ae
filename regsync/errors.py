"""One exception hierarchy for the composition root, grouped by what the caller should do.

Following the Singer SDK's grouping: a *fatal* error needs a person (install something, fix
configuration); a *retriable* one may pass on its own (a broker still starting). Messages name
the thing that failed so the operator never has to read a stack trace.
"""

from __future__ import annotations


class RegsyncError(Exception):
    """Base of every error regsync raises on purpose."""


class FatalError(RegsyncError):
    """Retrying will not help: a person must act."""


class RetriableError(RegsyncError):
    """The same call may succeed later (service still starting, transient network error)."""


class ConfigurationError(FatalError):
    """Settings are missing or contradict each other."""


class MissingPrerequisiteError(FatalError):
    """A program the stack needs is not installed; the message names what to install."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} not found: {hint}")
        self.what = what
        self.hint = hint


class ServiceStartError(FatalError):
    """A stack service did not become ready; carries the tail of its log."""

    def __init__(self, service: str, reason: str, log_tail: str = "") -> None:
        message = f"{service} did not start: {reason}"
        if log_tail:
            message += f"\n--- last lines of the {service} log ---\n{log_tail}"
        super().__init__(message)
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
