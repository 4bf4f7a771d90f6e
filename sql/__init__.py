"""ClickHouse SQL of Sentinel Stream, kept as files.

``migrations/NNNN_name.sql`` are applied in order by ``sentinel db migrate`` (statements split
on ``;`` at line ends), after ``bootstrap.sql`` and ``functions.sql`` (SQL functions such as the
cost formula, re-created on every migrate); ``reports/NAME.sql`` are read-only queries with
``{name:Type}`` parameters. Python never builds SQL from strings: it loads these files and binds
parameters. ``templates/NAME.sql`` are the one exception, and a narrow one: besides bound
parameters they take ``{name}`` slots for what ClickHouse cannot bind: column lists (checked to
be plain names, then back-quoted), a view's SELECT as the database's own catalogue
(system.tables) holds it (warehouse/repair.py), a file name as a quoted literal (``literal``).
"""

from __future__ import annotations

import functools
import re
from dataclasses import dataclass
from pathlib import Path

SQL_DIR = Path(__file__).resolve().parent
DATABASE = "sentinel"


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    statements: tuple[str, ...]


def split_statements(text: str) -> list[str]:
    """Split a .sql file on semicolons that end a line; drop comment-only chunks."""
    chunks = re.split(r";\s*(?:\n|$)", text)
    out = []
    for chunk in chunks:
        body = "\n".join(line for line in chunk.splitlines() if not line.strip().startswith("--")).strip()
        if body:
            out.append(chunk.strip())
    return out


def migrations() -> list[Migration]:
    found = []
    for path in sorted((SQL_DIR / "migrations").glob("*.sql")):
        match = re.fullmatch(r"(\d{4})_(\w+)\.sql", path.name)
        if not match:
            raise ValueError(f"migration file {path.name} must be named NNNN_name.sql")
        found.append(Migration(int(match[1]), match[2], tuple(split_statements(path.read_text()))))
    versions = [m.version for m in found]
    if len(set(versions)) != len(versions):
        raise ValueError(f"duplicate migration versions in {versions}")
    return found


def bootstrap() -> list[str]:
    return split_statements((SQL_DIR / "bootstrap.sql").read_text())


def functions() -> list[str]:
    """``CREATE OR REPLACE FUNCTION`` statements of ``functions.sql`` (idempotent)."""
    return split_statements((SQL_DIR / "functions.sql").read_text())


def report(name: str) -> str:
    """The text of ``reports/<name>.sql`` (one read-only statement)."""
    path = SQL_DIR / "reports" / f"{name}.sql"
    if not path.exists():
        known = sorted(p.stem for p in (SQL_DIR / "reports").glob("*.sql"))
        raise KeyError(f"no report query {name!r}; known: {known}")
    return path.read_text().strip().rstrip(";")


_COLUMN = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def split_name(table: str) -> tuple[str, str]:
    """``"db.table"`` -> ``("db", "table")``; a bare name is in the ``sentinel`` database."""
    database, _, name = table.rpartition(".")
    return database or DATABASE, name


@functools.cache
def _template_body(name: str) -> str:
    """A template without its comment lines (slots named in comments are not slots), read once:
    ``insert_file`` is filled for every journaled insert."""
    lines = (SQL_DIR / "templates" / f"{name}.sql").read_text().splitlines()
    return "\n".join(line for line in lines if not line.lstrip().startswith("--"))


def literal(text: str) -> str:
    """``text`` as a ClickHouse string literal (for a slot such as ``FROM INFILE {path}``)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


def template(name: str, **slots: str | list[str]) -> list[str]:
    """The statements of ``templates/<name>.sql`` with their ``{name}`` slots filled: a list is a
    list of column names (checked to be plain names, then back-quoted and joined), a string is
    catalogue text put in as it is (a view's SELECT). ``{name:Type}`` parameters are left for
    the caller to bind."""
    filled_slots = {}
    for slot, value in slots.items():
        if isinstance(value, str):
            filled_slots[slot] = value
            continue
        bad = [c for c in value if not _COLUMN.fullmatch(c)]
        if bad or not value:
            raise ValueError(f"{slot}: not a list of plain column names: {value}")
        filled_slots[slot] = ", ".join(f"`{c}`" for c in value)
    body = _template_body(name)
    missing = set(re.findall(r"\{(\w+)\}", body)) - filled_slots.keys()
    if missing:
        raise KeyError(f"templates/{name}.sql needs {sorted(missing)}")
    filled = re.sub(r"\{(\w+)\}", lambda m: filled_slots[m[1]], body)
    return [s.rstrip(";") for s in split_statements(filled)]
