"""Log lines and the `logging` bridge, with levels mapped."""

import logging
import unittest

import cairn

from . import fakes

L = fakes.Level


class Log(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()

    def test_functions(self) -> None:
        cairn.trace("t")
        cairn.debug("d")
        cairn.info("i")
        cairn.warn("w")
        cairn.error("e")
        cairn.log(cairn.Level.INFO, "level")
        cairn.log("Warn", "by name")
        cairn.info(42)
        self.assertEqual(
            fakes.host_state.logs,
            [
                (L.TRACE, "t"),
                (L.DEBUG, "d"),
                (L.INFO, "i"),
                (L.WARN, "w"),
                (L.ERROR, "e"),
                (L.INFO, "level"),
                (L.WARN, "by name"),
                (L.INFO, "42"),
            ],
        )

    def test_unknown_level_name(self) -> None:
        with self.assertRaises(ValueError):
            cairn.log("loud", "x")


class Handler(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()
        self.logger = logging.getLogger(f"test_log.{self.id()}")
        self.logger.propagate = False
        self.handler = cairn.install_logging(logger=self.logger)

    def tearDown(self) -> None:
        self.logger.removeHandler(self.handler)

    def test_levels(self) -> None:
        self.logger.log(5, "below debug")
        self.logger.debug("debug")
        self.logger.info("info")
        self.logger.log(25, "between")
        self.logger.warning("warning")
        self.logger.error("error")
        self.logger.critical("critical")
        self.assertEqual(
            fakes.host_state.logs,
            [
                (L.DEBUG, "debug"),
                (L.INFO, "info"),
                (L.INFO, "between"),
                (L.WARN, "warning"),
                (L.ERROR, "error"),
                (L.ERROR, "critical"),
            ],
        )

    def test_below_debug_is_trace_when_enabled(self) -> None:
        cairn.install_logging(level=1, logger=self.logger)
        self.logger.log(5, "fine")
        self.assertEqual(fakes.host_state.logs, [(L.TRACE, "fine")])

    def test_install_replaces_rather_than_adds(self) -> None:
        self.handler = cairn.install_logging(logger=self.logger, fmt="%(name)s| %(message)s")
        self.logger.info("once")
        self.assertEqual(fakes.host_state.logs, [(L.INFO, f"{self.logger.name}| once")])
        handlers = [h for h in self.logger.handlers if isinstance(h, cairn.LogHandler)]
        self.assertEqual(handlers, [self.handler])

    def test_level_threshold(self) -> None:
        cairn.install_logging(level=logging.WARNING, logger=self.logger)
        self.logger.info("hidden")
        self.logger.warning("shown")
        self.assertEqual(fakes.host_state.logs, [(L.WARN, "shown")])

    def test_exception_traceback(self) -> None:
        try:
            raise RuntimeError("kaput")
        except RuntimeError:
            self.logger.exception("it broke")
        [(level, text)] = fakes.host_state.logs
        self.assertEqual(level, L.ERROR)
        self.assertTrue(text.startswith("it broke\nTraceback"))
        self.assertIn("RuntimeError: kaput", text)

    def test_root_logger_by_default(self) -> None:
        root = logging.getLogger()
        saved = (list(root.handlers), root.level)
        try:
            handler = cairn.install_logging()
            self.assertIn(handler, root.handlers)
            self.assertEqual(root.level, logging.DEBUG)
            logging.getLogger("some.library").debug("from a library")
            self.assertEqual(fakes.host_state.logs, [(L.DEBUG, "from a library")])
        finally:
            root.handlers[:] = saved[0]
            root.setLevel(saved[1])


if __name__ == "__main__":
    unittest.main()
