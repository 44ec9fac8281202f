"""The declarations a long-running service reads: parsed once, parsed again when a file changes, and an
invalid file is an error for the caller that asks, not a crash of the process."""

from __future__ import annotations

import os

import pytest

from lakehouse_pipelines.declarations import Declarations
from lakehouse_pipelines.errors import LakehouseError


def write(path, text: str, mtime_ns: int) -> None:
    path.write_text(text)
    os.utime(path, ns=(mtime_ns, mtime_ns))


def test_declarations_are_read_again_only_when_a_file_changes(tmp_path):
    spec = tmp_path / "things.yaml"
    write(spec, "name: things\nembedding: {id_column: id, template: '{name}'}\n", 1_000_000_000)
    declarations = Declarations(tmp_path)
    first = declarations.all()
    assert declarations.get("things").embedding.id_column == "id"
    assert declarations.all() is first  # nothing changed: not parsed again
    write(spec, "name: things\nembedding: {id_column: thing_id, template: '{name}'}\n", 2_000_000_000)
    assert declarations.get("things").embedding.id_column == "thing_id"
    write(tmp_path / "more.yaml", "name: more\n", 3_000_000_000)
    assert set(declarations.all()) == {"things", "more"}
    (tmp_path / "more.yaml").unlink()
    assert declarations.get("more") is None


def test_an_invalid_declaration_is_an_error_for_the_caller_until_it_is_fixed(tmp_path):
    spec = tmp_path / "things.yaml"
    write(spec, "description: no name\n", 1_000_000_000)
    declarations = Declarations(tmp_path)
    with pytest.raises(LakehouseError, match=r"things\.yaml"):
        declarations.get("things")
    write(spec, "name: things\n", 2_000_000_000)
    assert declarations.get("things").name == "things"
