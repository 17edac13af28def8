"""Stand-ins for the bindings componentize-py generates, for plain CPython.

The SDK imports `wit_world.*` and `componentize_py_types`, which exist only
inside a component. `install()` puts fakes of them into `sys.modules` before
`cairn` is imported: a fake host (inputs, outputs, secrets, log) whose state
tests set, and a fake `wasi:http` whose resources check the rules the real
host traps on (a child resource must go before its parent, a consumed
resource cannot be used) and count what is left alive.
"""

from __future__ import annotations

import sys
import types
from dataclasses import dataclass, field
from enum import Enum
from typing import Any, Callable, Generic, Optional, TypeVar, Union

# --- componentize_py_types, as generated ---------------------------------

S = TypeVar("S")
T = TypeVar("T")
E = TypeVar("E")


@dataclass
class Some(Generic[S]):
    value: S


@dataclass
class Ok(Generic[T]):
    value: T


@dataclass(frozen=True)
class Err(Generic[E], Exception):
    value: E


# --- cairn:task/types ------------------------------------------------------


@dataclass
class Error_Denied:
    value: str


@dataclass
class Error_NotFound:
    value: str


@dataclass
class Error_TooLarge:
    value: int


@dataclass
class Error_Invalid:
    value: str


@dataclass
class Failure_Transient:
    value: str


@dataclass
class Failure_Permanent:
    value: str


class Level(Enum):
    TRACE = 0
    DEBUG = 1
    INFO = 2
    WARN = 3
    ERROR = 4


# --- cairn:task/host ---------------------------------------------------------


@dataclass
class HostState:
    """What the fake host serves and records; tests replace it per test."""

    inputs: dict[str, bytes] = field(default_factory=dict)
    secrets: dict[str, str] = field(default_factory=dict)
    declared_outputs: set[str] | None = None
    refusals: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, bytes] = field(default_factory=dict)
    logs: list[tuple[Level, str]] = field(default_factory=list)


host_state = HostState()


def _host_inputs() -> list[str]:
    return list(host_state.inputs)


def _host_read_input(name: str) -> bytes:
    if name in host_state.refusals:
        raise Err(host_state.refusals[name])
    if name not in host_state.inputs:
        raise Err(Error_NotFound(name))
    return host_state.inputs[name]


def _host_write_output(name: str, data: bytes) -> None:
    assert isinstance(data, bytes), "the bindings take `bytes` for list<u8>"
    if name in host_state.refusals:
        raise Err(host_state.refusals[name])
    if host_state.declared_outputs is not None and name not in host_state.declared_outputs:
        raise Err(Error_Denied(f"output `{name}` is not declared"))
    if name in host_state.outputs:
        raise Err(Error_Invalid(f"output `{name}` was already written"))
    host_state.outputs[name] = data


def _host_secret(name: str) -> str:
    if name in host_state.refusals:
        raise Err(host_state.refusals[name])
    if name not in host_state.secrets:
        raise Err(Error_NotFound(name))
    return host_state.secrets[name]


def _host_log(level: Level, message: str) -> None:
    assert isinstance(level, Level) and isinstance(message, str)
    host_state.logs.append((level, message))


# --- resources ---------------------------------------------------------------

live: set[Resource] = set()
"""Every fake resource neither dropped nor consumed."""


class Trap(AssertionError):
    """What the real host would do: trap the component."""


class Resource:
    def __init__(self, parent: Resource | None = None) -> None:
        self.alive = True
        self.parent = parent
        self.children: set[Resource] = set()
        if parent is not None:
            parent.children.add(self)
        live.add(self)

    def check(self) -> None:
        if not self.alive:
            raise Trap(f"{type(self).__name__} used after it was dropped or consumed")

    def release(self) -> None:
        self.check()
        if self.children:
            raise Trap(f"{type(self).__name__} consumed with live children {self.children}")
        self.alive = False
        live.discard(self)
        if self.parent is not None:
            self.parent.children.discard(self)

    def __enter__(self) -> Any:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()

    def __repr__(self) -> str:
        return type(self).__name__


class Pollable(Resource):
    def ready(self) -> bool:
        return True

    def block(self) -> None:
        self.check()


class IoError(Resource):
    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def to_debug_string(self) -> str:
        self.check()
        return self.message


@dataclass
class StreamError_LastOperationFailed:
    value: IoError


@dataclass
class StreamError_Closed:
    pass


class OutputStream(Resource):
    def __init__(self, parent: OutgoingBody) -> None:
        super().__init__(parent)
        self.body = parent

    def blocking_write_and_flush(self, contents: bytes) -> None:
        self.check()
        assert isinstance(contents, bytes)
        if len(contents) > 4096:
            raise Trap("blocking-write-and-flush takes at most 4096 bytes")
        if net.write_error is not None:
            raise Err(net.write_error)
        self.body.data.extend(contents)
        net.write_calls += 1


class InputStream(Resource):
    def __init__(self, parent: IncomingBody, chunks: list[bytes], failure: str | None) -> None:
        super().__init__(parent)
        self.chunks = chunks
        self.failure = failure

    def blocking_read(self, length: int) -> bytes:
        self.check()
        if self.chunks:
            chunk = self.chunks.pop(0)
            assert len(chunk) <= length
            return chunk
        if self.failure is not None:
            raise Err(StreamError_LastOperationFailed(IoError(self.failure)))
        raise Err(StreamError_Closed())


# --- wasi:http/types ---------------------------------------------------------

_METHOD_NAMES = ["Get", "Head", "Post", "Put", "Delete", "Connect", "Options", "Trace", "Patch"]
_ERROR_CODES = [
    "DnsTimeout", "DnsError", "DestinationNotFound", "DestinationUnavailable",
    "DestinationIpProhibited", "DestinationIpUnroutable", "ConnectionRefused",
    "ConnectionTerminated", "ConnectionTimeout", "ConnectionReadTimeout",
    "ConnectionWriteTimeout", "ConnectionLimitReached", "TlsProtocolError",
    "TlsCertificateError", "TlsAlertReceived", "HttpRequestDenied",
    "HttpRequestLengthRequired", "HttpRequestBodySize", "HttpRequestMethodInvalid",
    "HttpRequestUriInvalid", "HttpRequestUriTooLong", "HttpRequestHeaderSectionSize",
    "HttpRequestHeaderSize", "HttpRequestTrailerSectionSize", "HttpRequestTrailerSize",
    "HttpResponseIncomplete", "HttpResponseHeaderSectionSize", "HttpResponseHeaderSize",
    "HttpResponseBodySize", "HttpResponseTrailerSectionSize", "HttpResponseTrailerSize",
    "HttpResponseTransferCoding", "HttpResponseContentCoding", "HttpResponseTimeout",
    "HttpUpgradeFailed", "HttpProtocolError", "LoopDetected", "ConfigurationError",
    "InternalError",
]
_ERROR_CODES_WITH_PAYLOAD = {
    "DnsError", "TlsAlertReceived", "HttpRequestBodySize", "HttpRequestHeaderSectionSize",
    "HttpRequestHeaderSize", "HttpRequestTrailerSectionSize", "HttpRequestTrailerSize",
    "HttpResponseHeaderSectionSize", "HttpResponseHeaderSize", "HttpResponseBodySize",
    "HttpResponseTrailerSectionSize", "HttpResponseTrailerSize", "HttpResponseTransferCoding",
    "HttpResponseContentCoding", "InternalError",
}


@dataclass
class Method_Other:
    value: str


@dataclass
class Scheme_Http:
    pass


@dataclass
class Scheme_Https:
    pass


@dataclass
class Scheme_Other:
    value: str


@dataclass
class DnsErrorPayload:
    rcode: Optional[str]
    info_code: Optional[int]


@dataclass
class HeaderError_InvalidSyntax:
    pass


def _payload_class(name: str, has_payload: bool) -> type:
    if has_payload:
        return dataclass(type(name, (), {"__annotations__": {"value": Any}}))
    return dataclass(type(name, (), {}))


http_types = types.ModuleType("wit_world.imports.wasi_http_types")
for _name in _METHOD_NAMES:
    setattr(http_types, f"Method_{_name}", _payload_class(f"Method_{_name}", False))
for _name in _ERROR_CODES:
    setattr(
        http_types,
        f"ErrorCode_{_name}",
        _payload_class(f"ErrorCode_{_name}", _name in _ERROR_CODES_WITH_PAYLOAD),
    )


def code(name: str, *payload: Any) -> Any:
    """An `ErrorCode_<name>` value."""
    return getattr(http_types, f"ErrorCode_{name}")(*payload)


def _valid_token(name: str) -> bool:
    return bool(name) and all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)


class Fields(Resource):
    def __init__(self, entries: list[tuple[str, bytes]] | None = None, parent: Resource | None = None) -> None:
        super().__init__(parent)
        self.list = list(entries or [])

    @classmethod
    def from_list(cls, entries: list[tuple[str, bytes]]) -> Fields:
        for name, value in entries:
            assert isinstance(value, bytes)
            if not _valid_token(name) or b"\r" in value or b"\n" in value:
                raise Err(HeaderError_InvalidSyntax())
        return cls(entries)

    def entries(self) -> list[tuple[str, bytes]]:
        self.check()
        return list(self.list)


class RequestOptions(Resource):
    def __init__(self) -> None:
        super().__init__()
        self.timeouts: dict[str, int | None] = {}

    def set_connect_timeout(self, duration: int | None) -> None:
        self.timeouts["connect"] = duration

    def set_first_byte_timeout(self, duration: int | None) -> None:
        self.timeouts["first_byte"] = duration

    def set_between_bytes_timeout(self, duration: int | None) -> None:
        if net.between_bytes_unsupported:
            raise Err(None)
        self.timeouts["between_bytes"] = duration


class OutgoingBody(Resource):
    def __init__(self, request: OutgoingRequest) -> None:
        super().__init__()
        self.request = request
        self.data = bytearray()
        self.stream_taken = False
        self.finished = False

    def write(self) -> OutputStream:
        self.check()
        if self.stream_taken:
            raise Err(None)
        self.stream_taken = True
        return OutputStream(self)

    @classmethod
    def finish(cls, this: OutgoingBody, trailers: Fields | None) -> None:
        this.release()
        this.finished = True
        if net.finish_error is not None:
            raise Err(net.finish_error)


class OutgoingRequest(Resource):
    def __init__(self, headers: Fields) -> None:
        super().__init__()
        headers.release()
        self.headers = list(headers.list)
        self.method: Any = getattr(http_types, "Method_Get")()
        self.scheme: Any = None
        self.authority: str | None = None
        self.path_with_query: str | None = None
        self.body_taken = False

    def body(self) -> OutgoingBody:
        self.check()
        if self.body_taken:
            raise Err(None)
        self.body_taken = True
        self.outgoing_body = OutgoingBody(self)
        return self.outgoing_body

    def set_method(self, method: Any) -> None:
        self.check()
        self.method = method

    def set_scheme(self, scheme: Any) -> None:
        self.check()
        self.scheme = scheme

    def set_authority(self, authority: str | None) -> None:
        self.check()
        if authority is not None and ("/" in authority or " " in authority):
            raise Err(None)
        self.authority = authority

    def set_path_with_query(self, path: str | None) -> None:
        self.check()
        self.path_with_query = path


class IncomingBody(Resource):
    def __init__(self, parent: IncomingResponse, body: bytes, failure: str | None) -> None:
        super().__init__(parent)
        self.body = body
        self.failure = failure
        self.stream_taken = False

    def stream(self) -> InputStream:
        self.check()
        if self.stream_taken:
            raise Err(None)
        self.stream_taken = True
        chunks = [self.body[i : i + 1000] for i in range(0, len(self.body), 1000)]
        return InputStream(self, chunks, self.failure)

    @classmethod
    def finish(cls, this: IncomingBody) -> FutureTrailers:
        this.release()
        return FutureTrailers()


class FutureTrailers(Resource):
    pass


class IncomingResponse(Resource):
    def __init__(self, reply: Reply) -> None:
        super().__init__()
        self.reply = reply
        self.consumed = False

    def status(self) -> int:
        self.check()
        return self.reply.status

    def headers(self) -> Fields:
        self.check()
        return Fields(self.reply.headers, parent=self)

    def consume(self) -> IncomingBody:
        self.check()
        if self.consumed:
            raise Err(None)
        self.consumed = True
        return IncomingBody(self, self.reply.body, self.reply.body_failure)


class FutureIncomingResponse(Resource):
    def __init__(self, request: OutgoingRequest, options: RequestOptions | None) -> None:
        super().__init__()
        self.request = request
        self.options = options
        self.taken = False
        self.polls = 0

    def subscribe(self) -> Pollable:
        self.check()
        self.polls += 1
        return Pollable(parent=self)

    def get(self) -> Any:
        self.check()
        if self.polls == 0:
            return None  # not ready until waited on once
        if self.taken:
            return Err(None)
        self.taken = True
        body = self.request.outgoing_body
        if not body.finished:
            raise Trap("the response was awaited before the request body was finished")
        sent = Sent(
            method=_method_name(self.request.method),
            scheme="https" if isinstance(self.request.scheme, Scheme_Https) else "http",
            authority=self.request.authority,
            path=self.request.path_with_query,
            headers=self.request.headers,
            body=bytes(body.data),
            timeouts=dict(self.options.timeouts) if self.options else None,
        )
        net.sent.append(sent)
        reply = net.handler(sent)
        if not isinstance(reply, Reply):
            return Ok(Err(reply))
        return Ok(Ok(IncomingResponse(reply)))


def _method_name(method: Any) -> str:
    if isinstance(method, Method_Other):
        return method.value
    return type(method).__name__.removeprefix("Method_").upper()


for _cls in (
    Method_Other, Scheme_Http, Scheme_Https, Scheme_Other, DnsErrorPayload,
    HeaderError_InvalidSyntax, Fields, RequestOptions, OutgoingBody, OutgoingRequest,
    IncomingBody, FutureTrailers, IncomingResponse, FutureIncomingResponse,
):
    setattr(http_types, _cls.__name__, _cls)

# --- the fake network -------------------------------------------------------


@dataclass
class Sent:
    """A request as the fake host received it."""

    method: str
    scheme: str
    authority: str | None
    path: str | None
    headers: list[tuple[str, bytes]]
    body: bytes
    timeouts: dict[str, int | None] | None

    def header(self, name: str) -> bytes | None:
        return next((v for n, v in self.headers if n == name), None)

    @property
    def url(self) -> str:
        return f"{self.scheme}://{self.authority}{self.path}"


@dataclass
class Reply:
    status: int = 200
    headers: list[tuple[str, bytes]] = field(default_factory=list)
    body: bytes = b""
    body_failure: str | None = None


@dataclass
class Network:
    """How the fake host answers: `handler` gets each request with its body
    and returns a `Reply` or an error code; `refuse` makes `handle` itself
    fail with a code."""

    handler: Callable[[Sent], Any] = lambda sent: Reply()
    refuse: Any = None
    write_error: Any = None
    finish_error: Any = None
    between_bytes_unsupported: bool = False
    sent: list[Sent] = field(default_factory=list)
    write_calls: int = 0


net = Network()


def _handle(request: OutgoingRequest, options: RequestOptions | None) -> FutureIncomingResponse:
    request.release()
    if options is not None:
        options.release()
    if net.refuse is not None:
        raise Err(net.refuse)
    return FutureIncomingResponse(request, options)


# --- installing ----------------------------------------------------------------


def _module(name: str, **attrs: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    for key, value in attrs.items():
        setattr(module, key, value)
    return module


class WitWorld:
    """Stands in for the generated `wit_world.WitWorld` protocol."""

    def run(self) -> None:
        raise NotImplementedError


def install() -> None:
    """Put the fake bindings into `sys.modules` (before `cairn` is imported)."""
    cpt = _module("componentize_py_types", Some=Some, Ok=Ok, Err=Err, Result=Union[Ok, Err])
    task_types = _module(
        "wit_world.imports.cairn_task_types",
        Error_Denied=Error_Denied,
        Error_NotFound=Error_NotFound,
        Error_TooLarge=Error_TooLarge,
        Error_Invalid=Error_Invalid,
        Error=Union[Error_Denied, Error_NotFound, Error_TooLarge, Error_Invalid],
        Failure_Transient=Failure_Transient,
        Failure_Permanent=Failure_Permanent,
        Failure=Union[Failure_Transient, Failure_Permanent],
        Level=Level,
    )
    host = _module(
        "wit_world.imports.host",
        inputs=_host_inputs,
        read_input=_host_read_input,
        write_output=_host_write_output,
        secret=_host_secret,
        log=_host_log,
    )
    streams = _module(
        "wit_world.imports.streams",
        StreamError_LastOperationFailed=StreamError_LastOperationFailed,
        StreamError_Closed=StreamError_Closed,
        InputStream=InputStream,
        OutputStream=OutputStream,
    )
    poll = _module("wit_world.imports.poll", Pollable=Pollable)
    error = _module("wit_world.imports.error", Error=IoError)
    handler = _module("wit_world.imports.outgoing_handler", handle=_handle)
    imports = _module(
        "wit_world.imports",
        cairn_task_types=task_types,
        host=host,
        streams=streams,
        poll=poll,
        error=error,
        wasi_http_types=http_types,
        outgoing_handler=handler,
    )
    imports.__path__ = []  # a package, so `from wit_world.imports import host` works
    world = _module("wit_world", WitWorld=WitWorld, imports=imports)
    world.__path__ = []
    for module in (cpt, world, imports, task_types, host, streams, poll, error, handler):
        sys.modules[module.__name__] = module
    sys.modules[http_types.__name__] = http_types


def reset() -> None:
    """Fresh host and network state, for `setUp`."""
    global host_state
    host_state.__init__()  # type: ignore[misc]
    net.__init__()  # type: ignore[misc]
    live.clear()
