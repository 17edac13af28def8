"""Secrets, read through the host only.

A `Secret` never shows its value by accident: `repr`, `str`, formatting,
logging and pickling all give `Secret(<redacted>)` or fail. The value is
reached only through `Secret.expose`.
"""

from __future__ import annotations

from typing import Any, NoReturn, final

from componentize_py_types import Err
from wit_world.imports import host as _host

from ._errors import reraise

__all__ = ["Secret", "secret"]

_REDACTED = "Secret(<redacted>)"


@final
class Secret:
    """A secret's value, kept out of logs and outputs.

    Two secrets compare equal only if they are the same object, so that a
    comparison cannot be used to guess a value; compare `expose()` results
    explicitly where that is really meant.
    """

    __slots__ = ("__value",)

    def __init__(self, value: str) -> None:
        self.__value = value

    def expose(self) -> str:
        """The secret's value.

        Keep it out of logs and outputs: the host masks the values it knows in
        what the task prints, but cannot catch every transformation of them.
        """
        return self.__value

    def __repr__(self) -> str:
        return _REDACTED

    def __str__(self) -> str:
        return _REDACTED

    def __format__(self, format_spec: str) -> str:
        return _REDACTED

    def __reduce__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or copied")

    def __copy__(self) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or copied")

    def __deepcopy__(self, memo: Any) -> NoReturn:
        raise TypeError("a Secret cannot be pickled or copied")


def secret(name: str) -> Secret:
    """Read the secret called `name`.

    Raises:
        NotFound: the task did not declare it.
        Denied: policy forbids this task to read it.
    """
    try:
        return Secret(_host.secret(name))
    except Err as err:
        reraise(err)
