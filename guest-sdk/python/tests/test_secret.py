"""A secret's value shows only through `expose`."""

import copy
import json
import logging
import pickle
import unittest

import cairn

from . import fakes

VALUE = "hunter2-s3cr3t"
REDACTED = "Secret(<redacted>)"


class Secrets(unittest.TestCase):
    def setUp(self) -> None:
        fakes.reset()
        fakes.host_state.secrets = {"token": VALUE}
        self.secret = cairn.secret("token")

    def test_expose(self) -> None:
        self.assertEqual(self.secret.expose(), VALUE)

    def test_text_forms_are_redacted(self) -> None:
        s = self.secret
        for text in (
            repr(s),
            str(s),
            f"{s}",
            f"{s!r}",
            f"{s:>40}",
            "{}".format(s),
            "%s" % s,
            "%r" % s,
            repr([s]),
            repr({"k": s}),
        ):
            self.assertNotIn(VALUE, text)
            self.assertIn(REDACTED, text)

    def test_logging_is_redacted(self) -> None:
        logger = logging.getLogger("test_secret")
        handler = cairn.install_logging(logger=logger)
        try:
            logger.info("token %s", self.secret)
            logger.info("token %r", self.secret)
            logger.info(self.secret)
            cairn.info(self.secret)
            cairn.log("warn", self.secret)
        finally:
            logger.removeHandler(handler)
        self.assertEqual(len(fakes.host_state.logs), 5)
        for _, line in fakes.host_state.logs:
            self.assertNotIn(VALUE, line)
            self.assertIn(REDACTED, line)

    def test_no_leak_through_other_protocols(self) -> None:
        s = self.secret
        self.assertNotEqual(s, VALUE)
        self.assertNotEqual(s, cairn.secret("token"))
        self.assertEqual(s, s)
        self.assertIsInstance(hash(s), int)
        with self.assertRaises(TypeError):
            vars(s)
        with self.assertRaises(TypeError):
            json.dumps({"t": s})
        with self.assertRaises(TypeError):
            pickle.dumps(s)
        with self.assertRaises(TypeError):
            copy.copy(s)
        with self.assertRaises(TypeError):
            copy.deepcopy(s)
        self.assertNotIn(VALUE, " ".join(dir(s)))

    def test_cannot_be_subclassed_to_show_the_value(self) -> None:
        # `@final` is for type checkers; the value stays private by name
        # mangling and `__slots__` (no `__dict__` to dump).
        self.assertFalse(hasattr(self.secret, "__dict__"))

    def test_missing_secret(self) -> None:
        with self.assertRaises(cairn.NotFound):
            cairn.secret("other")


if __name__ == "__main__":
    unittest.main()
