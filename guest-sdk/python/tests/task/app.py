"""The Python conformance task: one scenario per run, chosen by `STEP`.

End-to-end tests run it under the real host to check that the SDK and the
host agree on the contract. It uses only the SDK (and the standard library),
and never prints or logs a secret's value.
"""

from __future__ import annotations

import logging
import os
import socket
from typing import Any

import cairn
from cairn import http


def echo() -> None:
    names = cairn.inputs()
    for name in names:
        cairn.write_output(name, cairn.read_input(name).upper())
    cairn.info(f"python echo {len(names)} inputs")


def secret() -> None:
    token = cairn.secret("token")
    cairn.info(repr(token))
    cairn.info(f"{token}")
    cairn.write_output("len", str(len(token.expose())))


def denied() -> None:
    try:
        cairn.write_output("nope", "should not be written")
    except cairn.Denied:
        cairn.write_output("caught", "denied")


def missing() -> None:
    cairn.write_output("value", cairn.read_text("absent", default="dflt"))


def transient() -> None:
    raise cairn.Transient("try later")


def permanent() -> None:
    raise cairn.Permanent("bad data")


def crash() -> None:
    raise ValueError("boom")


def fetch() -> None:
    response = http.get(os.environ["URL"])
    cairn.write_output("body", response.body)
    cairn.write_output("status", str(response.status))


def fetch_denied() -> None:
    try:
        http.get(os.environ["URL"])
    except http.Denied as e:
        cairn.write_output("caught", str(e))


def connect() -> None:
    # With a `str` host, CPython encodes it with the `idna` codec before any
    # socket call, and componentize-py's runtime has no such codec
    # (LookupError); `create_connection` with a `bytes` host stops at the
    # name lookup, which the sandbox turns off; a raw `connect` to a numeric
    # address reaches the sandbox's address check. All three must fail.
    port = int(os.environ["PORT"])
    errors = []
    hosts: list[Any] = ["127.0.0.1", b"127.0.0.1"]  # CPython takes bytes; typeshed says str
    for host in hosts:
        try:
            with socket.create_connection((host, port), timeout=5):
                pass
        except (OSError, LookupError) as e:
            errors.append(f"create_connection({host!r}): {type(e).__name__}: {e}")
        else:
            cairn.write_output("caught", "ESCAPED")
            return
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as raw:
            raw.settimeout(5)
            raw.connect((b"127.0.0.1", port))
    except (OSError, LookupError) as e:
        errors.append(f"connect(b'127.0.0.1'): {type(e).__name__}: {e}")
    else:
        cairn.write_output("caught", "ESCAPED")
        return
    cairn.write_output("caught", "\n".join(errors))


def logs() -> None:
    cairn.install_logging()
    logger = logging.getLogger("conformance")
    logger.debug("python logging debug")
    logger.info("python logging info")
    logger.warning("python logging warning")
    logger.error("python logging error")


SCENARIOS = {
    "echo": echo,
    "secret": secret,
    "denied": denied,
    "missing": missing,
    "transient": transient,
    "permanent": permanent,
    "crash": crash,
    "http": fetch,
    "http-denied": fetch_denied,
    "socket": connect,
    "logging": logs,
}


def main() -> None:
    step = os.environ.get("STEP", "")
    scenario = SCENARIOS.get(step)
    if scenario is None:
        raise cairn.Permanent(f"unknown STEP `{step}`")
    scenario()


WitWorld = cairn.task(main)
