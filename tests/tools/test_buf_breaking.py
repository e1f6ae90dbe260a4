"""The `buf breaking` stage of the test suite: the committed baseline matches the API, and
a change that would break a caller fails against it while an added field does not.

buf comes from `npm ci --prefix tools`; the googleapis proto the API imports is copied
from the installed wheel by scripts/copy-googleapis-protos.sh, as the suite does.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
BUF = REPO / "tools" / "node_modules" / ".bin" / "buf"


@pytest.fixture(scope="module")
def workspace(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the repository's buf workspace, to edit without touching the real one."""
    if not BUF.exists():
        pytest.fail("buf is missing: run npm ci --prefix tools", pytrace=False)
    subprocess.run([str(REPO / "scripts" / "copy-googleapis-protos.sh")], check=True, timeout=60)
    root = tmp_path_factory.mktemp("buf")
    shutil.copy(REPO / "buf.yaml", root / "buf.yaml")
    shutil.copytree(REPO / "proto", root / "proto")
    shutil.copytree(REPO / "third_party", root / "third_party")
    return root


def breaking(root: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(BUF), "breaking", "proto", "--against", str(REPO / "proto" / "baseline.binpb")],
        cwd=root, capture_output=True, text=True, timeout=120,
    )


def edit(root: Path, old: str, new: str) -> str:
    """Replaces `old` in types.proto; returns the original text to restore."""
    path = root / "proto" / "portico" / "v1" / "types.proto"
    original = path.read_text()
    assert old in original
    path.write_text(original.replace(old, new, 1))
    return original


def restore(root: Path, original: str) -> None:
    (root / "proto" / "portico" / "v1" / "types.proto").write_text(original)


def test_the_committed_baseline_is_the_api_as_it_is(workspace: Path) -> None:
    result = breaking(workspace)
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_renamed_field_fails_the_check(workspace: Path) -> None:
    original = edit(workspace, "string signature = 2", "string sig = 2")
    try:
        result = breaking(workspace)
    finally:
        restore(workspace, original)
    assert result.returncode != 0
    assert 'changed name from "signature" to "sig"' in result.stdout


def test_an_added_field_passes(workspace: Path) -> None:
    original = edit(workspace, "  string source = 4 [(google.api.field_behavior) = OPTIONAL];\n",
                    "  string source = 4 [(google.api.field_behavior) = OPTIONAL];\n  string note = 5;\n")
    try:
        result = breaking(workspace)
    finally:
        restore(workspace, original)
    assert result.returncode == 0, result.stdout + result.stderr
