"""Outgoing HTTP: a small blocking client over `wasi:http`.

::

    import cairn
    from cairn import http

    def main() -> None:
        # With `inject = { deploy_token = "headers" }` the task gets a
        # placeholder, and the host writes the real token into the header,
        # only for requests policy allows it in.
        token = cairn.secret("deploy_token")
        response = http.post(
            "http://127.0.0.1:8787/deploy",
            bearer=token,
            json={"version": "1.4.2"},
        ).raise_for_status()
        cairn.info(response.text())

A task reaches only the endpoints (`host:port`) its workflow declares in
`network`, and each request is put to policy (`connect`) as it is sent: a
refusal is `Denied`, and the run's audit log says which rule decided.
Redirects are followed (at most 5 by default), each hop a new request the host
checks like the first; credentials (`Authorization`, `Proxy-Authorization`,
`Cookie`) are dropped when a redirect leaves the scheme, host and port of the
request. Bodies are read whole; the host bounds their size and the time of
each request.

The client talks to `wasi:http/outgoing-handler` directly and blocks; it does
not need or use `asyncio`.
"""

from __future__ import annotations

import json as _json
from dataclasses import dataclass
from typing import Any, Final, Iterable, Mapping, Union
from urllib.parse import SplitResult, urljoin, urlsplit

from componentize_py_types import Err
from wit_world.imports import outgoing_handler as _handler
from wit_world.imports import streams as _streams
from wit_world.imports import wasi_http_types as _t

from . import _errors
from ._secret import Secret

__all__ = [
    "Denied",
    "Failed",
    "HttpError",
    "InvalidUrl",
    "Response",
    "StatusError",
    "TooManyRedirects",
    "delete",
    "get",
    "head",
    "patch",
    "post",
    "put",
    "request",
]

HeaderValue = Union[str, bytes]
"""A header value: text is sent as UTF-8."""

Headers = Union[Mapping[str, HeaderValue], Iterable[tuple[str, HeaderValue]]]
"""Request headers: a mapping, or pairs (repeat a name for several values)."""

_REDIRECTS: Final = frozenset({301, 302, 303, 307, 308})
_CREDENTIALS: Final = frozenset({"authorization", "proxy-authorization", "cookie"})
_BODY_HEADERS: Final = frozenset({"content-type", "content-length"})
_WRITE_CHUNK: Final = 4096
_READ_CHUNK: Final = 64 * 1024
_DEFAULT_PORTS: Final = {"http": 80, "https": 443}


class _Unset:
    """The type of `UNSET`, which tells "no JSON body" from a JSON `null`."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Final = _Unset()


class HttpError(Exception):
    """Why a request did not produce a (wanted) response."""

    url: str
    """The URL of the request that failed."""

    @property
    def transient(self) -> bool:
        """Whether trying again later may succeed (connection problems,
        timeouts, 5xx and 429 statuses)."""
        return False


class Denied(HttpError, _errors.Denied):
    """The host refused to send the request.

    The endpoint is not declared in the task's `network`, policy denies it, or
    the task used up its request budget; the run's audit log says which. This
    is also a `cairn.Denied`, so one `except cairn.Denied` catches every
    refusal.
    """

    def __init__(self, method: str, url: str) -> None:
        _errors.Denied.__init__(self, f"{method} {url}")
        self.method: str = method
        self.url = url

    def __str__(self) -> str:
        return (
            f"request {self.what} denied by the host (not declared in `network`, "
            "or denied by policy; the run's audit log says which)"
        )


class InvalidUrl(HttpError):
    """The URL cannot be sent (not `http(s)://host[:port]/...`)."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url

    def __str__(self) -> str:
        return f"`{self.url}` is not an http(s) URL"


class TooManyRedirects(HttpError):
    """More redirects than allowed; `url` is where the last one pointed."""

    def __init__(self, url: str) -> None:
        super().__init__(url)
        self.url = url

    def __str__(self) -> str:
        return f"too many redirects, the last to {self.url}"


class StatusError(HttpError):
    """The response arrived with a status that is not 2xx
    (`Response.raise_for_status`)."""

    def __init__(self, status: int, url: str) -> None:
        super().__init__(status, url)
        self.status: int = status
        self.url = url

    @property
    def transient(self) -> bool:
        return self.status >= 500 or self.status == 429

    def __str__(self) -> str:
        return f"{self.url} answered {self.status}"


class Failed(HttpError):
    """Sending or receiving failed (connection refused, a timeout, a body too
    large...). `reason` names the host's error code; `code` is the code itself
    when the host gave one."""

    def __init__(self, url: str, reason: str, code: _t.ErrorCode | None = None) -> None:
        super().__init__(url, reason)
        self.url = url
        self.reason: str = reason
        self.code: _t.ErrorCode | None = code

    @property
    def transient(self) -> bool:
        reason = self.reason.lower()
        return (
            "timeout" in reason
            or "connectionrefused" in reason
            or "connectionterminated" in reason
        )

    def __str__(self) -> str:
        return f"request to {self.url} failed: {self.reason}"


@dataclass(repr=False)
class Response:
    """A whole response."""

    status: int
    """The status code."""
    headers: list[tuple[str, bytes]]
    """Headers, names lowercase, in the order received."""
    body: bytes
    """The whole body."""
    url: str
    """The URL that answered (after redirects)."""

    @property
    def ok(self) -> bool:
        """Whether the status is 2xx."""
        return 200 <= self.status < 300

    def header(self, name: str) -> str | None:
        """The first value of header `name` (case-insensitive), if it is UTF-8."""
        wanted = name.lower()
        for key, value in self.headers:
            if key == wanted:
                try:
                    return value.decode("utf-8")
                except UnicodeDecodeError:
                    return None
        return None

    def text(self, encoding: str = "utf-8") -> str:
        """The body as text.

        Raises:
            UnicodeDecodeError: the body is not valid in `encoding`.
        """
        return self.body.decode(encoding)

    def json(self) -> Any:
        """The body parsed as JSON.

        Raises:
            ValueError: the body is not valid JSON (or not UTF-8).
        """
        return _json.loads(self.body)

    def raise_for_status(self) -> Response:
        """This response, if its status is 2xx.

        Raises:
            StatusError: for any status outside 200-299.
        """
        if not self.ok:
            raise StatusError(self.status, self.url)
        return self

    def __repr__(self) -> str:
        return f"<Response {self.status} {self.url} ({len(self.body)} bytes)>"


@dataclass
class _Request:
    method: str
    url: str
    headers: list[tuple[str, bytes]]
    body: bytes = b""
    timeout: float | None = None


def request(
    method: str,
    url: str,
    *,
    headers: Headers | None = None,
    body: bytes | str | None = None,
    json: Any = UNSET,
    bearer: str | Secret | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> Response:
    """Send a request and read the whole response, following redirects.

    Args:
        method: The HTTP method ("GET", "POST", ...; any case).
        url: An `http://` or `https://` URL.
        headers: Extra headers; names are case-insensitive.
        body: The request body; text is sent as UTF-8.
        json: A value to send as a JSON body, with
            `Content-Type: application/json` unless `headers` sets one.
        bearer: A token for `Authorization: Bearer ...`: a `Secret`, or the
            placeholder of an injected secret (the host writes the value in).
        timeout: Seconds; asks for a shorter limit than the host's, which
            never grants longer.
        max_redirects: Redirects to follow; 0 returns redirects as responses.

    Raises:
        Denied: the host refused to send a request (any hop).
        InvalidUrl: the URL (or a redirect's) is not an http(s) URL.
        TooManyRedirects: more than `max_redirects` redirects.
        Failed: sending or receiving failed.
        TypeError: both `body` and `json` were given.
        ValueError: a negative `max_redirects` or a non-positive `timeout`.
    """
    if body is not None and json is not UNSET:
        raise TypeError("give `body` or `json`, not both")
    if max_redirects < 0:
        raise ValueError("`max_redirects` cannot be negative")
    if timeout is not None and timeout <= 0:
        raise ValueError("`timeout` must be positive")
    header_list = _header_list(headers)
    if bearer is not None:
        token = bearer.expose() if isinstance(bearer, Secret) else bearer
        header_list.append(("authorization", f"Bearer {token}".encode()))
    payload = b""
    if json is not UNSET:
        payload = _json.dumps(json).encode()
        if all(name != "content-type" for name, _ in header_list):
            header_list.append(("content-type", b"application/json"))
    elif body is not None:
        payload = body.encode() if isinstance(body, str) else bytes(body)
    current = _Request(method.upper(), url, header_list, payload, timeout)
    hops = 0
    while True:
        response = _send_once(current)
        location = response.header("location") if response.status in _REDIRECTS else None
        if location is None or max_redirects == 0:
            return response
        target = urljoin(current.url, location)
        if hops >= max_redirects:
            raise TooManyRedirects(target)
        hops += 1
        current = _redirected(current, response.status, target)


def get(
    url: str,
    *,
    headers: Headers | None = None,
    bearer: str | Secret | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> Response:
    """A `GET` request; see `request`."""
    return request(
        "GET", url, headers=headers, bearer=bearer, timeout=timeout, max_redirects=max_redirects
    )


def head(
    url: str,
    *,
    headers: Headers | None = None,
    bearer: str | Secret | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> Response:
    """A `HEAD` request; see `request`."""
    return request(
        "HEAD", url, headers=headers, bearer=bearer, timeout=timeout, max_redirects=max_redirects
    )


def post(
    url: str,
    *,
    headers: Headers | None = None,
    body: bytes | str | None = None,
    json: Any = UNSET,
    bearer: str | Secret | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> Response:
    """A `POST` request; see `request`."""
    return request(
        "POST",
        url,
        headers=headers,
        body=body,
        json=json,
        bearer=bearer,
        timeout=timeout,
        max_redirects=max_redirects,
    )


def put(
    url: str,
    *,
    headers: Headers | None = None,
    body: bytes | str | None = None,
    json: Any = UNSET,
    bearer: str | Secret | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> Response:
    """A `PUT` request; see `request`."""
    return request(
        "PUT",
        url,
        headers=headers,
        body=body,
        json=json,
        bearer=bearer,
        timeout=timeout,
        max_redirects=max_redirects,
    )


def patch(
    url: str,
    *,
    headers: Headers | None = None,
    body: bytes | str | None = None,
    json: Any = UNSET,
    bearer: str | Secret | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> Response:
    """A `PATCH` request; see `request`."""
    return request(
        "PATCH",
        url,
        headers=headers,
        body=body,
        json=json,
        bearer=bearer,
        timeout=timeout,
        max_redirects=max_redirects,
    )


def delete(
    url: str,
    *,
    headers: Headers | None = None,
    body: bytes | str | None = None,
    json: Any = UNSET,
    bearer: str | Secret | None = None,
    timeout: float | None = None,
    max_redirects: int = 5,
) -> Response:
    """A `DELETE` request; see `request`."""
    return request(
        "DELETE",
        url,
        headers=headers,
        body=body,
        json=json,
        bearer=bearer,
        timeout=timeout,
        max_redirects=max_redirects,
    )


def _header_list(headers: Headers | None) -> list[tuple[str, bytes]]:
    if headers is None:
        return []
    pairs = headers.items() if isinstance(headers, Mapping) else headers
    return [
        (name.lower(), value.encode() if isinstance(value, str) else bytes(value))
        for name, value in pairs
    ]


def _redirected(previous: _Request, status: int, target: str) -> _Request:
    """The next hop's request, after a redirect with `status` to `target`."""
    method, body, headers = previous.method, previous.body, list(previous.headers)
    # 303, and 301/302 after a POST, turn into a GET without a body, as
    # browsers and most clients do.
    if (status == 303 and method != "HEAD") or (status in (301, 302) and method == "POST"):
        method, body = "GET", b""
        headers = [(n, v) for n, v in headers if n not in _BODY_HEADERS]
    # Credentials do not follow a redirect to another endpoint.
    if _endpoint(target) != _endpoint(previous.url):
        headers = [(n, v) for n, v in headers if n not in _CREDENTIALS]
    return _Request(method, target, headers, body, previous.timeout)


def _split(url: str) -> SplitResult | None:
    """The parts of an `http(s)` URL with a host, or None."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - validates the port
    except ValueError:
        return None
    if parts.scheme not in _DEFAULT_PORTS or not parts.hostname:
        return None
    return parts


def _endpoint(url: str) -> tuple[str, str, int] | None:
    """Scheme, host and port (explicit or default) of `url`."""
    parts = _split(url)
    if parts is None or parts.hostname is None:
        return None
    return (parts.scheme, parts.hostname.lower(), parts.port or _DEFAULT_PORTS[parts.scheme])


_METHODS: Final[dict[str, type]] = {
    "GET": _t.Method_Get,
    "HEAD": _t.Method_Head,
    "POST": _t.Method_Post,
    "PUT": _t.Method_Put,
    "DELETE": _t.Method_Delete,
    "CONNECT": _t.Method_Connect,
    "OPTIONS": _t.Method_Options,
    "TRACE": _t.Method_Trace,
    "PATCH": _t.Method_Patch,
}


def _wasi_method(method: str) -> _t.Method:
    known = _METHODS.get(method)
    return known() if known is not None else _t.Method_Other(method)


def _send_once(req: _Request) -> Response:
    """One request, no redirects: send it and read the whole response."""
    parts = _split(req.url)
    if parts is None:
        raise InvalidUrl(req.url)
    path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
    try:
        fields = _t.Fields.from_list(req.headers)
    except Err as e:
        raise Failed(req.url, f"invalid header: {_describe(e.value)}") from None
    outgoing = _t.OutgoingRequest(fields)
    try:
        outgoing.set_method(_wasi_method(req.method))
        outgoing.set_scheme(_t.Scheme_Https() if parts.scheme == "https" else _t.Scheme_Http())
        outgoing.set_authority(parts.netloc)
        outgoing.set_path_with_query(path)
    except Err:
        outgoing.__exit__(None, None, None)
        raise InvalidUrl(req.url) from None
    try:
        body = outgoing.body()
    except Err:
        outgoing.__exit__(None, None, None)
        raise Failed(req.url, "the request body is unavailable") from None
    try:
        future = _handler.handle(outgoing, _options(req.timeout))
    except Err as e:
        body.__exit__(None, None, None)
        raise _error(req, e.value) from None
    # The host reads the body while we write it; if it refused the request,
    # writing fails and the response says why.
    written = _write_body(body, req.body)
    finished: _t.ErrorCode | None = None
    try:
        _t.OutgoingBody.finish(body, None)
    except Err as e:
        finished = e.value
    with future:
        incoming = _await(future, req)
    with incoming:
        if written is not None:
            raise Failed(req.url, written)
        if finished is not None:
            raise _error(req, finished)
        status = incoming.status()
        with incoming.headers() as received:
            headers = [(name.lower(), bytes(value)) for name, value in received.entries()]
        try:
            incoming_body = incoming.consume()
        except Err:
            raise Failed(req.url, "the response body is unavailable") from None
        data, problem = _read_body(incoming_body)
        with _t.IncomingBody.finish(incoming_body):
            pass
    if problem is not None:
        raise Failed(req.url, problem)
    return Response(status, headers, data, req.url)


def _options(timeout: float | None) -> _t.RequestOptions | None:
    if timeout is None:
        return None
    options = _t.RequestOptions()
    nanos = int(timeout * 1_000_000_000)
    for set_timeout in (
        options.set_connect_timeout,
        options.set_first_byte_timeout,
        options.set_between_bytes_timeout,
    ):
        try:
            set_timeout(nanos)
        except Err:
            pass  # the host does not support this one: its own limit applies
    return options


def _await(future: _t.FutureIncomingResponse, req: _Request) -> _t.IncomingResponse:
    while True:
        result = future.get()
        if result is not None:
            break
        with future.subscribe() as ready:
            ready.block()
    if isinstance(result, Err):
        raise Failed(req.url, "the response was already taken")
    inner = result.value
    if isinstance(inner, Err):
        raise _error(req, inner.value)
    response: _t.IncomingResponse = inner.value
    return response


def _write_body(body: _t.OutgoingBody, data: bytes) -> str | None:
    """Write `data` to the request body; the problem, if it fails."""
    if not data:
        return None
    try:
        stream = body.write()
    except Err:
        return "the request body stream is unavailable"
    with stream:
        for start in range(0, len(data), _WRITE_CHUNK):
            try:
                stream.blocking_write_and_flush(data[start : start + _WRITE_CHUNK])
            except Err as e:
                return f"cannot write the request body: {_describe_stream(e.value)}"
    return None


def _read_body(body: _t.IncomingBody) -> tuple[bytes, str | None]:
    """The whole response body, and the problem if reading it failed."""
    try:
        stream = body.stream()
    except Err:
        return b"", "the response body stream is unavailable"
    chunks: list[bytes] = []
    with stream:
        while True:
            try:
                chunks.append(bytes(stream.blocking_read(_READ_CHUNK)))
            except Err as e:
                if isinstance(e.value, _streams.StreamError_Closed):
                    return b"".join(chunks), None
                return b"", f"cannot read the response: {_describe_stream(e.value)}"


def _describe_stream(error: _streams.StreamError) -> str:
    if isinstance(error, _streams.StreamError_Closed):
        return "the stream is closed"
    with error.value as io_error:
        return io_error.to_debug_string()


def _describe(value: object) -> str:
    """A code's name without the bindings' prefix, and its payload if any."""
    name = type(value).__name__.split("_", 1)[-1]
    payload = getattr(value, "value", None)
    return name if payload is None else f"{name}({payload!r})"


def _error(req: _Request, code: _t.ErrorCode) -> HttpError:
    if isinstance(code, _t.ErrorCode_HttpRequestDenied):
        return Denied(req.method, req.url)
    if isinstance(code, _t.ErrorCode_HttpRequestUriInvalid):
        return InvalidUrl(req.url)
    return Failed(req.url, _describe(code), code)
