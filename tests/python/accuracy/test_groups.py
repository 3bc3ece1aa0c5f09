"""Grouped samples through the gate evaluator (accuracy/grouping.py): whole groups drawn and sharded, looks at group
boundaries, the cluster betting test's verdict where the per-sample test's differs, merge order = unsharded order.
The real CLI, workers and S3: test_groups_e2e.py; false-PASS rates by simulation: tests/benchmarks/bench_groups.py."""

from __future__ import annotations

import numpy as np
import pytest

from mlci.accuracy import grouping
from mlci.accuracy.gates import FAIL, INCONCLUSIVE, PASS, Evaluator, plan_gates
from mlci.accuracy.grouping import Groups, complete, rows_by_group
from mlci.accuracy.sampling import group_order
from mlci.accuracy.stats.cluster import ClusterBettingGate, Clustered


def groups_of(sizes: list[int], codes: np.ndarray | None = None, seed: int = 1) -> Groups:
    labels = np.asarray([f"g{j}" for j, m in enumerate(sizes) for _ in range(m)], dtype=object)
    codes = np.zeros(len(labels), dtype=np.int64) if codes is None else codes
    order, bounds = group_order(codes, labels, seed)
    return Groups("doc", labels, order, bounds, len(sizes), max(sizes), float(np.mean(sizes)))


def plans(gates: list[dict], g: Groups | None, drawn: int, sequential: bool = True) -> list[dict]:
    full = [{"kind": "absolute", "min": None, "max": None, "margin": 0.02, "alpha": 0.05, "beta": 0.1, "class": None,
             **x} for x in gates]
    ps = plan_gates(full, sequential=sequential, available=drawn, cap=drawn, prevalence={"0": 0.5, "1": 0.5},
                    where="t", batch_size=50)
    if g is not None:
        grouping.regroup(ps, g, sequential=sequential, drawn=drawn, where="t")
    return ps


def run(ps: list[dict], labels: list[str], preds: list[str], groups: list[str] | None, batch: int = 50,
        base: list[str] | None = None) -> Evaluator:
    ev = Evaluator(ps, "classification", "count_wrong", drawn=len(labels), seed=3, groups=groups)
    for lo in range(0, len(labels), batch):
        hi = min(lo + batch, len(labels))
        if ev.feed(labels[lo:hi], preds[lo:hi], [None] * (hi - lo), [1.0] * (hi - lo),
                   base[lo:hi] if base is not None else None):
            break
    if ev.verdict is None:
        ev.finish()
    return ev


def test_whole_groups_are_drawn_sharded_and_looked_at_only_when_complete() -> None:
    g = groups_of([3, 1, 4, 2, 5, 2, 3, 1, 2, 7])
    assert sorted(g.order.tolist()) == list(range(30))
    ends = g.ends.tolist()
    drawn = g.drawn(20, "t")
    assert drawn in ends and drawn <= 20 and all(e > 20 for e in ends if e > drawn)
    shards = [g.shard_positions(drawn, (k, 3)) for k in (1, 2, 3)]
    assert sorted(np.concatenate(shards).tolist()) == list(range(drawn))
    for s in shards:  # no group split across shards
        assert all(set(g.at(s)).isdisjoint(g.at(o)) for o in shards if o is not s)
    labels = g.at(np.arange(drawn))
    assert complete(labels, drawn) == drawn
    for n in range(1, drawn):
        c = complete(labels, n)
        assert c <= n and (c == 0 or labels[c] != labels[c - 1])
    assert [len(r) for r in rows_by_group(labels)] == [labels.count(x) for x in dict.fromkeys(labels)]


def test_a_first_group_larger_than_max_samples_is_a_clear_error() -> None:
    from mlci.errors import UserError

    g = groups_of([40, 40])
    with pytest.raises(UserError, match="smaller than the first drawn group") as exc:
        g.drawn(10, "accuracy.suites.s.max_samples")
    assert exc.value.where == "accuracy.suites.s.max_samples"


def correlated_run(rng: np.random.Generator, groups: int, size: int, good_share: float):
    """Each group is all right or all wrong (ICC 1): `good_share` of the groups right."""
    right = rng.random(groups) < good_share
    labels = ["1"] * (groups * size)
    preds = ["1" if right[j] else "0" for j in range(groups) for _ in range(size)]
    return labels, preds, [f"g{j}" for j in range(groups) for _ in range(size)]


def test_groups_of_copies_do_not_pass_where_counting_copies_as_samples_would() -> None:
    # 300 documents x 10 augmented copies, each document all right or all wrong, 91.3% of documents right: the
    # per-sample SPRT sees 3,000 "independent" trials at 0.913 and PASSes min 0.88; the group test sees 300
    rng = np.random.default_rng(5)
    labels, preds, groups = correlated_run(rng, 300, 10, 0.92)
    naive = run(plans([{"metric": "accuracy", "min": 0.88, "margin": 0.03}], None, 3000), labels, preds, None)
    g = groups_of([10] * 300)
    grouped = run(plans([{"metric": "accuracy", "min": 0.88, "margin": 0.03}], g, 3000), labels, preds, groups)
    assert naive.verdict == PASS
    assert grouped.verdict == INCONCLUSIVE
    rec = grouped.gate_records()[0]
    assert rec["method"] == "cluster-betting" and rec["groups"] == 300 and rec["validity"].startswith("anytime")
    assert rec["interval"][0] < 0.88 < rec["interval"][1] and "300 groups" in rec["message"]
    # clearly good and clearly bad models are still decided, sequentially, on whole groups
    good = run(plans([{"metric": "accuracy", "min": 0.7, "margin": 0.1}], g, 3000), *correlated_run(rng, 300, 10, 0.97))
    assert good.verdict == PASS and good.states[0].used % 10 == 0 and good.states[0].used < 3000
    bad = run(plans([{"metric": "accuracy", "min": 0.9, "margin": 0.05}], g, 3000), *correlated_run(rng, 300, 10, 0.6))
    assert bad.verdict == FAIL and bad.states[0].used % 10 == 0


def test_fixed_look_gates_use_the_cluster_bootstrap_and_change_gates_pair_groups() -> None:
    rng = np.random.default_rng(9)
    labels, preds, groups = correlated_run(rng, 120, 5, 0.95)
    labels = [str(j % 2) for j in range(600)]  # two classes for F1
    preds = [y if rng.random() < 0.9 else str(1 - int(y)) for y in labels]
    g = groups_of([5] * 120)
    ps = plans([{"metric": "macro_f1", "min": 0.7, "margin": 0.1}], g, 600)
    ev = run(ps, labels, preds, groups)
    rec = ev.gate_records()[0]
    assert ps[0]["method"] == "cluster-bootstrap" and ev.verdict == PASS and rec["groups"] == 120
    assert "fixed look" in rec["validity"] and rec["interval"][0] < rec["estimate"] < rec["interval"][1]
    with pytest.raises(Exception, match="at least 100 groups"):
        plans([{"metric": "macro_f1", "min": 0.7, "margin": 0.1}], groups_of([30] * 20), 600)
    # a change gate: candidate and baseline differ on a few groups, each winning some
    flip = {f"g{j}" for j in range(0, 120, 17)}  # 8 groups: the baseline is wrong on the first 3, the candidate on 5
    base = [("0" if y == "1" else "1") if gr in flip and int(gr[1:]) < 40 else y for y, gr in zip(labels, groups,
                                                                                                    strict=True)]
    cand = [("0" if y == "1" else "1") if gr in flip and int(gr[1:]) >= 40 else y for y, gr in zip(labels, groups,
                                                                                                     strict=True)]
    ch = plans([{"metric": "accuracy", "kind": "change", "margin": 0.08, "discordance": 0.05}], g, 600)
    ev = run(ch, labels, cand, groups, base=base)
    rec = ev.gate_records()[0]
    assert ch[0]["method"] == "cluster-paired-bootstrap" and rec["groups"] == 120 and ev.verdict == PASS
    assert rec["estimate"] == pytest.approx(-10 / 600) and rec["interval"][0] > -0.08
    far = {f"g{j}" for j in range(0, 120, 5)}  # a fifth of the groups wrong: clearly worse
    cand = [("0" if y == "1" else "1") if gr in far else y for y, gr in zip(labels, groups, strict=True)]
    assert run(ch, labels, cand, groups, base=labels).verdict == FAIL


def test_the_cluster_betting_test_equals_the_per_sample_betting_test_on_groups_of_one() -> None:
    from mlci.accuracy.stats.betting import design_bets, log_capital

    x = (np.random.default_rng(2).random(400) < 0.93).astype(float)
    gate = ClusterBettingGate(0.9, 0.03, 0.05, 0.1, max_size=1, mean_size=1)
    c = Clustered(x, np.ones_like(x))
    ref = log_capital(x, 0.9, design_bets(x, 0.03), +1)
    assert np.allclose(gate.log_pass(c.totals, c.sizes), ref)


def test_the_report_shows_the_groups_escaped_in_html_and_markdown(tmp_path) -> None:
    from mlci.cli import main
    from tests.python.report.samples import accuracy_record, write_results

    rec = accuracy_record("INCONCLUSIVE")
    rec["sample"]["groups"] = {"field": "doc_<b>*id*</b>", "drawn": 150, "used": 150, "samples": 3000,
                               "available": 150, "largest": 20, "design_effect": 14.26}
    res = write_results(tmp_path / "res", rec)
    assert main(["report", "render", "--results", str(res), "--no-history", "--flavour", "github"]) == 0
    page = (res / "report" / "report.html").read_text()
    md = (res / "report" / "report.md").read_text()
    assert "150 groups by doc_&lt;b&gt;*id*&lt;/b&gt; of 150 drawn (design effect 14.3)" in page
    assert "<b>*id*" not in page and "<b>" not in md
    assert r"150 groups by doc\_" in md and "design effect 14" in md


def test_the_group_column_is_read_from_every_format_and_is_not_an_input(tmp_path) -> None:
    import json

    import pyarrow as pa
    import pyarrow.parquet as pq

    from mlci.accuracy import data
    from mlci.errors import UserError

    rows = [{"a": i, "b": 2 * i, "y": i % 2, "doc": f"d{i // 3}"} for i in range(9)]
    (tmp_path / "t.csv").write_text("a,b,y,doc\n" + "".join(f"{r['a']},{r['b']},{r['y']},{r['doc']}\n" for r in rows))
    (tmp_path / "t.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    pq.write_table(pa.table({k: [r[k] for r in rows] for k in rows[0]}), tmp_path / "t.parquet")
    np.savez(tmp_path / "t.npz", x=np.arange(18).reshape(9, 2), y=np.arange(9) % 2,
             doc=np.asarray([r["doc"] for r in rows]))
    folder = tmp_path / "docs"
    folder.mkdir()
    for i in range(9):
        (folder / f"{i}.txt").write_text(f"page {i}")
    (folder / "labels.csv").write_text("file,label,doc\n" + "".join(f"{i}.txt,{i % 2},d{i // 3}\n" for i in range(9)))
    want = [r["doc"] for r in rows]
    for path, opts in ((tmp_path / "t.csv", {"inputs": "*"}), (tmp_path / "t.jsonl", {"inputs": "*"}),
                       (tmp_path / "t.parquet", {"inputs": "*"}), (tmp_path / "t.npz", {}),
                       (folder, {"fmt": "folder", "label": "label", "read": "text"})):
        ds = data.load(path, group="doc", **opts)
        assert grouping.read_column(ds, "doc", "w").tolist() == want, path
        assert "doc" not in ds.input_names
        with pytest.raises(UserError, match="group field 'patient' missing") as exc:
            grouping.read_column(ds, "patient", "artifacts.data.t.group")
        assert exc.value.where == "artifacts.data.t.group" and "doc" in (exc.value.hint or "")
        ds.close()
    (tmp_path / "gap.csv").write_text("a,y,doc\n1,0,d1\n2,1,\n")
    with pytest.raises(UserError, match="1 row\\(s\\) have no group"):
        grouping.read_column(data.load(tmp_path / "gap.csv", inputs="a"), "doc", "w")


def test_false_pass_at_the_threshold_stays_below_alpha_with_strongly_correlated_groups() -> None:
    """A small Monte-Carlo (tests/benchmarks/bench_groups.py runs the full table): ICC 0.5, 300 groups of 10,
    true accuracy exactly at min: the cluster betting test PASSes at most alpha of the runs (looking at every
    group); the per-sample SPRT, fed the same outcomes, far more often."""
    from scipy.stats import beta as beta_dist

    from mlci.accuracy.stats.sprt import Sprt

    rng = np.random.default_rng(0)
    runs, k, m, p, icc = 1000, 300, 10, 0.9, 0.5
    gp = beta_dist.rvs(p * (1 - icc) / icc, (1 - p) * (1 - icc) / icc, size=(runs, k), random_state=rng)
    totals = rng.binomial(m, gp).astype(float)
    gate = ClusterBettingGate(0.9, 0.03, 0.05, 0.1, max_size=m, mean_size=m)
    lp = gate.log_pass(totals, np.full_like(totals, m))
    cluster_rate = float((lp.max(axis=1) >= np.log(1 / 0.05)).mean())  # any crossing: an upper bound on PASS
    sprt = Sprt(0.9, 0.93, 0.05, 0.1)
    looks = np.arange(5, k + 1, 5)  # every 50 samples
    llr = sprt.llr(np.cumsum(totals, axis=1)[:, looks - 1], looks * m)
    up, down = llr >= sprt.upper, llr <= sprt.lower
    first_up = np.where(up.any(1), up.argmax(1), 10 ** 6)
    first_down = np.where(down.any(1), down.argmax(1), 10 ** 6)
    naive_rate = float((first_up < first_down).mean())
    se = np.sqrt(0.05 * 0.95 / runs)
    assert cluster_rate <= 0.05 + 2 * se
    assert naive_rate > 0.15


def test_errors_excluded_and_bounded_errors_are_judged_on_groups() -> None:
    g = groups_of([4] * 200)
    groups = [f"g{j}" for j in range(200) for _ in range(4)]
    labels = ["1"] * 800
    preds = ["1"] * 800
    errors: list[str | None] = [None] * 800
    for j in range(0, 200, 10):  # every tenth document fails to predict: the verdict rests on them
        errors[4 * j:4 * j + 4] = ["boom"] * 4
    ps = plans([{"metric": "accuracy", "min": 0.85, "margin": 0.05}], g, 800)
    ev = Evaluator(ps, "classification", "exclude", drawn=800, seed=3, groups=groups, max_errors=800)
    for lo in range(0, 800, 50):
        if ev.feed(labels[lo:lo + 50], preds[lo:lo + 50], errors[lo:lo + 50], [1.0] * 50):
            break
    ev.finish()
    rec = ev.gate_records()[0]
    # counted wrong, 10% of the documents fail: 0.90 is not clearly above 0.85 on 200 groups; counted right it is
    assert ev.verdict == INCONCLUSIVE and rec["estimate"] == 1.0
    # a regression gate: mae with a bound, lower is better, the copies of a document share their error
    rng = np.random.default_rng(4)
    err = np.repeat(rng.uniform(0, 0.5, 200), 4)
    y = rng.normal(size=800)
    full = [{"kind": "absolute", "metric": "mae", "min": None, "max": 0.6, "margin": 0.2, "bound": 1.0,
             "alpha": 0.05, "beta": 0.2, "class": None}]
    mp = plan_gates(full, sequential=True, available=800, cap=800, prevalence={"all": 1.0}, where="t", batch_size=50)
    grouping.regroup(mp, g, sequential=True, drawn=800, where="t")
    ev = Evaluator(mp, "regression", "count_wrong", drawn=800, seed=3, groups=groups)
    for lo in range(0, 800, 50):
        if ev.feed(y[lo:lo + 50].tolist(), (y + err)[lo:lo + 50].tolist(), [None] * 50, [1.0] * 50):
            break
    ev.finish()
    rec = ev.gate_records()[0]
    assert mp[0]["method"] == "cluster-betting" and ev.verdict == PASS  # true mae 0.25 < 0.6
    assert rec["estimate"] == pytest.approx(float(np.mean(err[:rec["samples_used"]])))
    assert rec["interval"][1] <= 0.6 and rec["bound"]["side"] == "upper"


def test_class_gates_count_only_their_trials_in_each_group() -> None:
    rng = np.random.default_rng(6)
    g = groups_of([6] * 150)
    groups = [f"g{j}" for j in range(150) for _ in range(6)]
    labels = [str(int(v)) for v in rng.integers(0, 2, 900)]
    preds = [y if rng.random() < 0.95 else str(1 - int(y)) for y in labels]
    ps = plans([{"metric": "recall", "class": "1", "min": 0.7, "margin": 0.1},
                {"metric": "precision", "class": "0", "min": 0.7, "margin": 0.1}], g, 900)
    ev = run(ps, labels, preds, groups)
    recall, precision = ev.gate_records()
    n = recall["samples_used"]
    ones = [i for i in range(n) if labels[i] == "1"]
    assert recall["trials"] == len(ones) and recall["estimate"] == pytest.approx(
        sum(preds[i] == "1" for i in ones) / len(ones))
    n = precision["samples_used"]
    said0 = [i for i in range(n) if preds[i] == "0"]
    assert precision["trials"] == len(said0) and precision["estimate"] == pytest.approx(
        sum(labels[i] == "0" for i in said0) / len(said0))
    assert ev.verdict == PASS and all(r["method"] == "cluster-betting" for r in (recall, precision))
