"""The task's named inputs and outputs, as the workflow declares them.

Inputs are read whole, outputs written whole and once. Every refusal from the
host becomes a `HostError`; this module adds only decoding (UTF-8, JSON).
"""

from __future__ import annotations

import json
from typing import Any

from componentize_py_types import Err
from wit_world.imports import host as _host

from ._errors import NotFound, Permanent, reraise

__all__ = ["inputs", "read_input", "read_json", "read_text", "write_json", "write_output"]


def inputs() -> list[str]:
    """Names of the inputs this task was given, in the order declared."""
    return list(_host.inputs())


def read_input(name: str) -> bytes:
    """The bytes of the input called `name`.

    Raises:
        NotFound: no such input was given.
        TooLarge: it exceeds what one call may pass.
        Denied: policy forbids the data to reach this task.
    """
    try:
        return bytes(_host.read_input(name))
    except Err as err:
        reraise(err)


def read_text(name: str, default: str | None = None) -> str:
    """The input called `name`, as UTF-8 text.

    With a `default`, a missing input (`NotFound`) gives the default instead;
    every other refusal is still raised.

    Raises:
        NotFound: no such input was given, and there is no default.
        TooLarge, Denied: as `read_input`.
        Permanent: the input is not UTF-8.
    """
    try:
        data = read_input(name)
    except NotFound:
        if default is None:
            raise
        return default
    return _utf8(name, data)


def read_json(name: str) -> Any:
    """The input called `name`, parsed as JSON.

    Raises:
        NotFound, TooLarge, Denied: as `read_input`.
        Permanent: the input is not UTF-8 or not valid JSON.
    """
    text = read_text(name)
    try:
        return json.loads(text)
    except json.JSONDecodeError as e:
        raise Permanent(f"input `{name}` is not valid JSON: {e}") from e


def write_output(name: str, data: bytes | bytearray | memoryview | str) -> None:
    """Write the output called `name`; text is written as UTF-8.

    Each output is written once, whole.

    Raises:
        Invalid: the name is malformed or the output was already written.
        TooLarge: `data` exceeds the output limit.
        Denied: the output was not declared.
    """
    payload = data.encode() if isinstance(data, str) else bytes(data)
    try:
        _host.write_output(name, payload)
    except Err as err:
        reraise(err)


def write_json(name: str, value: Any, *, indent: int | None = None) -> None:
    """Write `value` as JSON (UTF-8) to the output called `name`.

    Raises:
        TypeError: `value` is not JSON-serializable (nothing is written).
        Invalid, TooLarge, Denied: as `write_output`.
    """
    write_output(name, json.dumps(value, indent=indent, ensure_ascii=False))


def _utf8(name: str, data: bytes) -> str:
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as e:
        raise Permanent(f"input `{name}` is not UTF-8: {e}") from e
