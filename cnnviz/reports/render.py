"""A lab report as plain data (sections of paragraphs, tables, code and images) and its two renderings:
Markdown and a self-contained HTML page, both with every image embedded (PNG, base64).

Charts become PNG through ``vl-convert`` where it is installed, else through matplotlib
(``figures``); with neither a chart is left out and the report says so (its numbers are in the
tables beside it).
"""

from __future__ import annotations

import base64
import html
import io
from dataclasses import dataclass, field
from typing import Any, Sequence, Union

import pandas as pd


@dataclass
class Paragraph:
    text: str


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    frame: pd.DataFrame
    caption: str = ""


@dataclass
class Code:
    text: str
    caption: str = ""


@dataclass
class Image:
    png: bytes
    caption: str


@dataclass
class Gallery:
    images: list[Image]
    caption: str = ""


Block = Union[Paragraph, Bullets, Table, Code, Image, Gallery]


@dataclass
class Section:
    title: str
    blocks: list[Block] = field(default_factory=list)
    level: int = 2

    def add(self, *blocks: Block | None) -> "Section":
        """Append the blocks that are not None; returns the section."""
        self.blocks += [b for b in blocks if b is not None]
        return self


@dataclass
class Report:
    title: str
    subtitle: str = ""
    sections: list[Section] = field(default_factory=list)

    def section(self, title: str, *, level: int = 2) -> Section:
        """A new section at the end of the report."""
        self.sections.append(Section(title, level=level))
        return self.sections[-1]

    def titles(self) -> list[str]:
        """Every section's title, in order."""
        return [s.title for s in self.sections]


def chart_png(chart: Any, *, scale: float = 1.5) -> bytes | None:
    """An Altair chart as PNG bytes, or None where vl-convert is not installed or the chart cannot render."""
    try:
        import vl_convert
    except ImportError:
        return None
    try:
        return vl_convert.vegalite_to_png(chart.to_json(), scale=scale)
    except Exception:  # noqa: BLE001 - a chart that does not render must not lose the report
        return None


def chart_image(chart: Any, caption: str, *, draw=None) -> Block:
    """The chart as an embedded image: Altair through vl-convert, else ``draw()`` (matplotlib PNG bytes),
    else a sentence saying why it is missing (its numbers are in the tables beside it)."""
    png = chart_png(chart) if chart is not None else None
    if png is None and draw is not None:
        try:
            png = draw()
        except ImportError:
            png = None
    if png:
        return Image(png, caption)
    return Paragraph(f"({caption}: not drawn; install vl-convert-python or matplotlib for charts.)")


def thumbnail_png(image, *, size: int = 96) -> bytes:
    """A uint8 (3, H, W) tensor as a PNG of ``size`` px (nearest neighbour: small pictures stay sharp)."""
    from PIL import Image as PILImage

    array = image.permute(1, 2, 0).contiguous().numpy()
    picture = PILImage.fromarray(array).resize((size, size), PILImage.NEAREST)
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG")
    return buffer.getvalue()


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def _cell(value: Any) -> str:
    if value is None or (isinstance(value, float) and value != value):
        return ""
    if isinstance(value, float):  # accuracies and losses to 4 decimals; seconds and counts to 1
        return f"{value:.1f}" if abs(value) >= 10 else f"{value:.4f}"
    return str(value)


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame as a Markdown table (numbers below 10 to 4 decimals, larger ones to 1; blanks for missing values)."""
    header = [str(c) for c in frame.columns]
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    for row in frame.itertuples(index=False):
        lines.append("| " + " | ".join(_cell(v).replace("|", "\\|").replace("\n", " ") for v in row) + " |")
    return "\n".join(lines)


def to_markdown(report: Report) -> str:
    """The report as Markdown; images are embedded as data URIs, so the file stands alone."""
    out = [f"# {report.title}", ""]
    if report.subtitle:
        out += [report.subtitle, ""]
    for section in report.sections:
        out += ["#" * section.level + " " + section.title, ""]
        for block in section.blocks:
            out += _markdown_block(block) + [""]
    return "\n".join(out).rstrip() + "\n"


def _markdown_block(block: Block) -> list[str]:
    if isinstance(block, Paragraph):
        return [block.text]
    if isinstance(block, Bullets):
        return [f"- {item}" for item in block.items]
    if isinstance(block, Table):
        return ([f"*{block.caption}*", ""] if block.caption else []) + [markdown_table(block.frame)]
    if isinstance(block, Code):
        return ([f"*{block.caption}*", ""] if block.caption else []) + ["```", block.text.rstrip(), "```"]
    if isinstance(block, Image):
        return [f"![{block.caption}]({_data_uri(block.png)})", "", f"*{block.caption}*"]
    lines = [f"*{block.caption}*", ""] if block.caption else []
    return lines + [" ".join(f"![{img.caption}]({_data_uri(img.png)})" for img in block.images), "",
                    "; ".join(f"{i + 1}: {img.caption}" for i, img in enumerate(block.images))]


_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 60rem; margin: 2rem auto; padding: 0 1rem; color: #222; }
table { border-collapse: collapse; margin: 0.5rem 0 1rem; font-size: 0.9rem; }
th, td { border: 1px solid #ccc; padding: 0.2rem 0.5rem; text-align: left; }
th { background: #f3f3f3; }
pre { background: #f6f6f6; padding: 0.6rem; overflow-x: auto; font-size: 0.8rem; }
figure { display: inline-block; margin: 0.3rem; text-align: center; font-size: 0.8rem; }
img { max-width: 100%; }
"""


def to_html(report: Report) -> str:
    """The report as one self-contained HTML page (styles inline, images as data URIs)."""
    esc = html.escape
    parts = ["<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">', f"<title>{esc(report.title)}</title>",
             f"<style>{_STYLE}</style></head><body>", f"<h1>{esc(report.title)}</h1>"]
    if report.subtitle:
        parts.append(f"<p>{esc(report.subtitle)}</p>")
    for section in report.sections:
        level = min(section.level, 6)
        parts.append(f"<h{level}>{esc(section.title)}</h{level}>")
        parts += [_html_block(block) for block in section.blocks]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _html_block(block: Block) -> str:
    esc = html.escape
    if isinstance(block, Paragraph):
        return f"<p>{esc(block.text)}</p>"
    if isinstance(block, Bullets):
        return "<ul>" + "".join(f"<li>{esc(item)}</li>" for item in block.items) + "</ul>"
    if isinstance(block, Table):
        head = "".join(f"<th>{esc(str(c))}</th>" for c in block.frame.columns)
        rows = "".join("<tr>" + "".join(f"<td>{esc(_cell(v))}</td>" for v in row) + "</tr>"
                       for row in block.frame.itertuples(index=False))
        caption = f"<caption>{esc(block.caption)}</caption>" if block.caption else ""
        return f"<table>{caption}<thead><tr>{head}</tr></thead><tbody>{rows}</tbody></table>"
    if isinstance(block, Code):
        caption = f"<p><em>{esc(block.caption)}</em></p>" if block.caption else ""
        return f"{caption}<pre>{esc(block.text)}</pre>"
    if isinstance(block, Image):
        return _figure(block)
    caption = f"<p><em>{esc(block.caption)}</em></p>" if block.caption else ""
    return caption + "<div>" + "".join(_figure(img) for img in block.images) + "</div>"


def _figure(image: Image) -> str:
    esc = html.escape
    return (f'<figure><img src="{_data_uri(image.png)}" alt="{esc(image.caption)}">'
            f"<figcaption>{esc(image.caption)}</figcaption></figure>")


def render(report: Report, fmt: str) -> str:
    """``to_markdown`` or ``to_html`` by ``fmt`` ("md" or "html")."""
    if fmt not in FORMATS:
        raise ValueError(f"format must be one of {', '.join(FORMATS)}; got {fmt!r}")
    return to_html(report) if fmt == "html" else to_markdown(report)


FORMATS = ("md", "html")


def frame(rows: Sequence[dict], columns: Sequence[str] | None = None) -> pd.DataFrame:
    """A DataFrame of ``rows`` (with ``columns`` in that order when given)."""
    return pd.DataFrame(list(rows), columns=list(columns) if columns else None)
