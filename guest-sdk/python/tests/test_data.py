"""Inputs and outputs, and their decoding."""

import unittest

import cairn

from . import fakes


class Inputs(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()
        fakes.host_state.inputs = {"a": b"hello", "b": b"\xff", "j": b'{"n": [1, 2]}'}

    def test_names_in_order(self) -> None:
        self.assertEqual(cairn.inputs(), ["a", "b", "j"])

    def test_bytes(self) -> None:
        self.assertEqual(cairn.read_input("a"), b"hello")

    def test_text(self) -> None:
        self.assertEqual(cairn.read_text("a"), "hello")
        self.assertEqual(cairn.read_text("a", default="d"), "hello")

    def test_default_only_when_not_found(self) -> None:
        self.assertEqual(cairn.read_text("absent", default="dflt"), "dflt")
        self.assertEqual(cairn.read_text("absent", default=""), "")
        with self.assertRaises(cairn.NotFound):
            cairn.read_text("absent")
        for refusal, kind in (
            (fakes.Error_Denied("d"), cairn.Denied),
            (fakes.Error_TooLarge(10), cairn.TooLarge),
            (fakes.Error_Invalid("i"), cairn.Invalid),
        ):
            fakes.host_state.refusals["r"] = refusal
            with self.assertRaises(kind):
                cairn.read_text("r", default="dflt")

    def test_not_utf8_is_permanent(self) -> None:
        with self.assertRaises(cairn.Permanent) as caught:
            cairn.read_text("b", default="d")
        self.assertIn("input `b` is not UTF-8", str(caught.exception))

    def test_json(self) -> None:
        self.assertEqual(cairn.read_json("j"), {"n": [1, 2]})
        with self.assertRaises(cairn.Permanent) as caught:
            cairn.read_json("a")
        self.assertIn("input `a` is not valid JSON", str(caught.exception))
        with self.assertRaises(cairn.NotFound):
            cairn.read_json("absent")


class Outputs(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()

    def test_bytes_and_text(self) -> None:
        cairn.write_output("b", b"\x00\x01")
        cairn.write_output("t", "héllo")
        cairn.write_output("m", memoryview(b"mv"))
        self.assertEqual(
            fakes.host_state.outputs, {"b": b"\x00\x01", "t": "héllo".encode(), "m": b"mv"}
        )

    def test_json(self) -> None:
        cairn.write_json("j", {"ü": [1, None]})
        self.assertEqual(fakes.host_state.outputs["j"], '{"ü": [1, null]}'.encode())

    def test_unserializable_json_writes_nothing(self) -> None:
        with self.assertRaises(TypeError):
            cairn.write_json("j", {"x": object()})
        self.assertEqual(fakes.host_state.outputs, {})

    def test_refusals(self) -> None:
        fakes.host_state.declared_outputs = {"out"}
        with self.assertRaises(cairn.Denied):
            cairn.write_output("nope", "x")
        cairn.write_output("out", "x")
        with self.assertRaises(cairn.Invalid):
            cairn.write_output("out", "again")


if __name__ == "__main__":
    unittest.main()
