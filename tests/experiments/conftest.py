"""Fixtures of the reproduction tests: a data cache per session and one thread."""

from tests.fixtures import data_cache  # noqa: F401 - an autouse fixture
