"""Errors a task sees and raises.

`HostError` and its subclasses are refusals from the host, one per case of the
contract's `error` variant (`wit/task.wit`). `Transient` and `Permanent` are
what a task raises to fail with a message of its own, saying whether running
it again may help.

This module only describes errors; it never decides what a task may do.
"""

from __future__ import annotations

from typing import NoReturn

import componentize_py_types
from wit_world.imports import cairn_task_types as _types

__all__ = [
    "Denied",
    "HostError",
    "Invalid",
    "NotFound",
    "Permanent",
    "TaskFailure",
    "TooLarge",
    "Transient",
]


class HostError(Exception):
    """Why the host refused a call.

    Catch a subclass to handle one kind of refusal; left uncaught, any of them
    fails the task permanently.
    """


class Denied(HostError):
    """The workflow or policy does not grant this; `what` says which request."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what: str = what
        """The request that was denied (never a secret value)."""

    def __str__(self) -> str:
        return f"denied: {self.what}"


class NotFound(HostError):
    """Nothing by this name was declared for the task."""

    def __init__(self, name: str) -> None:
        super().__init__(name)
        self.name: str = name
        """The name asked for."""

    def __str__(self) -> str:
        return f"`{self.name}` was not declared for this task"


class TooLarge(HostError):
    """Larger than one call may pass or the output may hold."""

    def __init__(self, limit: int) -> None:
        super().__init__(limit)
        self.limit: int = limit
        """The limit, in bytes."""

    def __str__(self) -> str:
        return f"too large: at most {self.limit} bytes may pass"


class Invalid(HostError):
    """The call was malformed (a bad name, an output written twice)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what: str = what
        """What is wrong with the call."""

    def __str__(self) -> str:
        return self.what


class TaskFailure(Exception):
    """A failure the task raises on purpose, with its own message.

    Raise `Transient` or `Permanent` rather than this base class.
    """

    transient: bool = False
    """Whether the host may retry the task after this failure."""

    def __init__(self, message: object) -> None:
        super().__init__(str(message))
        self.message: str = str(message)
        """The failure's message, as the host records it."""

    def __str__(self) -> str:
        return self.message


class Transient(TaskFailure):
    """Running the task again may succeed (a flaky upstream, a lock held
    elsewhere): the host may retry it."""

    transient = True


class Permanent(TaskFailure):
    """Running the task again cannot help (bad input data, a denial)."""

    transient = False


def from_wit(error: _types.Error) -> HostError:
    """The exception for one case of the contract's `error` variant."""
    if isinstance(error, _types.Error_Denied):
        return Denied(error.value)
    if isinstance(error, _types.Error_NotFound):
        return NotFound(error.value)
    if isinstance(error, _types.Error_TooLarge):
        return TooLarge(error.value)
    if isinstance(error, _types.Error_Invalid):
        return Invalid(error.value)
    # A newer host may add cases; say what arrived rather than crash.
    return Invalid(f"the host refused the call: {error!r}")


def reraise(err: componentize_py_types.Err[_types.Error]) -> NoReturn:
    """Raise the `HostError` for a refusal the bindings raised as `Err`."""
    raise from_wit(err.value) from None
