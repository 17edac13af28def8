"""The task's entry point: adapts a `main()` function to the `run` export.

`task(main)` builds the class componentize-py looks for (`WitWorld`) and maps
how `main` ends to the contract's `result<_, failure>`:

- it returns: success;
- it raises `Transient` or `Permanent`: a failure of that kind, with its
  message;
- it raises anything else (a `HostError` included): a permanent failure
  `"ExceptionType: message"`, and the traceback is logged at `error` level.
"""

from __future__ import annotations

import traceback
from typing import Callable

import wit_world
from componentize_py_types import Err
from wit_world.imports import host as _host
from wit_world.imports.cairn_task_types import Failure_Permanent, Failure_Transient, Level

from ._errors import TaskFailure

__all__ = ["task"]


def task(main: Callable[[], object]) -> type[wit_world.WitWorld]:
    """The component's entry point, running `main` when the host calls `run`.

    Assign it to `WitWorld` at the top level of the app module::

        WitWorld = cairn.task(main)

    What `main` returns is ignored.
    """

    class WitWorld(wit_world.WitWorld):
        def run(self) -> None:
            run(main)

    WitWorld.__module__ = getattr(main, "__module__", __name__)
    WitWorld.__doc__ = f"Runs `{getattr(main, '__qualname__', main)!s}` as a Cairn task."
    return WitWorld


def run(main: Callable[[], object]) -> None:
    """Call `main`, raising `Err(failure)` as the bindings expect if it fails."""
    try:
        main()
    except TaskFailure as e:
        raise Err(failure(e)) from None
    except SystemExit as e:
        if e.code is None or e.code == 0:
            return
        reason = f"exited with status {e.code}" if isinstance(e.code, int) else str(e.code)
        raise Err(Failure_Permanent(reason)) from None
    except Exception as e:
        _log_traceback(e)
        raise Err(failure(e)) from None


def failure(e: BaseException) -> Failure_Transient | Failure_Permanent:
    """The contract's `failure` for an exception that ended the task."""
    if isinstance(e, TaskFailure):
        if e.transient:
            return Failure_Transient(e.message)
        return Failure_Permanent(e.message)
    message = str(e)
    kind = type(e).__name__
    return Failure_Permanent(f"{kind}: {message}" if message else kind)


def _log_traceback(e: BaseException) -> None:
    try:
        # Start at `main`: the frame of `run` says nothing to the author.
        tb = e.__traceback__.tb_next if e.__traceback__ is not None else None
        text = "".join(traceback.format_exception(type(e), e, tb)).rstrip()
        _host.log(Level.ERROR, text)
    except Exception:  # noqa: BLE001 - the failure itself matters more than its log
        pass
