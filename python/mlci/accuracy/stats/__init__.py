"""Statistics for accuracy gates.

Every distribution comes from scipy (binom, betabinom, bootstrap); nothing is hand-rolled.

Design, in one place:

* Absolute proportion gates (accuracy, precision, recall) test H0: p <= min against H1: p >= min + margin.
  - Sequential (default): Wald's SPRT on the Bernoulli outcomes, checked after every batch on the prefix
    of the pre-drawn sample order. Its statistic is Wald's log likelihood ratio; its thresholds are
    log(1/alpha) (PASS) and log(beta) (FAIL) rather than Wald's approximations log((1-beta)/alpha) and
    log(beta/(1-alpha)). Why: the likelihood ratio is a non-negative martingale under p = min (a
    supermartingale for any p < min), so Ville's inequality bounds the false-PASS rate by alpha *exactly*,
    at any stopping time -- batch-wise looks, truncation at max_samples and composite hypotheses included;
    symmetrically the false-FAIL rate at p >= min + margin is <= beta. Wald's approximate thresholds only
    promise alpha/(1-beta). The cost is < 5% more samples. At the cap the verdict is INCONCLUSIVE.
  - The interval reported with a sequential verdict is the SPRT's own (sprt_design.py): inverting the
    family of SPRTs indexed by their null gives an anytime-valid (1 - alpha) lower bound that clears min
    exactly when the SPRT PASSes, and a (1 - beta) upper bound that is below min + margin exactly when it
    FAILs. (The beta-binomial mixture confidence sequence in proportion.py, Robbins 1970, Howard et al.
    2021, serves the change gates' discordance bound.) Before the run, the exact truncated operating
    characteristic refuses a cap that cannot deliver P(PASS) >= 1 - beta at min + margin.
  - Fixed n (`sequential: false`): the exact one-sided binomial test, with the smallest n whose exact
    size is <= alpha and exact power at min + margin is >= 1 - beta (found by a search over n: power is a
    sawtooth in n). Interval: Clopper-Pearson at 1 - 2 alpha (its lower end is the exact one-sided bound
    and agrees with the test).
* Change gates: paired, on the same samples, exact McNemar on the discordant pairs (see mcnemar.py).
* Other metrics (F1, macro-F1, AUC, MAE, RMSE, latency): BCa bootstrap at the final look (fixed n):
  PASS when the one-sided (1 - alpha) BCa bound clears the threshold. The n is planned as the exact n an
  accuracy gate with the same min/margin/alpha/beta would need (a proxy: F1/AUC have no exact power
  formula); lower-is-better metrics use every drawn sample.
* Several gates: the suite PASSes only when every gate passes (an intersection-union test, so each gate
  at its own alpha keeps the suite's false-PASS rate <= max alpha). A good model fails when *any* gate
  fails, so beta is split evenly (Bonferroni): each of k gates runs at beta / k, which keeps the suite's
  false-FAIL rate <= beta.

Modules beside the ones the gates use today (to be wired into the gate evaluator):

* truncated.py -- the truncated SPRT: the SPRT's log likelihood ratio with boundaries that meet at a maximum N
  (1.5 x the exact fixed n), calibrated on the exact operating characteristic (dynamic programming over the
  binomial paths at the batch looks) so that alpha and beta hold exactly, every run is decided by N, and the
  expected sample size stays below the fixed n at every true value.
* betting.py -- anytime-valid gates for the mean of any per-sample score in [0, 1] (Waudby-Smith & Ramdas 2024):
  a PASS test and a FAIL test by betting, their confidence bounds, and the planned n for beta (simulation).
* paired.py -- change gates for any metric (AUC, F1, MAE, RMSE, latency): paired BCa bootstrap with absolute
  and relative margins; a paired betting version for bounded per-sample scores.
* cluster.py -- grouped samples (augmented copies, rows of one patient): a one-sided BCa bound of a mean score that
  resamples whole groups (the cluster bootstrap), the group count and the design effect; with sampling.group_order
  (whole groups, stratified) the building blocks of `dataset.group`.
* slices.py -- per-slice gates: weighted Holm over slices on both sides, a minimum sample count per slice,
  budget allocation and a stratified pre-drawn order.
"""
