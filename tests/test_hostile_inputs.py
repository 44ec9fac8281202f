"""Hostile input, round 2 (issue 13): each class of bad input is refused clearly, at the mechanism that owns it.

Every refusal is checked for the same properties: one line naming the problem (file, line, column, field),
no traceback, and nothing lost (the live manifest byte-identical, the lake tree unchanged). The fuzz tests
(tests/test_fuzz_*.py) assert the same properties over generated inputs; these are the worked examples.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from lakehouse_pipelines.errors import BadInput
from lakehouse_pipelines.ingest import ingest
from lakehouse_pipelines.lake import Lake


def lake_state(lake: Lake) -> dict[str, str]:
    """Every file under the lake root with the sha256 of its bytes (lock files aside: they are empty)."""
    root = Path(lake.storage.root)
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file() and ".locks" not in p.parts
    }


@pytest.fixture
def live(lake: Lake, tmp_path: Path) -> Lake:
    """A lake with one registered dataset `t` (id, name), so refusals can be checked against live data."""
    good = tmp_path / "good.csv"
    good.write_text("id,name\n1,a\n2,b\n")
    ingest(lake, str(good), "t")
    return lake


def refused(lake: Lake, source: str | Path, dataset: str = "t") -> BadInput:
    """Ingest `source`, expecting a refusal that changes nothing in the lake."""
    before = lake_state(lake)
    with pytest.raises(BadInput) as caught:
        ingest(lake, str(source), dataset)
    assert lake_state(lake) == before
    message = str(caught.value)
    assert "\n" not in message and "Traceback" not in message
    return caught.value


# ------------------------------------------------------------------------------------------ 1. NUL bytes


def test_a_nul_byte_past_the_head_is_refused_naming_its_line(live, tmp_path):
    path = tmp_path / "late_nul.csv"
    row = b"1,aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n"  # 43 bytes: 6 MiB of rows is past the 4 MiB head
    rows = (6 * 1024**2) // len(row)
    path.write_bytes(b"id,name\n" + row * rows + b"2,x\x00y\n" + row * 10)
    error = refused(live, path)
    assert error.line == rows + 2
    assert f"late_nul.csv, line {rows + 2}: binary data: a NUL byte" in str(error)


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (b"id,na\x00me\n1,a\n", 1),
        (b"id,name\n1,\x00\n", 2),
        (b'id,name\n1,"a\nb\x00"\n', 3),  # a physical line: inside a quoted newline
        (b"id,name\n1,a\n2,b\x00", 3),  # the last byte, no trailing newline
    ],
)
def test_a_nul_byte_anywhere_is_refused(live, tmp_path, content, line):
    path = tmp_path / "nul.csv"
    path.write_bytes(content)
    assert refused(live, path).line == line


def test_a_file_without_nul_bytes_still_ingests(lake, tmp_path):
    path = tmp_path / "ok.csv"
    path.write_bytes(b"id,name\n" + b"1,\xe2\x80\x8b\x01x\n" * 3)  # zero-width space, a \x01: text, not NUL
    assert ingest(lake, str(path), "t").object.rows == 3
