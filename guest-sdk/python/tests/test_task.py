"""How `main` ends becomes the contract's `result<_, failure>`."""

import unittest
from typing import Callable

import cairn
import wit_world

from . import fakes


def run(main: Callable[[], object]) -> object:
    """What `run` gives the bindings: None, or the failure it raised."""
    world = cairn.task(main)()
    try:
        world.run()
    except fakes.Err as err:
        return err.value
    return None


class Task(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()

    def test_is_the_world_class(self) -> None:
        def main() -> None:
            pass

        world = cairn.task(main)
        self.assertTrue(issubclass(world, wit_world.WitWorld))
        self.assertEqual(world.__name__, "WitWorld")
        self.assertEqual(world.__module__, __name__)

    def test_return_is_success(self) -> None:
        self.assertIsNone(run(lambda: None))
        self.assertIsNone(run(lambda: 42))
        self.assertEqual(fakes.host_state.logs, [])

    def test_transient(self) -> None:
        def main() -> None:
            raise cairn.Transient("try later")

        self.assertEqual(run(main), fakes.Failure_Transient("try later"))
        self.assertEqual(fakes.host_state.logs, [])

    def test_permanent(self) -> None:
        def main() -> None:
            raise cairn.Permanent("bad data")

        self.assertEqual(run(main), fakes.Failure_Permanent("bad data"))

    def test_other_exceptions_are_permanent_and_logged(self) -> None:
        def main() -> None:
            raise ValueError("boom")

        self.assertEqual(run(main), fakes.Failure_Permanent("ValueError: boom"))
        [(level, text)] = fakes.host_state.logs
        self.assertEqual(level, fakes.Level.ERROR)
        self.assertIn("Traceback (most recent call last)", text)
        self.assertIn("raise ValueError", text)
        self.assertTrue(text.endswith("ValueError: boom"))
        self.assertNotIn(", in run\n", text, "the traceback starts at `main`")

    def test_exception_without_message(self) -> None:
        def main() -> None:
            raise KeyError

        self.assertEqual(run(main), fakes.Failure_Permanent("KeyError"))

    def test_uncaught_host_error_is_permanent(self) -> None:
        def main() -> None:
            cairn.read_input("absent")

        self.assertEqual(
            run(main),
            fakes.Failure_Permanent("NotFound: `absent` was not declared for this task"),
        )
        self.assertEqual(fakes.host_state.logs[0][0], fakes.Level.ERROR)

    def test_sys_exit(self) -> None:
        def exit_with(code: object) -> Callable[[], None]:
            def main() -> None:
                raise SystemExit(code)

            return main

        self.assertIsNone(run(exit_with(0)))
        self.assertIsNone(run(exit_with(None)))
        self.assertEqual(run(exit_with(3)), fakes.Failure_Permanent("exited with status 3"))
        self.assertEqual(run(exit_with("no config")), fakes.Failure_Permanent("no config"))


if __name__ == "__main__":
    unittest.main()
