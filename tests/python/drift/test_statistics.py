"""The statistics against scipy/statsmodels references, and the false-alarm rate over many no-shift windows."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.multitest import multipletests

from mlci.drift.check import run_check
from mlci.drift.reference import build_reference, numeric_stats
from mlci.drift.tests import chi2_homogeneity, holm, ks_test, psi

from .synth import columns, drift_cfg

N_REF = 20000


@pytest.fixture(scope="module")
def reference() -> dict:
    cols = columns(N_REF, np.random.default_rng(1))
    return build_reference(cols, kinds={}, exclude=[], label=None, prediction_field="prediction",
                           prediction_kind=None, source={"uri": "synthetic"})


def test_ks_on_exact_cdf_equals_ks_2samp() -> None:
    """Few distinct values: the stored CDF is exact, so D and p equal scipy's two-sample asymptotic test."""
    rng = np.random.default_rng(3)
    ref, cur = rng.integers(0, 17, 5000).astype(float), rng.integers(1, 17, 400).astype(float)
    d, p = ks_test(numeric_stats(ref, "a")["cdf"], ref.size, cur)
    want = stats.ks_2samp(ref, cur, method="asymp")
    assert d == pytest.approx(want.statistic, abs=1e-12)
    assert p == pytest.approx(want.pvalue, rel=1e-9)


def test_ks_on_sketch_is_within_the_sketch_error() -> None:
    """Continuous values: the 513-point sketch keeps D within 1/512 of the exact two-sample statistic."""
    rng = np.random.default_rng(4)
    ref = np.concatenate([rng.normal(size=30000), np.zeros(3000)])  # an atom at 0 as well
    st = numeric_stats(ref, "b")
    assert st["cdf"]["interp"] == "linear" and len(st["cdf"]["x"]) <= 513
    for shift in (0.0, 0.1, 0.3):
        cur = np.concatenate([rng.normal(shift, 1, 700), np.zeros(70)])
        d, p = ks_test(st["cdf"], ref.size, cur)
        want = stats.ks_2samp(ref, cur, method="asymp")
        assert abs(d - want.statistic) <= 1 / 512 + 1e-9


def test_holm_matches_statsmodels() -> None:
    rng = np.random.default_rng(5)
    for m in (1, 2, 7, 40):
        p = rng.random(m) ** 3
        assert holm(p.tolist()) == pytest.approx(multipletests(p, method="holm")[1].tolist())


def test_chi2_handles_a_category_unseen_in_the_reference() -> None:
    stat, p, dof = chi2_homogeneity(np.array([5000, 3000, 2000, 0]), np.array([450, 270, 180, 100]))
    assert p < 1e-10 and dof >= 2
    _, p_same, _ = chi2_homogeneity(np.array([5000, 3000, 2000]), np.array([500, 300, 200]))
    assert p_same > 0.99
    assert psi(np.array([50, 50]), np.array([50, 50])) == 0.0


def test_false_alarm_rate_over_200_no_shift_windows(reference: dict) -> None:
    """No shift: the check's false-retrain rate stays within a binomial bound of alpha, and the significance
    part alone (Holm over the 5 features) is calibrated: its rejection rate is inside the two-sided bound."""
    alpha, windows = 0.05, 200
    cfg = drift_cfg(alpha=alpha, min_rows=100)
    rng = np.random.default_rng(2024)
    alarms = significant = 0
    for _ in range(windows):
        rec = run_check(reference, columns(int(rng.integers(300, 1500)), rng), cfg)
        alarms += rec["verdict"] == "DRIFT"
        significant += min(f["p_adjusted"] for f in rec["features"]) <= alpha
    low, high = stats.binom.ppf([0.0005, 0.9995], windows, alpha)
    assert alarms <= high, f"{alarms}/{windows} false alarms; bound {high:.0f} at level {alpha}"
    assert low <= significant <= high, f"family-wise rejections {significant}/{windows} outside [{low}, {high}]"


def test_mean_shift_and_new_category_are_detected_and_named(reference: dict) -> None:
    rng = np.random.default_rng(7)
    rec = run_check(reference, columns(800, rng, shift=0.75, new_category=0.15), drift_cfg())
    assert rec["verdict"] == "DRIFT" and rec["exit_code"] == 1
    assert set(rec["drifted"]) == {"age", "channel"}
    by_name = {f["name"]: f for f in rec["features"]}
    assert by_name["age"]["test"] == "ks" and by_name["age"]["psi"] >= 0.2
    assert by_name["channel"]["unseen"].get("kiosk", 0) > 50
    assert "kiosk" in by_name["channel"]["note"]
    assert "age" in rec["summary"] and "channel" in rec["summary"]


def test_missing_rate_and_range_rules(reference: dict) -> None:
    rng = np.random.default_rng(8)
    cols = columns(600, rng)
    cols["income"] = [None if i % 5 == 0 else v for i, v in enumerate(cols["income"])]  # 20% missing
    cols["visits"] = [v + 1000 if i % 10 == 0 else v for i, v in enumerate(cols["visits"])]  # 10% out of range
    rec = run_check(reference, cols, drift_cfg())
    by_name = {f["name"]: f for f in rec["features"]}
    assert any("missing rate" in r for r in by_name["income"]["reasons"])
    assert any("outside the reference range" in r for r in by_name["visits"]["reasons"])


def test_per_feature_threshold_overrides_global(reference: dict) -> None:
    rng = np.random.default_rng(9)
    cols = columns(3000, rng, shift=0.3)
    base = run_check(reference, cols, drift_cfg())
    age = next(f for f in base["features"] if f["name"] == "age")
    assert age["p_adjusted"] < 0.05
    strict = drift_cfg(features={"age": {"kind": None, "psi": age["psi"] / 2, "max_missing_increase": None,
                                         "max_out_of_range": None}})
    loose = drift_cfg(psi=age["psi"] * 2)
    assert "age" in run_check(reference, cols, strict)["drifted"]
    assert "age" not in run_check(reference, cols, loose)["drifted"]


def test_too_few_rows_is_inconclusive(reference: dict) -> None:
    rec = run_check(reference, columns(50, np.random.default_rng(10)), drift_cfg(min_rows=200))
    assert rec["verdict"] == "INCONCLUSIVE" and rec["exit_code"] == 3


def test_drift_plan_schedules_only_configured_branches() -> None:
    from mlci.drift.cli import drift_plan

    cfg = drift_cfg(branches=["main", "release/*"], schedule="H 4 * * *")
    cfg["retrain"] = {"job": "ml/train", "parameters": {"A": "1"}, "url": None}
    assert drift_plan(cfg, "main")["cron"] == "H 4 * * *"
    assert drift_plan(cfg, "release/2.0")["scheduled"] is True
    assert drift_plan(cfg, "feature/main")["cron"] is None
    assert drift_plan(cfg, None)["scheduled"] is False
    assert drift_plan(drift_cfg(), "main")["cron"] == "H 3 * * *"  # schema default: main, nightly
    assert drift_plan(cfg, "main")["retrain"] == {"job": "ml/train", "parameters": {"A": "1"}}
