"""Fixtures of the store contract tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from mockupdb import MockupDB


@pytest.fixture
def server() -> Iterator[MockupDB]:
    """A MongoDB wire-protocol peer on loopback; each test answers its requests."""
    mock = MockupDB(auto_ismaster={"maxWireVersion": 21, "minWireVersion": 0})
    mock.run()
    yield mock
    mock.stop()
