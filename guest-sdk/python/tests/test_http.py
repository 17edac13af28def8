"""The HTTP client over a fake `wasi:http`: requests as the host sees them,
redirects, credentials, and how failures are classified."""

import unittest
from typing import Any, Callable

import cairn
from cairn import http

from . import fakes
from .fakes import Reply, Sent, code


def serve(routes: dict[str, Any]) -> Callable[[Sent], Any]:
    """A handler answering by URL; a value may be a Reply or an error code."""

    def handler(sent: Sent) -> Any:
        return routes.get(sent.url, Reply(404))

    return handler


def redirect(status: int, location: str) -> Reply:
    return Reply(status, [("Location", location.encode())])


class Requests(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()

    def tearDown(self) -> None:
        # Every resource was dropped or consumed, children before parents.
        self.assertEqual(fakes.live, set())

    def test_get(self) -> None:
        body = b"x" * 2500
        fakes.net.handler = serve(
            {"http://api.test:8080/v1/items?q=1": Reply(200, [("Content-Type", b"text/plain")], body)}
        )
        response = http.get(
            "http://api.test:8080/v1/items?q=1#frag", headers={"X-Trace": "abc", "Accept": b"*/*"}
        )
        self.assertEqual(response.status, 200)
        self.assertTrue(response.ok)
        self.assertEqual(response.body, body)
        self.assertEqual(response.text(), body.decode())
        self.assertEqual(response.headers, [("content-type", b"text/plain")])
        self.assertEqual(response.header("CONTENT-TYPE"), "text/plain")
        self.assertIsNone(response.header("missing"))
        self.assertEqual(response.url, "http://api.test:8080/v1/items?q=1#frag")
        self.assertIs(response.raise_for_status(), response)
        [sent] = fakes.net.sent
        self.assertEqual(sent.method, "GET")
        self.assertEqual(sent.scheme, "http")
        self.assertEqual(sent.authority, "api.test:8080")
        self.assertEqual(sent.path, "/v1/items?q=1")
        self.assertEqual(sent.headers, [("x-trace", b"abc"), ("accept", b"*/*")])
        self.assertEqual(sent.body, b"")
        self.assertIsNone(sent.timeouts)
        self.assertEqual(repr(response), "<Response 200 http://api.test:8080/v1/items?q=1#frag (2500 bytes)>")

    def test_defaults_and_https(self) -> None:
        http.get("HTTPS://api.test")
        [sent] = fakes.net.sent
        self.assertEqual((sent.scheme, sent.authority, sent.path), ("https", "api.test", "/"))

    def test_methods(self) -> None:
        for call, name in (
            (http.get, "GET"),
            (http.head, "HEAD"),
            (http.post, "POST"),
            (http.put, "PUT"),
            (http.patch, "PATCH"),
            (http.delete, "DELETE"),
        ):
            call("http://h/")
            self.assertEqual(fakes.net.sent[-1].method, name)
        http.request("purge", "http://h/")
        self.assertEqual(fakes.net.sent[-1].method, "PURGE")

    def test_json_body(self) -> None:
        fakes.net.handler = lambda sent: Reply(201, body=b'{"id": 7}')
        response = http.post("http://h/items", json={"name": "x"})
        self.assertEqual(response.json(), {"id": 7})
        [sent] = fakes.net.sent
        self.assertEqual(sent.body, b'{"name": "x"}')
        self.assertEqual(sent.header("content-type"), b"application/json")

    def test_json_keeps_an_explicit_content_type(self) -> None:
        http.put("http://h/", json=None, headers=[("Content-Type", "application/merge-patch+json")])
        [sent] = fakes.net.sent
        self.assertEqual(sent.body, b"null")
        self.assertEqual(sent.headers, [("content-type", b"application/merge-patch+json")])

    def test_large_body_is_written_in_chunks(self) -> None:
        data = bytes(range(256)) * 40  # 10240 bytes
        http.post("http://h/", body=data)
        self.assertEqual(fakes.net.sent[0].body, data)
        self.assertEqual(fakes.net.write_calls, 3)

    def test_text_body(self) -> None:
        http.post("http://h/", body="héllo")
        self.assertEqual(fakes.net.sent[0].body, "héllo".encode())

    def test_body_and_json_conflict(self) -> None:
        with self.assertRaises(TypeError):
            http.post("http://h/", body=b"x", json={})

    def test_bearer(self) -> None:
        fakes.host_state.secrets = {"t": "tok"}
        http.get("http://h/", bearer=cairn.secret("t"))
        http.get("http://h/", bearer="placeholder")
        self.assertEqual(fakes.net.sent[0].header("authorization"), b"Bearer tok")
        self.assertEqual(fakes.net.sent[1].header("authorization"), b"Bearer placeholder")

    def test_timeout(self) -> None:
        http.get("http://h/", timeout=1.5)
        self.assertEqual(
            fakes.net.sent[0].timeouts,
            {"connect": 1_500_000_000, "first_byte": 1_500_000_000, "between_bytes": 1_500_000_000},
        )

    def test_unsupported_timeout_is_skipped(self) -> None:
        fakes.net.between_bytes_unsupported = True
        http.get("http://h/", timeout=2)
        self.assertEqual(
            fakes.net.sent[0].timeouts, {"connect": 2_000_000_000, "first_byte": 2_000_000_000}
        )

    def test_invalid_arguments(self) -> None:
        with self.assertRaises(ValueError):
            http.get("http://h/", timeout=0)
        with self.assertRaises(ValueError):
            http.get("http://h/", max_redirects=-1)


class Redirects(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()

    def tearDown(self) -> None:
        self.assertEqual(fakes.live, set())

    def test_follows_relative_locations(self) -> None:
        fakes.net.handler = serve(
            {
                "http://a:1/x/y": redirect(302, "z?k=v"),
                "http://a:1/x/z?k=v": redirect(301, "/top"),
                "http://a:1/top": Reply(200, body=b"done"),
            }
        )
        response = http.get("http://a:1/x/y")
        self.assertEqual(response.body, b"done")
        self.assertEqual(response.url, "http://a:1/top")
        self.assertEqual([s.url for s in fakes.net.sent], ["http://a:1/x/y", "http://a:1/x/z?k=v", "http://a:1/top"])

    def test_303_turns_into_get_without_body(self) -> None:
        fakes.net.handler = serve(
            {"http://a/form": redirect(303, "/done"), "http://a/done": Reply(200)}
        )
        http.post("http://a/form", json={"k": 1}, headers={"X-Keep": "1"})
        second = fakes.net.sent[1]
        self.assertEqual((second.method, second.body), ("GET", b""))
        self.assertEqual(second.headers, [("x-keep", b"1")])

    def test_307_keeps_method_and_body(self) -> None:
        fakes.net.handler = serve(
            {"http://a/old": redirect(307, "http://a/new"), "http://a/new": Reply(200)}
        )
        http.put("http://a/old", body=b"data")
        second = fakes.net.sent[1]
        self.assertEqual((second.method, second.body), ("PUT", b"data"))

    def test_credentials_stay_on_the_same_endpoint(self) -> None:
        fakes.net.handler = serve(
            {"http://a:1/x": redirect(302, "/y"), "http://a:1/y": Reply(200)}
        )
        http.get("http://a:1/x", bearer="tok", headers={"Cookie": "c=1"})
        self.assertEqual(fakes.net.sent[1].header("authorization"), b"Bearer tok")
        self.assertEqual(fakes.net.sent[1].header("cookie"), b"c=1")

    def test_credentials_dropped_for_another_host_or_port(self) -> None:
        for target in ("http://b:1/y", "http://a:2/y", "https://a:1/y", "//evil.test/y"):
            with self.subTest(target=target):
                fakes.reset()
                fakes.net.handler = lambda sent, t=target: (
                    redirect(302, t) if sent.path == "/x" else Reply(200)
                )
                http.get(
                    "http://a:1/x",
                    bearer="tok",
                    headers=[("Cookie", "c=1"), ("Proxy-Authorization", "p"), ("X-Other", "o")],
                )
                second = fakes.net.sent[1]
                self.assertEqual(second.headers, [("x-other", b"o")])

    def test_default_port_is_the_same_endpoint(self) -> None:
        fakes.net.handler = lambda sent: redirect(302, "http://A:80/y") if sent.path == "/x" else Reply(200)
        http.get("http://a/x", bearer="tok")
        self.assertEqual(fakes.net.sent[1].header("authorization"), b"Bearer tok")

    def test_zero_returns_the_redirect(self) -> None:
        fakes.net.handler = lambda sent: redirect(302, "/elsewhere")
        response = http.get("http://a/x", max_redirects=0)
        self.assertEqual(response.status, 302)
        self.assertEqual(response.header("location"), "/elsewhere")
        self.assertEqual(len(fakes.net.sent), 1)

    def test_too_many(self) -> None:
        fakes.net.handler = lambda sent: redirect(302, "/again")
        with self.assertRaises(http.TooManyRedirects) as caught:
            http.get("http://a/x", max_redirects=2)
        self.assertEqual(caught.exception.url, "http://a/again")
        self.assertEqual(len(fakes.net.sent), 3)
        self.assertFalse(caught.exception.transient)

    def test_redirect_to_another_scheme_is_invalid(self) -> None:
        fakes.net.handler = lambda sent: redirect(302, "ftp://a/file")
        with self.assertRaises(http.InvalidUrl):
            http.get("http://a/x")

    def test_each_hop_is_checked(self) -> None:
        fakes.net.handler = serve(
            {"http://a/x": redirect(302, "http://undeclared:9/"), "http://undeclared:9/": code("HttpRequestDenied")}
        )
        with self.assertRaises(http.Denied) as caught:
            http.get("http://a/x")
        self.assertEqual(caught.exception.url, "http://undeclared:9/")


class Errors(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()

    def fail(self, reply: Any) -> http.HttpError:
        fakes.net.handler = lambda sent: reply
        with self.assertRaises(http.HttpError) as caught:
            http.get("http://a:1/x")
        self.assertEqual(fakes.live, set())
        return caught.exception

    def test_denied_in_response(self) -> None:
        e = self.fail(code("HttpRequestDenied"))
        self.assertIsInstance(e, http.Denied)
        self.assertIsInstance(e, cairn.Denied)
        self.assertEqual((e.method, e.url, e.what), ("GET", "http://a:1/x", "GET http://a:1/x"))
        self.assertIn("request GET http://a:1/x denied by the host", str(e))
        self.assertFalse(e.transient)

    def test_denied_at_handle(self) -> None:
        fakes.net.refuse = code("HttpRequestDenied")
        with self.assertRaises(cairn.Denied):
            http.post("http://a:1/x", body=b"data")
        self.assertEqual(fakes.live, set())

    def test_invalid_urls(self) -> None:
        for url in ("ftp://a/x", "http:///x", "a/x", "http://a:port/x", "http://[::1/x"):
            with self.subTest(url=url):
                with self.assertRaises(http.InvalidUrl) as caught:
                    http.get(url)
                self.assertEqual(caught.exception.url, url)
                self.assertEqual(str(caught.exception), f"`{url}` is not an http(s) URL")
        self.assertEqual(fakes.net.sent, [])

    def test_uri_invalid_from_host(self) -> None:
        self.assertIsInstance(self.fail(code("HttpRequestUriInvalid")), http.InvalidUrl)

    def test_transient_failures(self) -> None:
        for name in ("ConnectionRefused", "ConnectionTerminated", "ConnectionTimeout",
                     "ConnectionReadTimeout", "DnsTimeout", "HttpResponseTimeout"):
            with self.subTest(code=name):
                fakes.reset()
                e = self.fail(code(name))
                self.assertIsInstance(e, http.Failed)
                self.assertEqual(e.reason, name)
                self.assertEqual(str(e), f"request to http://a:1/x failed: {name}")
                self.assertTrue(e.transient)

    def test_permanent_failures(self) -> None:
        e = self.fail(code("DnsError", fakes.DnsErrorPayload("NXDOMAIN", None)))
        self.assertIsInstance(e, http.Failed)
        self.assertTrue(e.reason.startswith("DnsError("))
        self.assertIsInstance(e.code, fakes.http_types.ErrorCode_DnsError)
        self.assertFalse(e.transient)
        fakes.reset()
        e = self.fail(code("HttpResponseBodySize", 1 << 20))
        self.assertEqual(e.reason, "HttpResponseBodySize(1048576)")
        self.assertFalse(e.transient)

    def test_body_read_failure(self) -> None:
        e = self.fail(Reply(200, body=b"partial" * 500, body_failure="connection reset"))
        self.assertIsInstance(e, http.Failed)
        self.assertEqual(e.reason, "cannot read the response: connection reset")

    def test_body_write_failure(self) -> None:
        fakes.net.write_error = fakes.StreamError_Closed()
        with self.assertRaises(http.Failed) as caught:
            http.post("http://a/", body=b"x")
        self.assertIn("cannot write the request body", caught.exception.reason)
        self.assertEqual(fakes.live, set())

    def test_invalid_header(self) -> None:
        with self.assertRaises(http.Failed) as caught:
            http.get("http://a/", headers={"bad name": "v"})
        self.assertEqual(caught.exception.reason, "invalid header: InvalidSyntax")
        self.assertEqual(fakes.live, set())

    def test_status_errors(self) -> None:
        for status, transient in ((500, True), (503, True), (429, True), (404, False), (400, False)):
            with self.subTest(status=status):
                fakes.net.handler = lambda sent, s=status: Reply(s)
                response = http.get("http://a:1/x")
                self.assertFalse(response.ok)
                with self.assertRaises(http.StatusError) as caught:
                    response.raise_for_status()
                e = caught.exception
                self.assertEqual((e.status, e.url), (status, "http://a:1/x"))
                self.assertEqual(str(e), f"http://a:1/x answered {status}")
                self.assertEqual(e.transient, transient)

    def test_uncaught_http_error_fails_the_task_permanently(self) -> None:
        fakes.net.handler = lambda sent: code("HttpRequestDenied")
        world = cairn.task(lambda: http.get("http://a:1/x"))()
        with self.assertRaises(fakes.Err) as caught:
            world.run()
        failure = caught.exception.value
        self.assertIsInstance(failure, fakes.Failure_Permanent)
        self.assertTrue(failure.value.startswith("Denied: request GET http://a:1/x denied"))


if __name__ == "__main__":
    unittest.main()
