"""Rendering report.html / report.md from accuracy.json fixtures of passing, failing and inconclusive runs."""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

import pytest

from mlci.cli import main
from mlci.report import render, view
from mlci.report.junit import parse_junit

from ..conftest import ROOT, run_mlci
from . import chromium
from .samples import EVIL, accuracy_record, build_record, write_results

OUTPUT = ROOT / "tests" / "output" / "report"


# ---------------------------------------------------------------- the fixtures follow the documented contract


def _documented(name: str) -> Any:
    doc = (ROOT / "docs" / "ARCHITECTURE.md").read_text()
    block = re.search(rf"`{re.escape(name)}` \(`schema: [^\n]*\n```json\n(.*?)\n```", doc, re.S)
    assert block, f"{name} example missing from docs/ARCHITECTURE.md"
    text = re.sub(r"\s{2,}//[^\n]*", "", block.group(1))  # the doc annotates with // comments
    return json.loads(text)


def _shape(obj: Any, path: str = "") -> set[str]:
    """Key paths of a JSON value; per-class maps are keyed by label, so their keys are a wildcard."""
    out: set[str] = set()
    if isinstance(obj, dict):
        for k, v in obj.items():
            key = "*" if path.endswith("per_class") else k
            out.add(f"{path}.{key}")
            out |= _shape(v, f"{path}.{key}")
    elif isinstance(obj, list) and obj and isinstance(obj[0], dict):
        out |= _shape(obj[0], f"{path}[]")
    return out


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE"])
def test_samples_match_documented_schema(verdict):
    assert _shape(accuracy_record(verdict)) == _shape(_documented("accuracy.json"))
    assert _shape(build_record()) == _shape(_documented("build.json"))


# ---------------------------------------------------------------- CLI rendering


def mlci_inproc(*args: str, capsys: Any = None) -> tuple[int, str, str]:
    """The CLI in this process (a subprocess per render costs seconds of imports on a loaded machine)."""
    code = main(list(args))
    out, err = capsys.readouterr() if capsys is not None else ("", "")
    return code, out, err


def _render(tmp_path: Path, record: dict[str, Any], *extra: str, flavour: str = "github") -> tuple[str, str]:
    res = write_results(tmp_path / "res", record)
    code = main(["report", "render", "--results", str(res), "--no-history", "--flavour", flavour, *extra])
    assert code == 0
    out = res / "report"
    return (out / "report.html").read_text(), (out / "report.md").read_text()


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE"])
def test_render_each_verdict(tmp_path, verdict):
    rec = accuracy_record(verdict)
    page, md = _render(tmp_path, rec)
    # banner, gate table, per class, confusion, tests, provenance
    assert f'<header class="banner {verdict.lower()}">' in page
    assert page.count('class="chart bar"') == 2  # one interval bar per gate
    assert 'class="chart confusion"' in page
    gate = rec["gates"][0]
    assert f"{gate['estimate'] * 100:.1f}%" in page and "≥ 90.0%" in page
    assert f"{gate['interval'][0] * 100:.1f}%, {gate['interval'][1] * 100:.1f}%" in page
    assert "11 / 12 passed" not in page and "10 / 12 passed" in page  # unit: 12 tests, 1 failed, 1 skipped
    assert "4 / 4 passed" in page
    assert rec["dataset"]["sha256"] in page and rec["model"]["code_digest"] in page and "123456" in page
    assert build_record()["image"]["digest"] in page
    # the markdown says the same
    assert md.startswith("<!-- mlci-report:digits -->")
    assert f"{verdict} · digits" in md
    assert f"{gate['estimate'] * 100:.1f}%" in md and "10/12 passed" in md and "4/4 passed" in md
    if verdict == "PASS":
        assert "all 2 gates passed" in page and "700 (47%)" in page
    elif verdict == "FAIL":
        assert "1 of 2 gates failed" in page and "the model is worse than the gate" in md
    else:
        assert "not enough evidence yet" in page and r"max\_samples 3000 reached" in md


def test_data_is_escaped_everywhere(tmp_path):
    rec = accuracy_record("FAIL", branch="feat/<img src=x onerror=alert(2)>")
    rec["suite"] = "smoke"
    rec["errors"].append({"id": "<b>7</b>", "error": "| broken | table\nnew line **bold** [link](http://x) @team"})
    rec["errors"].append({"id": "8", "error": "ValueError: costs $x^2$ and $$\\int f$$"})
    page, md = _render(tmp_path, rec)
    # HTML: no markup from data survives; the report has no script at all
    assert "<script" not in page.lower() and "<img" not in page.lower() and "<b>7" not in page
    assert html.escape(EVIL) in page or "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    # Markdown: the evil class name is inert, table rows stay intact, no mention, no link
    assert "<script>" not in md and "<img" not in md
    assert r"\<script\>alert\(1\)\</script\>" in md
    assert "[link](http" not in md and "**bold**" not in md and "@team" not in md
    assert r"costs \$x^2\$ and \$\$" in md and "$x^2$" not in md.replace(r"\$", "")  # GitHub renders $...$ as math
    for line in md.splitlines():
        if line.startswith("|"):
            cells = re.split(r"(?<!\\)\|", line)
            header = next(ln for ln in md.splitlines() if ln.startswith("|") and ln.count("|") == line.count("|"))
            assert len(cells) == len(re.split(r"(?<!\\)\|", header)), line


def test_markdown_escaper():
    e = render.md_escape
    assert e("a|b") == r"a\|b"
    assert e("<script>") == r"\<script\>"
    assert e("*x* _y_ `z` [l](u) ![i](u) ~s~ #1 &amp;") == r"\*x\* \_y\_ \`z\` \[l\]\(u\) \!\[i\]\(u\) \~s\~ \#1 \&amp;"
    assert e("- item") == r"\- item" and e("1. one") == r"1\. one" and e("95.3%") == "95.3%"
    assert e("two\nlines\r\tx") == "two lines x"
    assert e("@team") == "@\u200bteam"
    assert e("$x$ and $$y$$") == r"\$x\$ and \$\$y\$\$"
    assert e(None) == ""
    assert render.md_code("sha256:abc") == "`sha256:abc`"
    assert render.md_code("a`b|c") == r"a\`b\|c"  # not an identifier: escaped text, no broken code span


@pytest.mark.parametrize("flavour", render.FLAVOURS)
def test_markdown_flavours(tmp_path, flavour):
    _, md = _render(tmp_path, accuracy_record("PASS"), flavour=flavour)
    if flavour == "bitbucket":
        assert md.startswith("[//]: # (mlci-report:digits)")
        assert "<details>" not in md and "<!--" not in md and "#### Per-class" in md
    else:
        assert md.startswith("<!-- mlci-report:digits -->")
        assert "<details><summary>Per-class precision / recall / F1 (10 classes)</summary>" in md
        assert md.count("<details>") == md.count("</details>")
    assert "| Gate | Estimate | Interval | Threshold | Verdict rests on | Samples used | Saved | Verdict |" in md


def test_baseline_file_gives_deltas(tmp_path):
    base = accuracy_record("PASS", branch="main", commit="b" * 40, accuracy=0.94)
    base["metrics"]["per_class"]["0"]["f1"] = 0.90
    (tmp_path / "base.json").write_text(json.dumps(base))
    page, md = _render(tmp_path, accuracy_record("PASS", accuracy=0.9525), "--baseline", str(tmp_path / "base.json"))
    assert "+1.25 pp" in page and "main" in page and "bbbbbbb" in page
    assert r"🟢 \+1.25 pp" in md or "🟢 +1.25 pp" in md
    assert "+8.11 pp" in page  # per-class F1 delta of class 0: 0.9811 vs 0.90


def test_no_baseline_is_said_plainly(tmp_path):
    page, md = _render(tmp_path, accuracy_record("PASS"))
    assert "No baseline" in page and "No baseline yet" in md


def test_render_errors_are_user_errors(tmp_path, capsys):
    code, _, err = mlci_inproc("report", "render", "--results", str(tmp_path / "nope"), capsys=capsys)
    assert code == 2 and "does not exist" in err
    (tmp_path / "empty").mkdir()
    code, _, err = mlci_inproc("report", "render", "--results", str(tmp_path / "empty"), capsys=capsys)
    assert code == 2 and "no accuracy.json" in err
    bad = tmp_path / "bad" / "accuracy" / "smoke"
    bad.mkdir(parents=True)
    (bad / "accuracy.json").write_text('{"schema": "mlci.accuracy/1", "verd')
    # the real process once: exit code 2 and a message, never a traceback
    proc = run_mlci("report", "render", "--results", str(tmp_path / "bad"), cwd=tmp_path)
    assert proc.returncode == 2 and "not valid JSON" in proc.stderr and "Traceback" not in proc.stderr


def test_junit_counts(tmp_path):
    p = tmp_path / "unit.xml"
    p.write_text('<testsuites><testsuite tests="3" failures="1" errors="1" skipped="0" time="2.5">'
                 '<testcase classname="a" name="t1"><failure message="m1"/></testcase>'
                 '<testcase classname="a" name="t2"><error message="m2"/></testcase></testsuite>'
                 '<testsuite tests="2" failures="0" errors="0" skipped="1"/></testsuites>')
    s = parse_junit(p)
    assert (s.tests, s.failures, s.errors, s.skipped, s.passed) == (5, 1, 1, 1, 2)
    assert s.failed == [("a.t1", "m1"), ("a.t2", "m2")] and not s.ok
    (tmp_path / "broken.xml").write_text("<testsuite")
    assert parse_junit(tmp_path / "broken.xml").problem


def test_sparse_and_regression_records_render():
    """Optional blocks may be null (no image, no classes, a regression metric): the report still renders."""
    minimal = {"schema": "mlci.accuracy/1", "service": "svc", "suite": "s", "verdict": "PASS"}
    regression = {"schema": "mlci.accuracy/1", "service": "svc", "suite": "r", "verdict": "FAIL",
                  "gates": [{"metric": "mae", "kind": "absolute", "threshold": 2.0, "direction": "<=",
                             "estimate": 2.5, "interval": [2.2, 2.8], "verdict": "FAIL"}],
                  "metrics": {"mae": 2.5, "rmse": 3.1, "n": 100, "confusion": None, "per_class": None},
                  "git": None, "image": None, "dataset": None, "model": None, "sample": None, "errors": None}
    base = {"schema": "mlci.accuracy/1", "metrics": {"mae": 2.0}, "gates": [{"metric": "mae", "estimate": 2.1}]}
    v = view.build_view(view.Inputs(records=[minimal, regression], baselines={"r": base}))
    page = render.render_html(v)
    md = render.render_markdown(v, "gitlab")
    assert v["verdict"] == "FAIL" and "mae 2.5 (needs ≤ 2)" in page and "no gates in this record" in page
    assert "no confusion matrix" in page and "| mae | 2.1 | 2.5 | 🔴 +0.4 |" in md


def test_multiple_suites_worst_verdict_wins():
    v = view.build_view(view.Inputs(records=[accuracy_record("PASS"), accuracy_record("INCONCLUSIVE", suite="full")]))
    assert v["verdict"] == "INCONCLUSIVE" and v["headline"] == "1 suites passed, 1 suite inconclusive".replace(
        "1 suites", "1 suite")
    assert [s["name"] for s in v["suites"]] == ["full", "smoke"]
    page = render.render_html(v)
    assert page.count('class="chip"') == 2 and 'href="#suite-full"' in page and 'id="suite-full"' in page


# ---------------------------------------------------------------- in a real browser


def test_console_detector_catches_errors(tmp_path):
    """The console check below can fail: a page with a script error is caught."""
    bad = tmp_path / "bad.html"
    bad.write_text("<html><body><script>undefinedFunction()</script></body></html>")
    page = chromium.load(bad)
    assert any("undefinedFunction" in line for line in page.console)


@pytest.mark.parametrize("verdict", ["PASS", "FAIL", "INCONCLUSIVE"])
def test_report_renders_in_chromium(tmp_path, verdict):
    rec = accuracy_record(verdict)
    base = accuracy_record("PASS", branch="main", commit="c" * 40, accuracy=0.94)
    pointers = [{"schema": "mlci.history-pointer/1", "commit": f"{i:07x}", "verdict": "FAIL" if i == 4 else "PASS",
                 "started": f"2026-11-{10 + i}T10:00:00Z",
                 "gates": [{"metric": "accuracy", "class": None, "estimate": 0.92 + 0.003 * i - (0.025 if i == 4 else 0)}]}
                for i in range(1, 10)]
    v = view.build_view(view.Inputs(records=[rec], build=build_record(), baselines={"smoke": base},
                                    baseline_sources={"smoke": "history store"}, trends={"smoke": pointers},
                                    trend_branch="main", junit=[]))
    out = tmp_path / f"report-{verdict.lower()}.html"
    out.write_text(render.render_html(v))
    text = out.read_text()
    assert "<link" not in text and " src=" not in text and "url(" not in text and "@import" not in text
    page = chromium.load(out, OUTPUT / f"report-{verdict.lower()}.png")
    assert page.console == [], page.console
    dom = page.dom
    assert re.search(r'<svg[^>]*class="chart confusion"', dom) and re.search(r'<svg[^>]*class="chart trend"', dom)
    assert len(re.findall(r"<rect ", dom)) >= 100  # 10x10 heatmap cells survived parsing
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in dom and "<script" not in dom


@pytest.mark.parametrize("flavour", render.FLAVOURS)
def test_markdown_parses_as_intended_commonmark(flavour):
    """Parse report.md like a forge does (CommonMark + GFM tables): data never becomes HTML, links or extra cells."""
    from markdown_it import MarkdownIt

    rec = accuracy_record("FAIL", branch="x/<b>y</b>")
    rec["errors"].append({"id": "[a](http://evil)", "error": "| cell | **bold** <img src=x> @team\n# heading"})
    v = view.build_view(view.Inputs(records=[rec], baselines={"smoke": accuracy_record("PASS", branch="main")},
                                    baseline_sources={"smoke": "file"}, junit=[]))
    md = render.render_markdown(v, flavour)
    parser = MarkdownIt("commonmark").enable(["table", "strikethrough"])
    tokens = parser.parse(md)
    allowed_html = re.compile(r"\s*(<!-- mlci-report:[\w.:/-]+ -->|<details><summary>[^<>]*</summary>|</details>)\s*")
    flat = [t for tok in tokens for t in ([tok, *(tok.children or [])])]
    for t in flat:
        if t.type in ("html_inline", "html_block"):
            assert allowed_html.fullmatch(t.content), t.content
            assert flavour != "bitbucket"
        assert t.type not in ("link_open", "image"), t
    texts = " ".join(t.content for t in flat if t.type == "text")
    assert EVIL in texts and "**bold**" in texts and "<img src=x>" in texts and "[a](http://evil)" in texts
    # every table row has as many cells as its header
    rows: list[int] = []
    for tok in tokens:
        if tok.type == "tr_open":
            rows.append(0)
        elif tok.type in ("th_open", "td_open"):
            rows[-1] += 1
        elif tok.type == "table_close":
            assert rows and len(set(rows)) == 1, rows
            rows = []
    html_out = parser.render(md)
    assert "<h1" not in html_out and "<script" not in html_out
    if flavour == "bitbucket":
        assert "mlci-report" not in html_out  # the link-reference marker is invisible


def test_svg_charts_are_well_formed_and_escape_labels():
    import xml.etree.ElementTree as ET

    from mlci.report import svg

    labels = [f"c{i}" for i in range(59)] + [EVIL]
    matrix = [[(50 if i == j else (i * j) % 3) for j in range(60)] for i in range(60)]
    big = svg.confusion_matrix(labels, matrix)
    root = ET.fromstring(str(big))
    assert root.tag.endswith("svg") and "showing the 40 largest of 60 classes" in str(big)
    assert len(root.findall(".//{http://www.w3.org/2000/svg}rect")) == 40 * 40
    small = svg.confusion_matrix(["a", EVIL], [[3, 1], [0, 4]])
    assert "&lt;script&gt;" in str(small) and "<script>" not in str(small)
    ET.fromstring(str(small))
    assert str(svg.confusion_matrix(["a"], [[1, 2]])) == ""  # malformed matrix: no chart, no crash
    points = [svg.TrendPoint(f"<c{i}>", 0.9 + i / 100, "PASS", f"tip <{i}>") for i in range(30)]
    points.append(svg.TrendPoint("x", 0.85, "FAIL", "now", current=True))
    trend = svg.trend(points, metric="accuracy", threshold=0.9, threshold_label="gate ≥ 90.0%")
    ET.fromstring(str(trend))
    assert "&lt;c0&gt;" in str(trend) and "this build" in str(trend)
    assert str(svg.trend([], metric="accuracy")) == ""
    bar = svg.interval_bar(metric="accuracy", estimate=-0.14, interval=[-0.25, -0.04], threshold=-0.03, verdict="FAIL")
    ET.fromstring(str(bar))
    assert svg.sparkline([0.1, 0.5, 0.9]) == "▁▅█" and svg.sparkline([]) == ""


def test_provisional_shard_record_is_flagged(tmp_path):
    rec = accuracy_record("PASS")
    rec["provisional"] = True
    page, _ = _render(tmp_path, rec)
    assert "one shard&#39;s provisional record" in page or "one shard's provisional record" in page
