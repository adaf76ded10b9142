"""The report as data: sections of tables, notes, plots and images, rendered by render.py to
Markdown and HTML (and by cli.py to the terminal)."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Table:
    headers: list[str]
    rows: list[tuple[list[str], str]] = field(default_factory=list)  # (cells, css class)
    caption: str = ""

    def add(self, cells, cls: str = "") -> None:
        self.rows.append(([str(c) for c in cells], cls))

    def dicts(self) -> list[dict]:
        return [dict(zip(self.headers, cells), cls=cls) for cells, cls in self.rows]


@dataclass
class Note:
    text: str


@dataclass
class Plot:
    name: str  # a PNG under the report's plots/ folder


@dataclass
class Image:
    path: Path
    caption: str


@dataclass
class Section:
    title: str
    intro: str = ""
    blocks: list = field(default_factory=list)
    level: int = 2

    def add(self, block):
        self.blocks.append(block)
        return block

    def tables(self) -> list[Table]:
        return [b for b in self.blocks if isinstance(b, Table)]


def text_table(t: Table) -> str:
    """A table as aligned plain text (the terminal summary)."""
    rows = [t.headers] + [cells for cells, _ in t.rows]
    w = [max(len(r[i]) for r in rows) for i in range(len(t.headers))]
    return "\n".join("  ".join(c.ljust(w[i]) for i, c in enumerate(r)).rstrip() for r in rows)
