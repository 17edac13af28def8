"""Unit tests of the `cairn` package, against fake bindings.

Importing this package installs the fakes (see `fakes.install`), so every
test module can import `cairn` as a task would.
"""

from . import fakes

fakes.install()
