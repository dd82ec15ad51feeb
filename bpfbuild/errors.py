"""The family of expected errors: each carries a one-line message and a hint."""

from __future__ import annotations


class BpfBuildError(Exception):
    """An error the user can act on; the CLI prints it without a traceback."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return self.message

    def describe(self) -> str:
        """The message and, on its own line, the hint: how a failed step shows it."""
        return self.message + (f"\nhint: {self.hint}" if self.hint else "")


class ConfigError(BpfBuildError):
    """bpfbuild.toml is malformed, has an unknown key or a wrong type."""


class ProjectError(BpfBuildError):
    """The project layout is unusable (no src/, no sources, bad app table)."""


class ToolchainError(BpfBuildError):
    """A required tool or library is missing or too old."""


class VerifyError(BpfBuildError):
    """Verification failed: a rejection, a budget or a baseline regression."""
