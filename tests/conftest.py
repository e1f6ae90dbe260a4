import sys
from pathlib import Path

# Tests import the shared helpers (harness, upstream) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))

from redis_server import redis_server  # noqa: F401  (a fixture for every test)
