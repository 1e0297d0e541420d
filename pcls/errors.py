"""Errors that map to the documented exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_AWS = 1
EXIT_USAGE = 2
EXIT_DRIFT = 3
EXIT_INTERRUPTED = 130


class PclsError(Exception):
    """An error with a one-line message and an exit code."""

    exit_code = EXIT_AWS

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class ConfigError(PclsError):
    """Bad input: config, flags, ledger. Raised before anything is touched in AWS."""

    exit_code = EXIT_USAGE


class StepError(PclsError):
    """A step failed while talking to AWS."""

    exit_code = EXIT_AWS

    def __init__(self, step: str, action: str, detail: str) -> None:
        super().__init__(f"{step}: {action} failed: {detail}")
        self.step = step
        self.action = action
        self.detail = detail


class WaitTimeout(PclsError):
    """A bounded wait ran out; the message says what to check."""

    exit_code = EXIT_AWS


class WriteInReadOnlyRun(PclsError):
    """A write call was attempted during plan or status."""

    exit_code = EXIT_AWS
