import sys
from pathlib import Path

# Tests import the shared helpers (harness, upstream) as top-level modules.
sys.path.insert(0, str(Path(__file__).parent))
