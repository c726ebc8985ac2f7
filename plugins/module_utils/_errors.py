# Copyright: contributors to pgrepl.streaming
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection's errors: what a module body raises to fail its task with a sentence (see _module.run)."""

from __future__ import annotations


class PgreplError(Exception):
    """An error whose message is fit to show a user as it is (it names the option and the value). ``reason``: a
    fixed code the roles decide by (the failed task's ``reason``), never by the message text; None for most."""

    def __init__(self, message: str = "", reason: str | None = None) -> None:
        super().__init__(message)
        self.reason = reason


class PgreplConnectionError(PgreplError):
    """The connection failed; ``unreachable`` tells a down or not-yet-accepting server from a configuration error,
    ``cause`` names which one (see _connection.CAUSES)."""

    def __init__(self, message: str, unreachable: bool, cause: str | None = None) -> None:
        super().__init__(message)
        self.unreachable = unreachable
        self.cause = cause
