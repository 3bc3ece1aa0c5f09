"""accuracy/slicing.py without a service: the interleaved order, the per-slice plans, Holm's step-down beyond the
Bonferroni share, min_samples, and the slice table's order (the CLI path is test_slices_e2e.py)."""

from __future__ import annotations

import numpy as np
import pytest

from mlci.accuracy.gates import plan_gates
from mlci.accuracy.outputs import Output
from mlci.accuracy.slicing import SliceFamily, SlicePlan, holm_levels, interleave, plan_slices, slice_codes
from mlci.accuracy.stats.slices import holm
from mlci.errors import UserError

GATE = {"metric": "accuracy", "kind": "absolute", "min": 0.80, "max": None, "margin": 0.06, "alpha": 0.05,
        "beta": 0.10, "class": None, "relative_margin": None, "bound": None, "discordance": None}
CFG = {"field": "s", "bins": [], "labels": [], "min_samples": 100, "alpha_split": "holm", "weights": {},
       "allocation": "equal"}


def test_interleaved_order_keeps_every_prefix_at_the_quota_shares_and_classes_stratified():
    rng = np.random.default_rng(0)
    codes = rng.integers(0, 3, 5000)
    classes = rng.integers(0, 4, 5000)
    quotas = np.array([300, 900, 600])
    order, owner = interleave(codes, classes, quotas, seed=5)
    assert len(order) == 1800 and len(set(order.tolist())) == 1800
    assert (codes[order] == owner).all() and np.bincount(owner).tolist() == quotas.tolist()
    share = quotas / quotas.sum()
    for end in range(1, 1801, 7):
        got = np.bincount(owner[:end], minlength=3)
        assert np.all(np.abs(got - end * share) <= 2), end
    # inside a slice the order is the unsliced engine's class-stratified one: each class near its share
    first = order[owner == 1][:300]
    within = np.bincount(classes[codes == 1], minlength=4) / (codes == 1).sum()
    assert np.all(np.abs(np.bincount(classes[first], minlength=4) - 300 * within) <= 2)
    again, _ = interleave(codes, classes, quotas, seed=5)
    assert (again == order).all() and not (interleave(codes, classes, quotas, seed=6)[0] == order).all()


def test_bins_name_their_ranges_and_values_name_their_slices():
    codes, names = slice_codes(np.array([5.0, 100.0, 250.0, 1000.0]), [100, 1000], None, "w")
    assert codes.tolist() == [0, 1, 1, 2] and names == ["<100", "[100, 1000)", ">=1000"]
    codes, names = slice_codes(np.array(["fr", "de", "fr"]), None, None, "w")
    assert codes.tolist() == [1, 0, 1] and names == ["de", "fr"]
    with pytest.raises(UserError, match="distinct values"):
        slice_codes(np.arange(100.0), None, None, "w")


def _plan(split: str, sizes: list[int], cap: int, **cfg):
    codes = np.repeat(np.arange(len(sizes)), sizes)
    return plan_slices({**CFG, "alpha_split": split, **cfg}, codes=codes, names=[f"s{i}" for i in range(len(sizes))],
                       gates=[GATE], class_codes=np.ones(len(codes), dtype=np.int64), classes=["0", "1"],
                       output=Output("labels"), sequential=True, cap=cap, seed=1, batch_size=100,
                       task="classification", where="accuracy.suites.t")


def test_per_slice_plans_take_their_share_of_alpha_and_beta():
    holm = _plan("holm", [3000, 3000, 3000, 50], 6000)
    assert holm.quotas == [2000, 2000, 2000, 0] and holm.plans[3] == []  # below min_samples: not judged
    p = holm.plans[0][0]
    assert p["method"] == "sprt" and p["alpha"] == pytest.approx(0.05 / 3) and p["beta"] == pytest.approx(0.10 / 3)
    assert p["family"]["alpha"] == pytest.approx(0.05) and p["needed"] <= 2000
    w = _plan("weights", [3000, 3000, 3000], 6000, weights={"s0": 2, "s1": 1, "s2": 1})
    assert [q[0]["alpha"] for q in w.plans] == pytest.approx([0.025, 0.0125, 0.0125])
    assert {q[0]["method"] for q in w.plans} == {"truncated-sprt"}
    with pytest.raises(UserError, match="cannot give each of the 3 slices min_samples 100"):
        _plan("holm", [3000, 3000, 3000], 250)
    with pytest.raises(UserError, match="weights miss slice"):
        _plan("weights", [3000, 3000], 6000, weights={"s0": 1})


def _sprt_plan(quota: int) -> dict:
    p = plan_gates([{**GATE, "alpha": 0.025, "beta": 0.05}], sequential=False, available=10**6, cap=10**6,
                   prevalence={"0": 0.5, "1": 0.5}, where="t")[0]
    p.update(method="sprt", needed=quota, family={"split": "holm", "share": 0.5, "alpha": 0.05, "beta": 0.10})
    return p


def _feed(split: str, b_right: list[bool], a_right: list[bool], min_samples: int = 10) -> SliceFamily:
    n = len(b_right)
    codes = np.tile([0, 1], n)
    sp = SlicePlan("s", ["A", "B"], [n, n], [n, n], [1.0, 1.0], min_samples, split, "equal",
                   [[_sprt_plan(n)], [_sprt_plan(n)]], None, [10, 10], codes)
    fam = SliceFamily(sp, Output("labels"), "fail", slice_of=codes)
    right = np.empty(2 * n, dtype=bool)
    right[0::2], right[1::2] = a_right, b_right
    for lo in range(0, 2 * n, 20):
        chunk = right[lo:lo + 20]
        if fam.feed(["1"] * len(chunk), ["1" if r else "0" for r in chunk], [None] * len(chunk), [0.0] * len(chunk)):
            break
    if fam.verdict is None:
        fam.finish()
    return fam


def test_holm_passes_a_slice_bonferroni_leaves_open():
    """Slice A is clearly good; slice B's Ville SPRT evidence ends between log(1/0.05) and log(1/0.025): at its
    Bonferroni share (0.025) B is undecided, by Holm -- after A is rejected B is tested at the full 0.05 -- it
    PASSes."""
    b = [True] * 42 + ([True] * 5 + [False]) * 26  # log-LR 3.04 after 42, then about flat; max ~3.5 < 3.69
    a = [True] * 198
    holm = _feed("holm", b, a)
    assert holm.verdict == "PASS" and holm.slice_verdicts() == ["PASS", "PASS"]
    note = holm.evs[1].states[0].note
    assert "Holm's step-down over 2 slices" in note
    p_pass = holm.pvalues(1, 0)[0]
    assert 0.025 < p_pass <= 0.05
    g = [r for r in holm.gate_records() if r["slice"] == "B"][0]
    assert g["alpha"] == g["holm_level"] == pytest.approx(0.05)  # the second Holm step: the full alpha
    assert g["bound"]["side"] == "lower" and g["bound"]["value"] >= 0.80  # the bound at that level clears min
    bonf = _feed("weights", b, a)
    assert bonf.verdict == "INCONCLUSIVE" and bonf.slice_verdicts() == ["PASS", "INCONCLUSIVE"]
    assert "'B' undecided" in bonf.reason
    table = bonf.slice_records()
    assert [r["name"] for r in table] == ["B", "A"] and table[0]["decided_by"] == "weights"  # worst first


def test_a_failing_slice_fails_the_suite_and_is_named():
    a = [True] * 198
    b = [True, True, False, True, False] * 40  # 60%: far below min 0.80
    fam = _feed("holm", b[:198], a)
    assert fam.verdict == "FAIL" and "'B'" in fam.reason and "'A'" not in fam.reason
    rows = fam.slice_records()
    assert rows[0]["name"] == "B" and rows[0]["verdict"] == "FAIL" and rows[0]["pvalue_fail"] <= 0.05
    assert rows[0]["estimate"] < 0.8 and rows[0]["bound"] is not None
    assert all(g["slice"] in ("A", "B") and g["message"].startswith("slice '") for g in fam.gate_records())


def test_holm_levels_reject_as_holm_does():
    rng = np.random.default_rng(3)
    for _ in range(200):
        k = int(rng.integers(1, 8))
        p = np.where(rng.random(k) < 0.5, rng.random(k) * 0.03, rng.random(k))
        w = rng.random(k) + 0.1
        lv = holm_levels(p, 0.05, w)
        assert (~np.isnan(lv)).tolist() == holm(p, 0.05, w).tolist()
        assert np.all(p[~np.isnan(lv)] <= lv[~np.isnan(lv)])
