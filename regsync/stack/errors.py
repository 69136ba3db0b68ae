"""Errors of the local stack launcher; both need a person, so both are fatal (:mod:`schemas.errors`)."""

from __future__ import annotations

from schemas.errors import FatalError

__all__ = ["MissingPrerequisiteError", "ServiceStartError"]


class MissingPrerequisiteError(FatalError):
    """A program the stack needs is not installed; the message names what to install."""

    def __init__(self, what: str, hint: str) -> None:
        super().__init__(f"{what} not found: {hint}")
        self.what = what


class ServiceStartError(FatalError):
    """A stack service did not become ready; carries the tail of its log."""

    def __init__(self, service: str, reason: str, log_tail: str = "") -> None:
        message = f"{service} did not start: {reason}"
        if log_tail:
            message += f"\n--- last lines of the {service} log ---\n{log_tail}"
        super().__init__(message, hint=f"see the {service} log; `regsync stack status` lists the log files")
        self.service = service
        self.reason = reason
        self.log_tail = log_tail
