"""The shared behaviour suite against the `memory` backend."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from portico_server.vectors.memory import MemoryBackend

from vectors.behaviour import *  # noqa: F403  (the shared behaviour tests)
from vectors.behaviour import Subject

del test_records_survive_a_restart  # noqa: F821  (memory keeps nothing across a restart)


@pytest.fixture
async def subject() -> AsyncIterator[Subject]:
    backend = MemoryBackend()
    yield Subject(backend)
    await backend.close()
