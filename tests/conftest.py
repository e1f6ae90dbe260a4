import sys
from pathlib import Path

# Tests import the shared helpers (harness, upstream) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))

import pytest
from redis_server import redis_server  # noqa: F401  (a fixture for every test)


@pytest.fixture(autouse=True)
def _vector_data_dir(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> None:
    """The embedded vector store's default data directory, per test: a gateway started
    without configuration (in-process or spawned) stores its vectors there, not in the
    home directory, and no test sees another's collections."""
    monkeypatch.setenv("PORTICO_DATA_DIR", str(tmp_path_factory.mktemp("portico-data")))
