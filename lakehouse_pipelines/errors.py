"""The errors users see.

Every message names the thing that is wrong (file, line, column, field, dataset) in one line, and never
carries SQL, secrets or raw configuration: the Go lakehouse leaked S3 keys through error text.
"""

from __future__ import annotations


class LakehouseError(Exception):
    """Base of every error the product reports to a user (CLI exit 1, HTTP 4xx, failed Dagster run)."""


class InvalidName(LakehouseError):
    """A dataset name outside `^[a-z][a-z0-9_]{0,62}$`."""


class InvalidKey(LakehouseError):
    """A storage key that is absolute, empty, traverses upwards, or carries unsafe characters."""


class BadInput(LakehouseError):
    """A CSV that cannot be ingested: the message names the file and, where known, the line and column."""

    def __init__(self, source: str, problem: str, *, line: int | None = None, column: str | None = None):
        self.source = source
        self.problem = problem
        self.line = line
        self.column = column
        where = source
        if line is not None:
            where += f", line {line}"
        if column is not None:
            where += f", column {column!r}"
        super().__init__(f"{where}: {problem}")


class ContractViolation(LakehouseError):
    """The dataset's pandera contract rejected the file; nothing was registered."""


class SchemaDrift(LakehouseError):
    """A file whose schema fingerprint differs from the dataset's registered one."""

    def __init__(self, dataset: str, differences: list[str]):
        self.dataset = dataset
        self.differences = differences
        super().__init__(
            f"schema drift in dataset {dataset!r}: " + "; ".join(differences) + " (live data left untouched)"
        )


class NotFound(LakehouseError):
    """An unknown dataset or object."""


class PreconditionFailed(LakehouseError):
    """A conditional write lost a race: the object changed (or appeared) since it was read."""


class StorageUnavailable(LakehouseError):
    """The storage backend could not be reached or refused the request."""
