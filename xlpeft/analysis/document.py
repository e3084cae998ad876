"""A document as a list of blocks (headings, paragraphs, bullets, tables, figures), rendered alike to
Markdown and to one self-contained HTML page: what :mod:`xlpeft.analysis.render` writes the report with."""

from __future__ import annotations

import base64
import html
import re
from pathlib import Path


class Document:
    """The report as a list of blocks, rendered alike to Markdown (figures linked) and to one
    self-contained HTML file (figures embedded as data URIs). Text may use `code` and **bold**."""

    def __init__(self) -> None:
        self.blocks: list[tuple] = []

    def heading(self, text: str, level: int = 2) -> None:
        self.blocks.append(("heading", level, text))

    def text(self, text: str) -> None:
        self.blocks.append(("text", text))

    def bullets(self, items: list[str]) -> None:
        self.blocks.append(("bullets", items))

    def table(self, header: list[str], rows: list[list[str]]) -> None:
        self.blocks.append(("table", header, rows))

    def image(self, path: Path, caption: str) -> None:
        self.blocks.append(("image", path, caption))

    def markdown(self) -> str:
        parts = []
        for block in self.blocks:
            match block:
                case ("heading", level, text):
                    parts.append(f"{'#' * level} {text}")
                case ("text", text):
                    parts.append(text)
                case ("bullets", items):
                    parts.append("\n".join(f"- {item}" for item in items))
                case ("table", header, rows):
                    lines = [header, ["---"] * len(header), *rows]
                    parts.append("\n".join("| " + " | ".join(cell.replace("|", "\\|") for cell in line) + " |"
                                           for line in lines))
                case ("image", path, caption):
                    parts.append(f"![{path.stem}]({path.name})\n\n{caption}")
        return "\n\n".join(parts) + "\n"

    def html(self, title: str) -> str:
        parts = []
        for block in self.blocks:
            match block:
                case ("heading", level, text):
                    parts.append(f"<h{level}>{inline(text)}</h{level}>")
                case ("text", text):
                    parts.append(f"<p>{inline(text)}</p>")
                case ("bullets", items):
                    parts.append("<ul>" + "".join(f"<li>{inline(item)}</li>" for item in items) + "</ul>")
                case ("table", header, rows):
                    head = "".join(f"<th>{inline(cell)}</th>" for cell in header)
                    body = "".join("<tr>" + "".join(f"<td>{inline(cell)}</td>" for cell in row) + "</tr>"
                                   for row in rows)
                    parts.append(f'<div class="scroll"><table><thead><tr>{head}</tr></thead>'
                                 f"<tbody>{body}</tbody></table></div>")
                case ("image", path, caption):
                    data = base64.b64encode(path.read_bytes()).decode("ascii")
                    parts.append(f'<figure><div class="scroll"><img src="data:image/png;base64,{data}" '
                                 f'alt="{html.escape(path.stem)}"></div><figcaption>{inline(caption)}</figcaption></figure>')
        return (f'<!DOCTYPE html>\n<html lang="en">\n<head><meta charset="utf-8"><title>{html.escape(title)}</title>'
                f"<style>{_CSS}</style></head>\n<body>\n" + "\n".join(parts) + "\n</body>\n</html>\n")


# Wide figures (one tick per language) keep their natural size and scroll sideways, so labels stay legible.
_CSS = ("body{font-family:system-ui,sans-serif;color:#222;line-height:1.45;max-width:80em;margin:2em auto;"
        "padding:0 1em}table{border-collapse:collapse;font-size:.8em;margin:.6em 0}th,td{border:1px solid #ccc;"
        "padding:.15em .5em;text-align:left;vertical-align:top}th{background:#f3f3f3}.scroll{overflow-x:auto}"
        "figure{margin:1.2em 0}figcaption{font-size:.85em;color:#555}img{max-width:none}"
        "code{background:#f4f4f4;padding:0 .2em;font-size:.92em}")


def inline(text: str) -> str:
    """HTML for one line of text with `code` and **bold**."""
    escaped = html.escape(text, quote=False)
    escaped = re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)
    return re.sub(r"\*\*(.+?)\*\*", r"<strong>\1</strong>", escaped)
