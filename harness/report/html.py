"""The report page: one self-contained HTML file, every plugin-provided string escaped.

Nothing here fetches anything: the CSS is inline, the figures are PNG files beside
the page referenced by relative path, and a Content-Security-Policy forbids
scripts and any network source, so a page with an unescaped string still could not
run it. Every string that reaches the page goes through :func:`esc` (text) or
pandas' ``to_html(escape=True)`` (tables); only the fixed markup below is trusted.
"""

from __future__ import annotations

import html
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pandas as pd

#: No scripts, no network: images from the report's own folder, inline styles.
CSP = "default-src 'none'; img-src 'self' data:; style-src 'unsafe-inline'"

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 0;
       color: #1b1f23; background: #fff; line-height: 1.45; }
main { max-width: 1180px; margin: 0 auto; padding: 1.5rem 2rem 4rem; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; }
h2 { font-size: 1.25rem; border-bottom: 2px solid #e1e4e8; padding-bottom: .25rem;
     margin-top: 2.5rem; }
h3 { font-size: 1.05rem; margin-top: 1.6rem; }
nav ul { columns: 3; font-size: .9rem; }
dl.meta { display: grid; grid-template-columns: max-content 1fr; gap: .15rem 1rem;
          font-size: .88rem; }
dl.meta dt { font-weight: 600; color: #444; }
dl.meta dd { margin: 0; overflow-wrap: anywhere; }
code, .mono { font-family: ui-monospace, SFMono-Regular, Menlo, monospace; font-size: .85em; }
figure { margin: 1rem 0 1.5rem; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .85rem; color: #444; margin-top: .3rem; }
table.data { border-collapse: collapse; font-size: .82rem; margin: .6rem 0 1rem; }
table.data th, table.data td { border: 1px solid #d0d7de; padding: .2rem .5rem;
                               text-align: right; vertical-align: top; }
table.data th { background: #f6f8fa; }
table.data td:first-child, table.data th:first-child { text-align: left; }
.note { font-size: .85rem; color: #555; }
.error { color: #9a1c1c; }
.badge { display: inline-block; padding: 0 .4rem; border-radius: .6rem; font-size: .75rem;
         background: #eef; color: #335; margin-left: .3rem; }
"""


def esc(value: Any) -> str:
    """Text for the page: every ``<``, ``>``, ``&`` and quote escaped."""
    return html.escape("" if value is None else str(value), quote=True)


@dataclass
class Section:
    """A heading and its blocks (blocks are already-safe HTML fragments)."""

    anchor: str
    title: str
    blocks: list[str] = field(default_factory=list)
    level: int = 2


def fmt_number(x: Any, digits: int = 4) -> str:
    """A compact number: 4 significant digits, thousands separated, NaN as a dash."""
    if x is None:
        return "–"
    try:
        v = float(x)
    except (TypeError, ValueError):
        return str(x)
    if math.isnan(v):
        return "–"
    if math.isinf(v):
        return "never" if v > 0 else "−∞"
    if abs(v) >= 10_000:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def table(frame: pd.DataFrame, formats: Mapping[str, Callable[[Any], str]] | None = None) -> str:
    """An escaped HTML table; numbers formatted, ``formats`` per column."""
    if frame.empty:
        return '<p class="note">(none)</p>'
    shown = frame.copy()
    formats = dict(formats or {})
    for col in shown.columns:
        fn = formats.get(col)
        if fn is None and pd.api.types.is_float_dtype(shown[col]):
            fn = fmt_number
        if fn is not None:
            shown[col] = [fn(v) for v in shown[col]]
    shown = shown.astype(object).where(shown.notna(), "–")
    return str(shown.to_html(escape=True, index=False, border=0, classes="data",
                             na_rep="–"))


def figure(src: str, title: str, caption: str = "") -> str:
    """An image beside the page, with its title and caption as escaped text."""
    return (f'<figure><img src="{esc(src)}" alt="{esc(title)}" loading="eager">'
            f"<figcaption><strong>{esc(title)}.</strong> {esc(caption)}</figcaption></figure>")


def paragraph(text: str, cls: str = "note") -> str:
    return f'<p class="{esc(cls)}">{esc(text)}</p>'


def meta_list(items: Iterable[tuple[str, Any]]) -> str:
    rows = "".join(f"<dt>{esc(k)}</dt><dd>{esc(v)}</dd>" for k, v in items)
    return f'<dl class="meta">{rows}</dl>'


def bullet_list(items: Sequence[str]) -> str:
    return "<ul>" + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


def page(title: str, intro: str, sections: Sequence[Section]) -> str:
    """The whole document. ``intro`` is safe HTML (built with the helpers above)."""
    nav = "".join(f'<li><a href="#{esc(s.anchor)}">{esc(s.title)}</a></li>'
                  for s in sections if s.level == 2)
    body = []
    for s in sections:
        tag = f"h{s.level}"
        body.append(f'<section id="{esc(s.anchor)}"><{tag}>{esc(s.title)}</{tag}>')
        body.extend(s.blocks)
        body.append("</section>")
    return (
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>{esc(title)}</title>\n<style>{CSS}</style>\n</head>\n<body><main>\n"
        f"<h1>{esc(title)}</h1>\n{intro}\n<nav><ul>{nav}</ul></nav>\n"
        + "\n".join(body)
        + "\n</main></body></html>\n"
    )
