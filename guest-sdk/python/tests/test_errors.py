"""Every refusal from the host becomes the matching `HostError`."""

import unittest

import cairn

from . import fakes


class HostErrors(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()

    def refuse(self, error: object) -> cairn.HostError:
        fakes.host_state.refusals["x"] = error
        with self.assertRaises(cairn.HostError) as caught:
            cairn.read_input("x")
        return caught.exception

    def test_denied(self) -> None:
        e = self.refuse(fakes.Error_Denied("input `x` for task `t`"))
        self.assertIsInstance(e, cairn.Denied)
        self.assertEqual(e.what, "input `x` for task `t`")
        self.assertEqual(str(e), "denied: input `x` for task `t`")

    def test_not_found(self) -> None:
        e = self.refuse(fakes.Error_NotFound("x"))
        self.assertIsInstance(e, cairn.NotFound)
        self.assertEqual(e.name, "x")
        self.assertEqual(str(e), "`x` was not declared for this task")

    def test_too_large(self) -> None:
        e = self.refuse(fakes.Error_TooLarge(1024))
        self.assertIsInstance(e, cairn.TooLarge)
        self.assertEqual(e.limit, 1024)
        self.assertEqual(str(e), "too large: at most 1024 bytes may pass")

    def test_invalid(self) -> None:
        e = self.refuse(fakes.Error_Invalid("bad name"))
        self.assertIsInstance(e, cairn.Invalid)
        self.assertEqual(str(e), "bad name")

    def test_refusals_hide_the_bindings_error(self) -> None:
        e = self.refuse(fakes.Error_Denied("d"))
        self.assertIsNone(e.__cause__)
        self.assertTrue(e.__suppress_context__)

    def test_every_host_call_maps_refusals(self) -> None:
        fakes.host_state.refusals["x"] = fakes.Error_Denied("d")
        for call in (
            lambda: cairn.read_input("x"),
            lambda: cairn.read_text("x"),
            lambda: cairn.read_json("x"),
            lambda: cairn.write_output("x", b""),
            lambda: cairn.write_json("x", {}),
            lambda: cairn.secret("x"),
        ):
            with self.assertRaises(cairn.Denied):
                call()

    def test_http_denied_is_a_host_denial(self) -> None:
        self.assertTrue(issubclass(cairn.http.Denied, cairn.Denied))
        self.assertTrue(issubclass(cairn.http.Denied, cairn.http.HttpError))
        self.assertTrue(issubclass(cairn.Denied, cairn.HostError))

    def test_failures_carry_their_kind(self) -> None:
        self.assertTrue(cairn.Transient("x").transient)
        self.assertFalse(cairn.Permanent("x").transient)
        self.assertEqual(str(cairn.Permanent("bad data")), "bad data")


if __name__ == "__main__":
    unittest.main()
