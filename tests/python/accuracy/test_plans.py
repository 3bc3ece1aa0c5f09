"""Plans that state their risks honestly, on the real engine and both examples: a cap that cannot deliver a
gate's beta is refused before anything runs; latency gates time each sample on its own; a change gate's fixed n
and samples saved come from its plan, not from the discordance one run happened to observe."""

from __future__ import annotations

import numpy as np
import pytest

from mlci.accuracy.stats import mcnemar

from .cases import configure, record, run_suite, write_module


def test_a_per_class_gate_whose_class_is_too_rare_for_the_cap_is_refused(service, digits, churn, churn_files,
                                                                          tmp_path):
    """The per-class precision gate that once needed 6,638 samples under a 5,000 cap and ended INCONCLUSIVE in 28%
    of the runs for a model at min + margin: now exit 2 before anything runs, with the achievable beta."""
    cases = [(churn, churn_files["good"], {"metric": "precision", "class": "churns", "min": 0.85, "margin": 0.02},
              5000),
             (service, digits["good"], {"metric": "recall", "class": 8, "min": 0.8, "margin": 0.08}, 1000)]
    for root, models, gate, cap in cases:
        configure(root, {"s": {"max_samples": cap, "gates": [gate]}})
        proc = run_suite(root, "s", models, tmp_path / root.name, "-n", "0")
        assert proc.returncode == 2, proc.stdout + proc.stderr
        err = proc.stderr
        cls = gate["class"]
        assert f"gate {gate['metric']}[{'1' if cls == 'churns' else cls}] cannot deliver its beta" in err, err
        assert f"within max_samples {cap}" in err and "raise max_samples to >= " in err
        achievable = float(err.split("(achievable beta ")[1].split(")")[0])
        assert 0.1 < achievable < 1
        needed = int(err.split("raise max_samples to >= ")[1].split(",")[0])
        assert needed > cap
        # the cap it names is enough: the same suite at that cap plans and runs
        configure(root, {"s": {"max_samples": needed, "gates": [gate]}})
        proc = run_suite(root, "s", models, tmp_path / f"{root.name}-ok", "-n", "2")
        assert proc.returncode in (0, 1, 3), proc.stdout + proc.stderr
        assert record(tmp_path / f"{root.name}-ok", "s")["gates"][0]["achievable_beta"] <= 0.1


COUNTING = """\
import os
from {pkg} import inference

def predict(x, model=None):
    with open(os.environ["COUNT_FILE"], "a") as fh:
        fh.write(f"{{len(x)}}\\n")
    return inference.predict(x, model)
"""


def test_latency_gates_time_each_sample_on_its_own(service, digits, churn, churn_files, tmp_path):
    for root, models, pkg in ((service, digits["good"], "digits_service"), (churn, churn_files["good"], "churn_service")):
        write_module(root, "counting", COUNTING.format(pkg=pkg))
        configure(root, {"lat": {"max_samples": 300, "predict": "counting:predict", "gates": [
            {"metric": "accuracy", "min": 0.80, "margin": 0.1},
            {"metric": "latency_p95", "max": 10000}]}})  # the mechanism, not this shared machine's speed
        count = tmp_path / f"{root.name}.count"
        proc = run_suite(root, "lat", models, tmp_path / root.name, "-n", "2",
                         env={"COUNT_FILE": str(count)})
        assert proc.returncode == 0, proc.stdout + proc.stderr
        rec = record(tmp_path / root.name, "lat")
        assert rec["plan"]["timing"] == "per_sample" and rec["metrics"]["latency_ms"]["timing"] == "per_sample"
        calls = [int(n) for n in count.read_text().split()]
        assert set(calls) == {1} and len(calls) >= rec["sample"]["used"]  # one input per predict call
        lat = np.asarray(rec["outcomes"]["latency_ms"])
        batches = -(-len(lat) // rec["sample"]["batch_size"])
        assert len(set(lat.tolist())) > 5 * batches  # not one batch mean repeated for every sample of a batch
        gate = rec["gates"][1]
        assert gate["estimate"] == pytest.approx(np.percentile(lat, 95), rel=1e-3, abs=1e-3)
        assert rec["metrics"]["latency_ms"]["p95"] == pytest.approx(gate["estimate"], rel=1e-3, abs=1e-3)
        assert gate["interval"][0] <= gate["estimate"] <= gate["interval"][1]


def test_change_gate_fixed_n_and_samples_saved_come_from_the_plan(service, digits, churn, churn_files, tmp_path):
    """The same model as its own baseline: no discordant pair at all. Once that reported 'fixed n 1'."""
    default, planned = mcnemar.planned_n(0.1, 0.02, 0.05, 0.1), mcnemar.planned_n(0.05, 0.02, 0.05, 0.1)
    assert (default, planned) == (2620, 1320)
    for root, models in ((service, digits["good"]), (churn, churn_files["good"])):
        # the default plan assumes candidate and baseline disagree on 10% of the samples: 2,620 > the cap
        configure(root, {"change": {"max_samples": 1500, "gates": [{"metric": "accuracy", "kind": "change",
                                                                    "margin": 0.02}]}})
        proc = run_suite(root, "change", models, tmp_path / f"{root.name}-0", "--baseline-models", str(models))
        assert proc.returncode == 2 and "needs n = 2620 paired samples at a discordance of 0.1" in proc.stderr
        assert "set `discordance:` on the gate" in proc.stderr
        # a team that knows its models disagree less says so, and the plan follows
        configure(root, {"change": {"max_samples": 1500, "gates": [{"metric": "accuracy", "kind": "change",
                                                                    "margin": 0.02, "discordance": 0.05}]}})
        proc = run_suite(root, "change", models, tmp_path / root.name, "--baseline-models", str(models), "-n", "0")
        assert proc.returncode == 0, proc.stdout + proc.stderr
        g = record(tmp_path / root.name, "change")["gates"][0]
        assert g["candidate_wins"] == g["candidate_losses"] == 0 and g["observed_discordance"] == 0
        assert g["fixed_n"] == planned and g["discordance"] == 0.05
        assert g["samples_saved"] == planned - g["samples_used"] > 0
