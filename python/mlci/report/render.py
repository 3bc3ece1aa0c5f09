"""Render the report view as report.html (one self-contained file) and report.md (GitHub/GitLab/Bitbucket).

HTML: jinja2 with autoescape on; the only unescaped values are SVG charts built (and escaped) by svg.py.
Markdown: every template expression passes through `md_escape` (the environment's `finalize`), so data such as a
class named `<script>` or `*bold*` stays literal text; only values wrapped by the `code`/`raw` helpers skip it.
Flavours differ in what the forge renders: GitHub and GitLab take `<details>` and hidden HTML comments,
Bitbucket Cloud renders no HTML at all, so it gets headings and a link-reference marker instead.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import jinja2

FLAVOURS = ("github", "gitlab", "bitbucket")
TEMPLATES = Path(__file__).parent / "templates"
MARKER_PREFIX = "mlci-report"

_MD_SPECIAL = re.compile(r"([\\`*_{}\[\]()<>#!|~&$])")  # `$`: GitHub and GitLab render $...$ as math
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")
_CODE_OK = re.compile(r"[\w:./@+=,\-▁▂▃▄▅▆▇█ ]*")


class Md(str):
    """Markdown that is already safe (formatted by this module, not taken from data)."""


def md_escape(value: Any) -> str:
    """Make any text inert in GitHub/GitLab/Bitbucket Markdown, including inside table cells.

    Backslash-escapes every character that can start markup (CommonMark allows escaping any ASCII punctuation),
    neutralises list/heading starts, keeps it on one line (a newline would end a table row), and breaks
    @mentions with a zero-width space so a class called "@team" pings nobody.
    """
    if isinstance(value, Md):
        return value
    if value is None:
        return ""
    text = _CONTROL.sub("", str(value)).replace("\r\n", " ").replace("\n", " ").replace("\r", " ").replace("\t", " ")
    text = _MD_SPECIAL.sub(r"\\\1", text)
    text = re.sub(r"^([-+])(?=\s|$)", r"\\\1", text)  # a list item
    text = re.sub(r"^(\d+)([.)])(?=\s|$)", r"\1\\\2", text)  # an ordered list item
    return text.replace("@", "@\u200b")


def md_code(value: Any) -> Md:
    """A code span for identifiers (digests, commits); anything unusual falls back to escaped text."""
    text = "" if value is None else str(value)
    if not text or not _CODE_OK.fullmatch(text):
        return Md(md_escape(text))
    return Md(f"`{text}`")


def md_url(value: Any) -> Md:
    text = str(value or "")
    if not re.fullmatch(r"https?://[^\s()<>]+", text):
        return Md("")
    return Md(text)


def marker(flavour: str, key: str) -> str:
    """The hidden marker that finds our comment again: an HTML comment, or for Bitbucket (which shows HTML
    literally) an empty link-reference definition, which every CommonMark renderer drops from the output."""
    safe_key = re.sub(r"[^A-Za-z0-9_.:/-]", "_", key)
    if flavour == "bitbucket":
        return f"[//]: # ({MARKER_PREFIX}:{safe_key})"
    return f"<!-- {MARKER_PREFIX}:{safe_key} -->"


_ICONS = {"PASS": "✅", "FAIL": "❌", "INCONCLUSIVE": "⚠️"}
_ARROWS = {"better": "🟢 ", "worse": "🔴 ", "same": ""}


def _md_env(flavour: str) -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=False,
        finalize=md_escape,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
        undefined=jinja2.StrictUndefined,
    )
    details = flavour in ("github", "gitlab")
    env.filters.update(code=md_code, raw=Md, url=md_url)
    env.globals.update(
        icon=lambda v: Md(_ICONS.get(str(v), "❔")),
        arrow=lambda d: Md(_ARROWS.get(str(d), "")),
        open_section=lambda title: Md(f"<details><summary>{_html_text(title)}</summary>\n"
                                      if details else f"#### {md_escape(title)}\n"),
        close_section=lambda: Md("\n</details>\n" if details else ""),
    )
    return env


def _html_text(text: str) -> str:
    """`<summary>` holds HTML, not Markdown: escape for HTML there."""
    return str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")


def render_markdown(view: dict[str, Any], flavour: str = "github", *, marker_key: str | None = None) -> str:
    if flavour not in FLAVOURS:
        raise ValueError(f"unknown flavour {flavour!r}")
    env = _md_env(flavour)
    text = env.get_template("report.md.j2").render(
        v=view, marker=Md(marker(flavour, marker_key or view["service"])), flavour=flavour)
    text = re.sub(r"\n{3,}", "\n\n", text)  # template whitespace, not content
    return text.strip() + "\n"


def render_html(view: dict[str, Any]) -> str:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        trim_blocks=True,
        lstrip_blocks=True,
        undefined=jinja2.StrictUndefined,
    )
    return env.get_template("report.html.j2").render(v=view)
