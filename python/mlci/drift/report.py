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
    for ch in "`*_[]<>#$":  # `$`: GitHub renders $...$ as math
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


STYLE = """
:root { --fg:#1f2328; --muted:#57606a; --line:#d0d7de; --soft:#f6f8fa; --pass:#1a7f37; --pass-bg:#dafbe1;
        --fail:#cf222e; --fail-bg:#ffebe9; --inc:#9a6700; --inc-bg:#fff8c5; }
* { box-sizing: border-box; }
body { margin:0; background:#eef1f4; color:var(--fg); font:14px/1.5 -apple-system,BlinkMacSystemFont,"Segoe UI",Helvetica,Arial,sans-serif; }
main { max-width: 1120px; margin: 0 auto; padding: 24px 20px 48px; }
code { font-family: ui-monospace,SFMono-Regular,Menlo,Consolas,monospace; font-size: 12.5px; }
.banner { border-radius: 12px; padding: 22px 26px; color: #fff; box-shadow: 0 1px 3px rgba(31,35,40,.12); }
.banner.pass { background: linear-gradient(135deg,#1a7f37,#2da44e); }
.banner.fail { background: linear-gradient(135deg,#a40e26,#cf222e); }
.banner.inconclusive { background: linear-gradient(135deg,#9a6700,#bf8700); }
.banner .verdict { font-size: 26px; font-weight: 700; }
.card { background: #fff; border: 1px solid var(--line); border-radius: 12px; padding: 18px 20px; margin-top: 18px; }
h2 { font-size: 16px; margin: 0 0 12px; }
table { border-collapse: collapse; width: 100%; }
th { text-align: left; font-size: 12px; color: var(--muted); padding: 6px 10px; border-bottom: 1px solid var(--line); }
td { padding: 6px 10px; border-bottom: 1px solid var(--soft); font-size: 13px; vertical-align: top; }
tr.drift td:first-child { box-shadow: inset 3px 0 0 var(--fail); }
.pill { border-radius: 999px; padding: 1px 10px; font-size: 12px; font-weight: 600; }
.pill.fail { background: var(--fail-bg); color: var(--fail); }
.pill.pass { background: var(--pass-bg); color: var(--pass); }
.muted { color: var(--muted); font-size: 12.5px; }
"""
BANNER = {"DRIFT": "fail", "NO_DRIFT": "pass", "INCONCLUSIVE": "inconclusive"}


def render_html(rec: dict[str, Any]) -> str:
    """A self-contained page in the look of the accuracy report (banner, cards, pills)."""
    e = html.escape
    logs = rec["logs"]
    rows = []
    for f in sorted(rec["features"], key=lambda f: (not f["drifted"], f["p_adjusted"])):
        pill = '<span class="pill fail">drift</span>' if f["drifted"] else '<span class="pill pass">ok</span>'
        cls = ' class="drift"' if f["drifted"] else ""
        rows.append(f"<tr{cls}><td><code>{e(f['name'])}</code></td>"
                    f"<td>{e(f['kind'])}</td><td>{e(f['test'])}</td><td>{_fmt(f['statistic'])}</td>"
                    f"<td>{_fmt(f['p_adjusted'], '.2g')}</td><td>{_fmt(f['psi'], '.3f')}</td>"
                    f"<td>{f['missing_rate']:.1%}</td><td>{f['out_of_range']:.1%}</td><td>{pill}</td>"
                    f"<td class=\"muted\">{e(_why(f))}</td></tr>")
    charts = [f"<div class=\"card\"><h2><code>{e(f['name'])}</code></h2><p class=\"muted\">{e(_why(f))}</p>"
              f"{svg_histogram(f['name'], f['histogram'])}</div>" for f in rec["features"] if f["drifted"]]
    trigger = rec.get("trigger")
    trig = ""
    if trigger:
        trig = f"<p>Retraining: <code>{e(str(trigger.get('job')))}</code> " + (
            f"queued ({e(str(trigger.get('url')))})" if "queue_item" in trigger else f"NOT started: {e(str(trigger.get('error')))}"
        ) + "</p>"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>Drift: {e(rec['verdict'])}</title><style>{STYLE}</style></head>
<body><main>
<div class="banner {BANNER.get(rec['verdict'], 'inconclusive')}"><div class="verdict">{e(rec['verdict'].replace('_', ' '))}</div>
<div>{e(rec['summary'])}</div></div>
<div class="card"><h2>What was compared</h2>
<p>Logs <code>{e(str(logs.get('prefix')))}</code>, {e(str(logs.get('from')))} to {e(str(logs.get('to')))}:
{logs.get('rows_used')} rows used of {logs.get('rows_read')} read ({logs.get('objects')} objects).<br>
Reference <code>{e(str(rec['reference'].get('uri')))}</code> ({rec['reference'].get('rows')} rows).</p>
<p class="muted">{e(rec['settings']['method'])}; family-wise level {rec['settings']['alpha']:g}.</p>{trig}</div>
<div class="card"><h2>Features</h2><table><tr><th>feature</th><th>kind</th><th>test</th><th>statistic</th>
<th>p (Holm)</th><th>PSI</th><th>missing</th><th>out of range</th><th></th><th>why</th></tr>
{''.join(rows)}</table></div>
{''.join(charts)}
</main></body></html>
"""


def write_reports(rec: dict[str, Any], out: Path) -> dict[str, Path]:
    """drift.json, drift.md, drift.html under `out` (atomically)."""
    paths = {"json": out / "drift.json", "md": out / "drift.md", "html": out / "drift.html"}
    write_json_atomic(paths["json"], rec)
    write_text_atomic(paths["md"], render_markdown(rec))
    write_text_atomic(paths["html"], render_html(rec))
    return paths
