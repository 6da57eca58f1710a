"""tutorial_pkg.stats against known answers: coverage, paired against unpaired, AR(1) inefficiency."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as st

from tutorial_pkg import stats


def test_t_quantile_is_students():
    assert stats.t_quantile(2) == pytest.approx(4.302653, abs=1e-6)
    assert stats.t_quantile(1e6) == pytest.approx(1.959964, abs=1e-5)


def test_replicates_matches_scipy_and_prints_to_its_se():
    v = [1.0, 1.2, 0.9, 1.1]
    e = stats.replicates(v)
    ci = st.ttest_1samp(v, 0.0).confidence_interval(0.95)
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high), rel=1e-12)
    assert e.n == 4 and e.dof == 3
    assert str(e) == "1.05 ± 0.06"
    assert e.contains(1.0) and not e.contains(1.5)


@pytest.mark.parametrize("n", [3, 5])
def test_t_interval_covers_at_its_level_where_a_normal_one_does_not(n):
    """5 000 simulated experiments of n normal replicates: the t-interval covers the true mean 95 % of the
    time; the interval with 1.96 in place of the t-quantile covers far less (77 % at n = 3, 88 % at n = 5, each
    more than ten standard errors of a coverage below 95 %)."""
    rng = np.random.default_rng(0)
    x = rng.normal(2.0, 3.0, size=(5_000, n))
    hits_t = hits_z = 0
    for row in x:
        e = stats.replicates(row)
        hits_t += e.low <= 2.0 <= e.high
        hits_z += abs(e.mean - 2.0) <= 1.96 * e.se
    se_cov = math.sqrt(0.95 * 0.05 / len(x))
    assert abs(hits_t / len(x) - 0.95) < 4 * se_cov
    assert hits_z / len(x) < 0.95 - 10 * se_cov


def test_paired_comparison_resolves_what_the_unpaired_one_cannot():
    """Two methods that share large per-seed noise and differ by 0.1: the paired differences resolve it,
    Welch's interval on the same numbers does not."""
    rng = np.random.default_rng(1)
    shared = rng.normal(0, 1.0, size=8)
    a = shared + 1.0 + rng.normal(0, 0.02, size=8)
    b = shared + 1.1 + rng.normal(0, 0.02, size=8)
    p = stats.paired(a, b, names=("A", "B"))
    u = stats.unpaired(a, b, names=("A", "B"))
    assert p.verdict == "A lower" and p.resolved
    assert u.verdict == "not resolved at n = 8" and not u.resolved
    assert p.difference.low < -0.1 < p.difference.high
    res = st.ttest_rel(a, b)
    assert p.p_value == pytest.approx(res.pvalue)
    ci = res.confidence_interval(0.95)
    assert (p.difference.low, p.difference.high) == pytest.approx((ci.low, ci.high))


def test_unpaired_is_welch():
    a, b = [3.1, 2.9, 3.3, 3.0, 3.2], [2.0, 2.6, 1.9, 2.4]
    u = stats.unpaired(a, b, names=("new", "old"))
    res = st.ttest_ind(a, b, equal_var=False)
    ci = res.confidence_interval(0.95)
    assert (u.difference.low, u.difference.high) == pytest.approx((ci.low, ci.high))
    assert u.verdict == "new higher"
    assert "new - old" in str(u) and "unpaired" in str(u)



def test_against_a_reference_is_the_one_sample_t_interval_and_widens_with_the_references_error():
    values = [0.91, 0.93, 0.90, 0.94, 0.92, 0.89, 0.95, 0.93]
    plain = stats.against(values, 0.95, names=("runs", "0.95"))
    ci = st.ttest_1samp(values, 0.95).confidence_interval(0.95)
    assert (plain.difference.low + 0.95, plain.difference.high + 0.95) == pytest.approx((ci.low, ci.high))
    assert plain.p_value == pytest.approx(st.ttest_1samp(values, 0.95).pvalue)
    assert plain.verdict == "runs lower"
    # a reference known to a binomial standard error: the errors add in quadrature, Welch-Satterthwaite's dof
    widened = stats.against(values, 0.95, reference_se=0.009, names=("runs", "0.95"))
    se = math.hypot(plain.difference.se, 0.009)
    assert widened.difference.se == pytest.approx(se)
    assert widened.difference.dof == pytest.approx(se ** 4 / (plain.difference.se ** 4 / 7))
    assert widened.difference.high - widened.difference.low > plain.difference.high - plain.difference.low
    # printed as what it is, a comparison with a reference value, not a two-sample one
    assert "(against a reference, 95 % interval" in str(plain) and "unpaired" not in str(plain)

def _ar1(phi, n, rng):
    x = np.empty(n)
    x[0] = rng.normal() / math.sqrt(1 - phi ** 2)
    e = rng.normal(size=n)
    for i in range(1, n):
        x[i] = phi * x[i - 1] + e[i]
    return x


@pytest.mark.parametrize("phi", [0.5, 0.9])
def test_statistical_inefficiency_of_ar1_matches_its_closed_form(phi):
    """g = (1 + phi) / (1 - phi) for an AR(1) series (3 and 19); the estimate over 20 series of 20 000 steps."""
    rng = np.random.default_rng(2)
    g = [stats.statistical_inefficiency(_ar1(phi, 20_000, rng)) for _ in range(20)]
    exact = (1 + phi) / (1 - phi)
    e = stats.replicates(g, level=0.999)
    assert abs(e.mean - exact) < 0.1 * exact
    assert stats.effective_size(_ar1(phi, 20_000, rng)) == pytest.approx(20_000 / exact, rel=0.3)


def test_series_mean_of_a_correlated_series_covers_where_the_naive_se_does_not():
    """AR(1), phi = 0.9: the interval from the effective size covers the true mean 0 about 95 % of the
    time; one that counts every frame as independent covers far less."""
    rng = np.random.default_rng(3)
    hits = naive = 0
    trials = 300
    for _ in range(trials):
        x = _ar1(0.9, 2_000, rng)
        e = stats.series_mean(x)
        hits += e.low <= 0 <= e.high
        naive += abs(x.mean()) <= 1.96 * x.std(ddof=1) / math.sqrt(x.size)
    assert hits / trials > 0.88
    assert naive / trials < 0.6


def test_share_is_wilson_and_counts_a_correlated_series_by_its_effective_size():
    ind = np.r_[np.ones(30), np.zeros(70)]
    e = stats.share(ind)
    ci = st.binomtest(30, 100).proportion_ci(0.95, method="wilson")
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high))
    # the same share as a series of runs of 10 frames: fewer effective draws, a wider interval
    runs = np.repeat(np.r_[np.ones(3), np.zeros(7)][np.random.default_rng(4).permutation(10)], 10)
    c = stats.share(np.tile(runs, 3), correlated=True)
    assert c.mean == pytest.approx(0.3)
    assert c.high - c.low > 2 * (e.high - e.low) / math.sqrt(3)
    # a share of 0 keeps an interval above 0
    z = stats.share(np.zeros(50))
    assert z.low == 0 and z.high > 0.05


def test_correlated_wilson_equals_binomtest_where_the_effective_size_is_whole(monkeypatch):
    monkeypatch.setattr(stats, "statistical_inefficiency", lambda x, fast=False: 2.0)
    ind = np.r_[np.ones(40), np.zeros(160)]
    e = stats.share(ind, correlated=True)
    ci = st.binomtest(20, 100).proportion_ci(0.95, method="wilson")
    assert (e.low, e.high) == pytest.approx((ci.low, ci.high))


def test_tensors_are_accepted():
    e = stats.replicates(torch.tensor([1.0, 2.0, 3.0]))
    assert e.mean == pytest.approx(2.0)


@pytest.mark.parametrize("call, match", [
    (lambda: stats.replicates([1.0]), "values must hold at least 2 values, got 1"),
    (lambda: stats.replicates([[1.0, 2.0]]), "values must be one-dimensional"),
    (lambda: stats.replicates([1.0, float("nan")]), "values holds NaN"),
    (lambda: stats.replicates([1.0, 2.0], level=1.5), "level must be < 1.0, got 1.5"),
    (lambda: stats.paired([1.0, 2.0], [1.0, 2.0, 3.0]), "one value per shared replicate, got 2 and 3"),
    (lambda: stats.paired([1.0, 2.0], [1.0, 2.0], names="AB"), "names must be two strings"),
    (lambda: stats.share([0.0, 0.5, 1.0]), "indicator must hold only booleans or 0/1"),
    (lambda: stats.replicates("abc"), "values must be a sequence of real numbers"),
])
def test_bad_input_names_the_argument(call, match):
    with pytest.raises((ValueError, TypeError), match=match):
        call()
