"""A report as a list of blocks (headings, paragraphs, lists, tables, images), written as Markdown (its PNGs
beside it) or as one self-contained HTML page (the PNGs embedded as base64 data), so that the page can be
mailed or opened anywhere without its folder."""

from __future__ import annotations

import base64
import html
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .formatting import right_aligned
from .tables import markdown

STYLE = """
body { font-family: system-ui, sans-serif; max-width: 84rem; margin: 2rem auto; padding: 0 1rem; color: #222;
       line-height: 1.45; }
h1, h2, h3 { line-height: 1.2; } h2 { border-bottom: 1px solid #ddd; padding-bottom: .2rem; margin-top: 2.2rem; }
table { border-collapse: collapse; margin: .8rem 0; font-size: .85rem; }
th, td { border: 1px solid #ccc; padding: .25rem .5rem; white-space: nowrap; }
th { background: #f3f3f3; text-align: left; white-space: normal; vertical-align: bottom; }
tbody tr:nth-child(even) { background: #fafafa; }
td.number, th.number { text-align: right; font-variant-numeric: tabular-nums; }
code { background: #f3f3f3; padding: 0 .2rem; border-radius: 3px; font-size: .9em; }
pre { background: #f3f3f3; padding: .5rem; white-space: pre-wrap; }
img { max-width: 100%; height: auto; display: block; margin: .8rem 0; }
.wide { overflow-x: auto; }
"""


@dataclass
class Document:
    title: str
    blocks: list[tuple[str, object]] = field(default_factory=list)

    def heading(self, level: int, text: str) -> None:
        self.blocks.append(("heading", (level, text)))

    def text(self, text: str) -> None:
        """A paragraph; `code`, **bold** and [links](target) are kept in both forms."""
        self.blocks.append(("text", text))

    def items(self, lines: list[str]) -> None:
        self.blocks.append(("items", lines))

    def code(self, text: str, language: str = "") -> None:
        """A block of code, a command to copy as it is."""
        self.blocks.append(("code", (text, language)))

    def table(self, shown: pd.DataFrame) -> None:
        """A table of strings (formatting.readable), numbers right-aligned."""
        self.blocks.append(("table", shown))

    def image(self, path: Path, alt: str) -> None:
        self.blocks.append(("image", (Path(path), alt)))

    def markdown(self, folder: Path) -> str:
        """Markdown, its images referred to relative to `folder` (where the file goes)."""
        lines = [f"# {self.title}", ""]
        for kind, content in self.blocks:
            if kind == "heading":
                level, text = content
                lines += ["#" * level + " " + text, ""]
            elif kind == "text":
                lines += [content, ""]
            elif kind == "items":
                lines += [f"- {line}" for line in content] + [""]
            elif kind == "code":
                text, language = content
                lines += [f"```{language}", text, "```", ""]
            elif kind == "table":
                lines += [markdown(content), ""]
            else:
                path, alt = content
                lines += [f"![{alt}]({Path(os.path.relpath(path, folder)).as_posix()})", ""]
        return "\n".join(lines).rstrip() + "\n"

    def html(self) -> str:
        """One page, nothing outside it: the style inline, every image as a data: URI."""
        body = [f"<h1>{_inline(self.title)}</h1>"]
        for kind, content in self.blocks:
            if kind == "heading":
                level, text = content
                body.append(f"<h{level}>{_inline(text)}</h{level}>")
            elif kind == "text":
                body.append(f"<p>{_inline(content)}</p>")
            elif kind == "items":
                body.append("<ul>" + "".join(f"<li>{_inline(line)}</li>" for line in content) + "</ul>")
            elif kind == "code":
                body.append(f'<pre class="wide"><code>{html.escape(content[0])}</code></pre>')
            elif kind == "table":
                body.append(f'<div class="wide">{_html_table(content)}</div>')
            else:
                path, alt = content
                data = base64.b64encode(path.read_bytes()).decode("ascii")
                body.append(f'<img src="data:image/png;base64,{data}" alt="{html.escape(alt)}">')
        return (
            '<!DOCTYPE html>\n<html lang="en">\n<head>\n<meta charset="utf-8">\n'
            f"<title>{html.escape(self.title)}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n"
            + "\n".join(body)
            + "\n</body>\n</html>\n"
        )


def _inline(text: str) -> str:
    """Markdown's inline code, bold and links as HTML (everything else escaped)."""
    parts = re.split(r"(`[^`]*`)", text)
    out = []
    for part in parts:
        if part.startswith("`") and part.endswith("`") and len(part) > 1:
            out.append(f"<code>{html.escape(part[1:-1])}</code>")
            continue
        part = html.escape(part)
        part = re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", part)
        part = re.sub(r"\[([^\]]+)\]\(([^)]+)\)", r'<a href="\2">\1</a>', part)
        out.append(part)
    return "".join(out)


def _html_table(shown: pd.DataFrame) -> str:
    numeric = [right_aligned(str(c)) for c in shown.columns]
    head = "".join(
        f'<th class="number">{html.escape(str(c))}</th>' if n else f"<th>{html.escape(str(c))}</th>"
        for c, n in zip(shown.columns, numeric)
    )
    rows = []
    for _, row in shown.iterrows():
        cells = "".join(
            f'<td class="number">{html.escape(str(v))}</td>' if n else f"<td>{html.escape(str(v))}</td>"
            for v, n in zip(row, numeric)
        )
        rows.append(f"<tr>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"
