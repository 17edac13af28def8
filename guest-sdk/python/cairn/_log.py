"""Log lines, shown by `cairn` with the task's name.

Prefer these to `print`: they carry a level, and the host keeps them apart
from the task's stdout. `LogHandler` routes the standard `logging` module to
the same place.
"""

from __future__ import annotations

import logging

from wit_world.imports import host as _host
from wit_world.imports.cairn_task_types import Level

__all__ = [
    "Level",
    "LogHandler",
    "debug",
    "error",
    "info",
    "install_logging",
    "log",
    "trace",
    "warn",
]


def log(level: Level | str, message: object) -> None:
    """Emit one log line at `level` (a `Level`, or its name: "info", ...).

    Raises:
        ValueError: `level` is a name that is not a level.
    """
    if isinstance(level, str):
        try:
            level = Level[level.upper()]
        except KeyError:
            raise ValueError(f"`{level}` is not a log level") from None
    _host.log(level, str(message))


def trace(message: object) -> None:
    """Log at `trace` level."""
    _host.log(Level.TRACE, str(message))


def debug(message: object) -> None:
    """Log at `debug` level."""
    _host.log(Level.DEBUG, str(message))


def info(message: object) -> None:
    """Log at `info` level."""
    _host.log(Level.INFO, str(message))


def warn(message: object) -> None:
    """Log at `warn` level."""
    _host.log(Level.WARN, str(message))


def error(message: object) -> None:
    """Log at `error` level."""
    _host.log(Level.ERROR, str(message))


def level_of(levelno: int) -> Level:
    """The host level for a `logging` level number.

    `CRITICAL` and `ERROR` are `error`, `WARNING` is `warn`, `INFO` is `info`,
    `DEBUG` is `debug`, anything below `DEBUG` is `trace`; levels in between
    take the nearest below.
    """
    if levelno >= logging.ERROR:
        return Level.ERROR
    if levelno >= logging.WARNING:
        return Level.WARN
    if levelno >= logging.INFO:
        return Level.INFO
    if levelno >= logging.DEBUG:
        return Level.DEBUG
    return Level.TRACE


class LogHandler(logging.Handler):
    """A `logging` handler that writes each record to the host log.

    The level is mapped as `level_of` says; the line is the handler's
    formatted record (by default the message alone, with the traceback when
    the record carries one).
    """

    def emit(self, record: logging.LogRecord) -> None:
        try:
            message = self.format(record)
            _host.log(level_of(record.levelno), message)
        except Exception:  # noqa: BLE001 - logging must never fail the task
            self.handleError(record)


def install_logging(
    level: int = logging.DEBUG,
    logger: logging.Logger | None = None,
    fmt: str | None = None,
) -> LogHandler:
    """Send the standard `logging` module to the host log.

    Attaches a `LogHandler` to `logger` (the root logger by default), sets the
    logger's level to `level`, and returns the handler. Calling it again
    replaces the handler it attached before rather than adding another. The
    host decides which levels it shows, so the default passes everything from
    `DEBUG` up.
    """
    target = logger if logger is not None else logging.getLogger()
    for existing in list(target.handlers):
        if isinstance(existing, LogHandler):
            target.removeHandler(existing)
    handler = LogHandler()
    if fmt is not None:
        handler.setFormatter(logging.Formatter(fmt))
    target.addHandler(handler)
    target.setLevel(level)
    return handler
