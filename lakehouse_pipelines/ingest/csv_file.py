"""Reading a CSV drop: its header, its bytes' hash, and DuckDB's streaming reader over it.

DuckDB parses the body (RFC 4180: quoted commas and newlines, `""` escapes, CRLF, a UTF-8 BOM) in parallel
and in bounded memory, and reports the line of a ragged row or bad byte; this module turns those reports
into one-line errors naming the file, line and problem. The header is read here, in Python, because its
rules (no empty, duplicate or control-character names) are ours, not the parser's.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path

from lakehouse_pipelines.errors import BadInput

HEADER_LIMIT = 4 * 1024**2
# DuckDB's default; raising it grows the reader's buffers 16-fold (8 MiB lines: 128 MiB a thread).
MAX_LINE_BYTES = 2 * 1024**2
# Wider than PostgreSQL's 1,600; inference costs ~3 ms a column to plan, so 10K columns would take minutes.
MAX_COLUMNS = 2_048
NUL_PROBLEM = "binary data: a NUL byte, which CSV text never holds"
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_DUCKDB_LINE = re.compile(r"CSV Error on Line: (\d+)")
_DUCKDB_COLUMNS = re.compile(r"Expected Number of Columns: (\d+) Found: (\d+)")


def sha256_file(path: Path, chunk_size: int = 4 * 1024**2) -> str:
    """Hash the file in chunks; hashlib releases the GIL on large buffers, so this runs at disk speed."""
    return digest_file(path, chunk_size).sha256


@dataclass(frozen=True)
class FileDigest:
    sha256: str
    nul_offset: int | None  # byte offset of the first NUL byte, if the file has one


def digest_file(path: Path, chunk_size: int = 4 * 1024**2) -> FileDigest:
    """The file's sha256 and where its first NUL byte is, in the one read that hashes it end to end.

    Looking for a NUL costs ~6% of hashing (memchr); counting lines as well would cost ~60%, so the line
    of a NUL is counted only when there is one (`nul_line`), on the refusal path.
    """
    digest = hashlib.sha256()
    offset, nul = 0, None
    with open(path, "rb") as f:
        while chunk := f.read(chunk_size):
            digest.update(chunk)
            if nul is None and (at := chunk.find(b"\x00")) >= 0:
                nul = offset + at
            offset += len(chunk)
    return FileDigest(digest.hexdigest(), nul)


def nul_line(path: Path, offset: int, chunk_size: int = 4 * 1024**2) -> int:
    """The 1-based physical line of byte `offset` (newlines before it, plus one)."""
    newlines = 0
    with open(path, "rb") as f:
        while offset > 0 and (chunk := f.read(min(chunk_size, offset))):
            newlines += chunk.count(b"\n")
            offset -= len(chunk)
    return newlines + 1


def refuse_nul(path: Path, source: str, digest: FileDigest) -> None:
    """A NUL byte anywhere (not only in the head the header check reads) is binary data, never a CSV cell."""
    if digest.nul_offset is not None:
        line = nul_line(path, digest.nul_offset)
        raise BadInput(source, f"{NUL_PROBLEM} (byte {digest.nul_offset:,})", line=line)


def open_drop(path: Path, source: str, root: Path | None = None) -> int:
    """A read-only descriptor on the regular file at `path`, never reached through a symbolic link.

    The file itself must not be a link (`O_NOFOLLOW`), and when it lies under `root` (the landing folder)
    neither may any directory between `root` and it: each is opened relative to its parent with
    `O_NOFOLLOW`, so a link swapped in after a check is refused too. Directories above `root`, or above a
    file given outside it, are the user's own path and may be links. `O_NONBLOCK`: a FIFO never blocks.
    """
    path = Path(os.path.abspath(path))
    flags = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    inside = _parts_under(path, root)
    try:
        if inside is None:
            fd = os.open(path, flags)
        else:
            fd = _open_beneath(Path(os.path.abspath(root)), inside, flags)
    except FileNotFoundError:
        raise BadInput(source, "no such file") from None
    except PermissionError:
        raise BadInput(source, "permission denied") from None
    except OSError as exc:
        if link := _first_link(path, root if inside is not None else None):
            where = "the file" if link == path else f"its folder {link.name!r}"
            raise BadInput(source, f"{where} is a symbolic link: {SYMLINK_RULE}") from None
        raise BadInput(source, f"cannot be opened ({exc.strerror or type(exc).__name__})") from None
    kind = stat.S_IFMT(os.fstat(fd).st_mode)
    if kind != stat.S_IFREG:
        os.close(fd)
        raise BadInput(source, f"not a regular file (a {_KINDS.get(kind, 'special file')})")
    return fd


SYMLINK_RULE = "links are not followed, give the file itself (docs/hostile-inputs.md)"
_KINDS = {stat.S_IFDIR: "directory", stat.S_IFIFO: "named pipe", stat.S_IFSOCK: "socket",
          stat.S_IFCHR: "device", stat.S_IFBLK: "device"}  # fmt: skip


def pinned_path(fd: int, path: Path, source: str) -> Path:
    """A path that reaches exactly the open file `fd`, for readers that open by name (DuckDB).

    On Linux `/proc/self/fd/<fd>` reopens that very inode, whatever happens to `path` meanwhile; elsewhere
    `path`, once it still names the same inode, not a link to another file.
    """
    proc = Path(f"/proc/self/fd/{fd}")
    if proc.exists():
        return proc
    opened, named = os.fstat(fd), os.stat(path, follow_symlinks=False)
    if (opened.st_dev, opened.st_ino) != (named.st_dev, named.st_ino):
        raise BadInput(source, "the file was replaced while it was opened")
    return path


def _parts_under(path: Path, root: Path | None) -> tuple[str, ...] | None:
    if root is None:
        return None
    try:
        parts = path.relative_to(os.path.abspath(root)).parts
    except ValueError:
        return None
    return parts or None


def _open_beneath(root: Path, parts: tuple[str, ...], flags: int) -> int:
    folder = os.open(root, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for part in parts[:-1]:
            inner = os.open(part, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=folder)
            os.close(folder)
            folder = inner
        return os.open(parts[-1], flags, dir_fd=folder)
    finally:
        os.close(folder)


def _first_link(path: Path, root: Path | None) -> Path | None:
    """The first symbolic link on the way to `path`: below `root` if given, else `path` itself only."""
    candidates = [path]
    if root is not None:
        top = Path(os.path.abspath(root))
        candidates = [p for p in reversed(path.parents) if p.is_relative_to(top) and p != top] + [path]
    return next((p for p in candidates if p.is_symlink()), None)


def read_header(path: Path, source: str) -> list[str]:
    """The column names of the file's first record, validated."""
    with open(path, "rb") as f:
        head = f.read(HEADER_LIMIT)
        truncated = bool(f.read(1))
    if not head.strip():
        raise BadInput(source, "the file is empty: expected a header line", line=1)
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        raise BadInput(source, "UTF-16 text (byte-order mark): save the file as UTF-8", line=1)
    if (nul := head.find(b"\x00")) >= 0:
        raise BadInput(source, f"{NUL_PROBLEM} (byte {nul:,})", line=head[:nul].count(b"\n") + 1)
    if truncated and b"\n" not in head and b"\r" not in head:
        raise BadInput(source, f"the header line is longer than {HEADER_LIMIT // 1024**2} MiB", line=1)
    decoder = codecs.getincrementaldecoder("utf-8-sig")()
    try:
        text = decoder.decode(head, final=not truncated)
    except UnicodeDecodeError as exc:
        line = head[: exc.start].count(b"\n") + 1
        raise BadInput(source, f"invalid UTF-8 at byte {exc.start}", line=line) from None
    try:
        names = next(csv.reader(io.StringIO(text), strict=True))
    except csv.Error as exc:
        raise BadInput(source, f"malformed header: {exc}", line=1) from None
    return validate_header([n.strip() for n in names], source)


def validate_header(names: list[str], source: str) -> list[str]:
    """Reject headers that would make an ambiguous table: empty, duplicate (in any case), or unprintable names."""
    if len(names) > MAX_COLUMNS:
        raise BadInput(source, f"{len(names)} columns is more than the limit of {MAX_COLUMNS}", line=1)
    seen: dict[str, int] = {}
    for position, name in enumerate(names, start=1):
        if not name:
            raise BadInput(source, f"empty column name at position {position}", line=1)
        if _CONTROL.search(name):
            raise BadInput(source, f"control character in column name at position {position}", line=1)
        folded = name.casefold()
        if folded in seen:
            # SQL identifiers are case-insensitive, so `Zip` and `zip` would be one column to every query.
            raise BadInput(
                source,
                f"duplicate column name {name!r} (positions {seen[folded]} and {position})",
                line=1,
                column=name,
            )
        seen[folded] = position
    return names


def quote_ident(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def quote_literal(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


def read_csv_sql(path: Path, names: list[str]) -> str:
    """A DuckDB relation over the file's body with every column as text, strict about RFC 4180.

    Sniffing is off: the header is ours and types are inferred by our rules, from every row.
    """
    columns = ", ".join(f"{quote_literal(n)}: 'VARCHAR'" for n in names)
    return (
        f"read_csv({quote_literal(str(path))}, header = true, auto_detect = false, delim = ',', "
        f"quote = '\"', escape = '\"', strict_mode = true, null_padding = false, "
        f"encoding = 'utf-8', columns = {{{columns}}})"
    )


def csv_error(exc: Exception, source: str) -> BadInput:
    """Turn DuckDB's multi-line CSV report into one line naming the file, line and problem."""
    message = str(exc)
    match = _DUCKDB_LINE.search(message)
    line = int(match.group(1)) if match else None
    if columns := _DUCKDB_COLUMNS.search(message):
        problem = f"expected {columns.group(1)} fields, found {columns.group(2)} (ragged row)"
    elif "Invalid unicode" in message:
        problem = "invalid UTF-8 (the file must be UTF-8 text)"
    elif "unterminated quote" in message:
        problem = "a quoted field is never closed"
    elif "Maximum line size" in message or "does not support a full read" in message:
        # the second: a line longer than the parallel reader's whole buffer (16 x the line limit)
        problem = f"a line is longer than the reader's limit of {MAX_LINE_BYTES // 1024**2} MiB"
    elif "quote" in message.lower():
        problem = "a quote inside an unquoted field or text after a closing quote"
    else:
        problem = "the file is not valid CSV"
    return BadInput(source, problem, line=line)
