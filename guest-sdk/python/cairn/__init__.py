"""Write Cairn tasks in Python.

A Cairn task is a WebAssembly component of the `cairn:task` world (see
`wit/task.wit`). This package wraps that world in a small API: write a
`main()` function, hand it to `task`, and build the module with
componentize-py (see the README for the command)::

    import cairn

    def main() -> None:
        who = cairn.read_text("name", default="world")
        cairn.info(f"greeting {who}")
        cairn.write_output("greeting", f"Hello, {who}!\\n")

    WitWorld = cairn.task(main)

Every host call can be refused (the workflow did not declare it, policy
denies it, it is too large): refusals arrive as `HostError` subclasses, which
the task may catch or let fail the task. Raise `Transient` when running the
task again may help, `Permanent` when it cannot.

This package owns the guest side of the contract only; it never decides what
a task may do. That is the host's job.
"""

from __future__ import annotations

from . import http
from ._data import inputs, read_input, read_json, read_text, write_json, write_output
from ._errors import Denied, HostError, Invalid, NotFound, Permanent, TaskFailure, TooLarge, Transient
from ._log import Level, LogHandler, debug, error, info, install_logging, log, trace, warn
from ._secret import Secret, secret
from ._task import task

__all__ = [
    "Denied",
    "HostError",
    "Invalid",
    "Level",
    "LogHandler",
    "NotFound",
    "Permanent",
    "Secret",
    "TaskFailure",
    "TooLarge",
    "Transient",
    "debug",
    "error",
    "http",
    "info",
    "inputs",
    "install_logging",
    "log",
    "read_input",
    "read_json",
    "read_text",
    "secret",
    "task",
    "trace",
    "warn",
    "write_json",
    "write_output",
]
