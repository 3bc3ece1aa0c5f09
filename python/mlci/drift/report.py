"""drift.json, drift.md and drift.html. Every value from data (feature names, categories, log keys) is escaped:
column names and category values come from production traffic and must not inject markup."""

from __future__ import annotations

import html
from pathlib import Path
from typing import Any

from ..fsutil import write_json_atomic, write_text_atomic

BAR_W, BAR_H, PAD = 560, 160, 28


def svg_histogram(name: str, hist: dict[str, Any]) -> str:
    """Reference (grey) vs current (orange) bin proportions as an inline SVG bar chart."""
    labels, ref, cur = hist["labels"], hist["ref"], hist["cur"]
    k = max(len(labels), 1)
    top = max([*ref, *cur, 1e-9])
    slot = (BAR_W - 2 * PAD) / k
    bar = max(slot / 2 - 1, 1)
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" width="{BAR_W}" height="{BAR_H + 40}" role="img" '
             f'aria-label="{html.escape(f"histogram of {name}: reference vs current", quote=True)}">',
             f'<line x1="{PAD}" y1="{BAR_H}" x2="{BAR_W - PAD}" y2="{BAR_H}" stroke="#333"/>']
    for i, (label, r, c) in enumerate(zip(labels, ref, cur, strict=True)):
        x = PAD + i * slot
        for j, (value, colour, who) in enumerate(((r, "#9e9e9e", "reference"), (c, "#e65100", "current"))):
            h = (BAR_H - 10) * value / top
            title = html.escape(f"{label}: {who} {value:.1%}")
            parts.append(f'<rect x="{x + j * bar:.1f}" y="{BAR_H - h:.1f}" width="{bar:.1f}" height="{h:.1f}" '
                         f'fill="{colour}"><title>{title}</title></rect>')
        if k <= 12:
            parts.append(f'<text x="{x + slot / 2:.1f}" y="{BAR_H + 14}" font-size="9" text-anchor="middle">'
                         f"{html.escape(_short(label))}</text>")
    parts.append(f'<text x="{PAD}" y="{BAR_H + 34}" font-size="11"><tspan fill="#9e9e9e">&#9632; reference</tspan> '
                 f'<tspan fill="#e65100">&#9632; current</tspan></text></svg>')
    return "".join(parts)


def _why(f: dict[str, Any]) -> str:
    return "; ".join([*f["reasons"], *([f["note"]] if f.get("note") else [])])


def _short(label: str, n: int = 14) -> str:
    return label if len(label) <= n else label[: n - 1] + "…"


def md_escape(text: Any) -> str:
    """Markdown-safe text for a table cell: HTML escaped, pipes and markdown punctuation neutralised."""
    out = html.escape(str(text), quote=False).replace("|", "\\|").replace("\n", " ")
    for ch in "`*_[]<>#":
        out = out.replace(ch, "\\" + ch)
    return out


def _fmt(v: Any, spec: str = ".3g") -> str:
    return "" if v is None else format(v, spec)


def render_markdown(rec: dict[str, Any]) -> str:
    logs = rec["logs"]
    lines = [f"# Drift check: {md_escape(rec['verdict'])}", "",
             md_escape(rec["summary"]), "",
             f"- logs: {md_escape(logs.get('prefix'))} {md_escape(logs.get('from'))}..{md_escape(logs.get('to'))}, "
             f"{logs.get('rows_used')} rows used of {logs.get('rows_read')} read",
             f"- reference: {md_escape(rec['reference'].get('uri'))} ({rec['reference'].get('rows')} rows)",
             f"- tests: {md_escape(rec['settings']['method'])}", ""]
    if rec.get("trigger"):
        lines += [f"- retraining: {md_escape(rec['trigger'])}", ""]
    lines += ["| feature | kind | test | statistic | p (Holm) | PSI | missing | out of range | drifted | why |",
              "|---|---|---|---|---|---|---|---|---|---|"]
    for f in sorted(rec["features"], key=lambda f: (not f["drifted"], f["p_adjusted"])):
        why = _why(f)
        lines.append(f"| {md_escape(f['name'])} | {f['kind']} | {f['test']} | {_fmt(f['statistic'])} | "
                     f"{_fmt(f['p_adjusted'], '.2g')} | {_fmt(f['psi'], '.3f')} | {f['missing_rate']:.1%} | "
                     f"{f['out_of_range']:.1%} | {'**yes**' if f['drifted'] else 'no'} | {md_escape(why)} |")
    for f in rec["features"]:
        if f["drifted"]:
            h = f["histogram"]
            lines += ["", f"### {md_escape(f['name'])}", "", "| bin | reference | current |", "|---|---|---|"]
            lines += [f"| {md_escape(lab)} | {r:.1%} | {c:.1%} |" for lab, r, c in zip(h["labels"], h["ref"], h["cur"], strict=True)]
    return "\n".join(lines) + "\n"


def render_html(rec: dict[str, Any]) -> str:
    e = html.escape
    logs = rec["logs"]
    rows = []
    for f in sorted(rec["features"], key=lambda f: (not f["drifted"], f["p_adjusted"])):
        why = _why(f)
        cls = ' class="drift"' if f["drifted"] else ""
        rows.append(f"<tr{cls}><td>{e(f['name'])}</td><td>{e(f['kind'])}</td><td>{e(f['test'])}</td>"
                    f"<td>{_fmt(f['statistic'])}</td><td>{_fmt(f['p_adjusted'], '.2g')}</td>"
                    f"<td>{_fmt(f['psi'], '.3f')}</td><td>{f['missing_rate']:.1%}</td><td>{f['out_of_range']:.1%}</td>"
                    f"<td>{'yes' if f['drifted'] else 'no'}</td><td>{e(why)}</td></tr>")
    charts = [f"<section><h3>{e(f['name'])}</h3><p>{e(_why(f))}</p>"
              f"{svg_histogram(f['name'], f['histogram'])}</section>" for f in rec["features"] if f["drifted"]]
    trigger = f"<p><b>Retraining:</b> {e(str(rec['trigger']))}</p>" if rec.get("trigger") else ""
    return f"""<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>Drift check: {e(rec['verdict'])}</title>
<style>body{{font-family:sans-serif;margin:2em;max-width:70em}}table{{border-collapse:collapse}}
td,th{{border:1px solid #ccc;padding:3px 6px;font-size:13px}}tr.drift{{background:#fff3e0}}</style></head>
<body><h1>Drift check: {e(rec['verdict'])}</h1><p>{e(rec['summary'])}</p>
<ul><li>logs: {e(str(logs.get('prefix')))} {e(str(logs.get('from')))}..{e(str(logs.get('to')))},
{logs.get('rows_used')} rows used of {logs.get('rows_read')} read</li>
<li>reference: {e(str(rec['reference'].get('uri')))} ({rec['reference'].get('rows')} rows)</li>
<li>tests: {e(rec['settings']['method'])}</li></ul>{trigger}
<table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th><th>p (Holm)</th><th>PSI</th>
<th>missing</th><th>out of range</th><th>drifted</th><th>why</th></tr>
{''.join(rows)}</table>
{''.join(charts)}
</body></html>
"""


def write_reports(rec: dict[str, Any], out: Path) -> dict[str, Path]:
    """drift.json, drift.md, drift.html under `out` (atomically)."""
    paths = {"json": out / "drift.json", "md": out / "drift.md", "html": out / "drift.html"}
    write_json_atomic(paths["json"], rec)
    write_text_atomic(paths["md"], render_markdown(rec))
    write_text_atomic(paths["html"], render_html(rec))
    return paths
