"""The paired statistics (mergelab.analysis.stats) against scipy's reference implementations, on
synthetic paired data."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats as sps

from mergelab.analysis import stats


def _pair(kind, merge, parent, resamples=10000, alpha=0.05, seed=0, weights=None):
    values = np.vstack([merge, parent]).astype(float)
    w = np.ones_like(values) if weights is None else np.vstack(weights).astype(float)
    rng = np.random.default_rng(seed)
    return stats.compare_task(kind, values, w, [stats.Pair(0, 1)], resamples, alpha, rng)[0]


def test_mcnemar_is_the_binomial_test_of_the_discordant_items():
    rng = np.random.default_rng(1)
    parent = (rng.random(200) < 0.55).astype(float)
    merge = np.where(rng.random(200) < 0.2, 1 - parent, parent)
    res = _pair("mean", merge, parent)
    table = np.zeros((2, 2), int)  # counted another way: the 2x2 table of (merge, parent)
    for a, b in zip(merge.astype(int), parent.astype(int)):
        table[a, b] += 1
    ref = sps.binomtest(int(table[1, 0]), int(table[1, 0] + table[0, 1]), 0.5).pvalue
    assert res.test.startswith("exact McNemar")
    assert res.p_value == pytest.approx(ref, rel=1e-12)
    assert res.diff == pytest.approx(merge.mean() - parent.mean())
    # a textbook value: 10 discordant items, all for the merge -> 2 * 0.5**10
    m, p = np.r_[np.ones(10), np.zeros(5)], np.zeros(15)
    assert _pair("mean", m, p).p_value == pytest.approx(2 * 0.5**10)


@pytest.mark.parametrize("n", [8, 12])
def test_sign_flip_equals_scipys_exact_permutation_test(n):
    rng = np.random.default_rng(n)
    parent = rng.normal(size=n)
    merge = parent + rng.normal(0.4, 1.0, size=n)
    res = _pair("mean", merge, parent, resamples=10000)  # 2^n <= 10000: exact
    ref = sps.permutation_test(
        (merge - parent,), np.mean, permutation_type="samples", n_resamples=10000, alternative="two-sided"
    )
    assert res.test.startswith("paired sign-flip")
    assert res.p_value == pytest.approx(ref.pvalue, rel=1e-12)


def test_sign_flip_monte_carlo_is_within_noise_of_scipy():
    rng = np.random.default_rng(7)
    parent = rng.normal(size=60)
    merge = parent + rng.normal(0.25, 1.0, size=60)
    res = _pair("mean", merge, parent, resamples=20000)
    ref = sps.permutation_test(
        (merge - parent,), np.mean, permutation_type="samples", n_resamples=20000, rng=1, alternative="two-sided"
    ).pvalue
    noise = 4 * math.sqrt(ref * (1 - ref) / 20000) + 1e-4
    assert abs(res.p_value - ref) < noise, (res.p_value, ref)


def test_paired_bootstrap_interval_is_within_noise_of_scipys():
    rng = np.random.default_rng(3)
    parent = (rng.random(300) < 0.5).astype(float)
    merge = np.where(rng.random(300) < 0.3, 1 - parent, parent)
    res = _pair("mean", merge, parent, resamples=20000)
    ref = sps.bootstrap(
        (merge, parent),
        lambda a, b, axis: a.mean(axis=axis) - b.mean(axis=axis),
        paired=True,
        vectorized=True,
        n_resamples=20000,
        method="percentile",
        confidence_level=0.95,
        rng=2,
    )
    se = ref.standard_error
    assert abs(res.ci_low - ref.confidence_interval.low) < 0.1 * se * 4
    assert abs(res.ci_high - ref.confidence_interval.high) < 0.1 * se * 4
    assert res.ci_low < res.diff < res.ci_high


def test_corpus_metric_interval_is_the_bootstrap_over_documents():
    """word_perplexity: exp(-sum loglikelihood / sum words), resampling documents."""
    rng = np.random.default_rng(5)
    words = rng.integers(20, 200, size=40).astype(float)
    ll_parent = -words * rng.normal(4.0, 0.3, size=40)
    ll_merge = ll_parent + words * rng.normal(0.15, 0.1, size=40)  # lower perplexity
    res = _pair("weighted_perplexity", ll_merge, ll_parent, resamples=20000, weights=[words, words])

    def ppl_diff(lm, lp, w, axis):
        return np.exp(-lm.sum(axis=axis) / w.sum(axis=axis)) - np.exp(-lp.sum(axis=axis) / w.sum(axis=axis))

    ref = sps.bootstrap(
        (ll_merge, ll_parent, words),
        ppl_diff,
        paired=True,
        vectorized=True,
        n_resamples=20000,
        method="percentile",
        rng=4,
    )
    assert res.test == stats.TESTS["bootstrap"]
    assert res.merge_value == pytest.approx(math.exp(-ll_merge.sum() / words.sum()))
    se = ref.standard_error
    assert abs(res.ci_low - ref.confidence_interval.low) < 0.4 * se
    assert abs(res.ci_high - ref.confidence_interval.high) < 0.4 * se
    assert res.ci_high < 0 and res.p_value < 0.01
    assert stats.verdict(res.diff, res.p_value, 0.05, higher_is_better=False) == "better"


def test_a_true_difference_of_0_1_on_1000_binary_items_is_found():
    rng = np.random.default_rng(11)
    parent = (rng.random(1000) < 0.5).astype(float)
    merge = parent.copy()
    wrong = np.flatnonzero(parent == 0)
    merge[rng.choice(wrong, size=100, replace=False)] = 1  # exactly +0.1
    res = _pair("mean", merge, parent)
    assert res.diff == pytest.approx(0.1) and res.p_value < 0.01 and res.ci_low > 0


def test_identical_models_are_indistinguishable_everywhere():
    rng = np.random.default_rng(2)
    binary = (rng.random(50) < 0.4).astype(float)
    scores = rng.normal(size=50)
    words = rng.integers(5, 50, size=50).astype(float)
    for kind, v, w in (("mean", binary, None), ("mean", scores, None), ("weighted_perplexity", -words * 3, words)):
        res = _pair(kind, v, v, weights=None if w is None else [w, w])
        assert res.diff == 0 and res.ci_low == 0 and res.ci_high == 0 and res.p_value == 1.0
        assert stats.verdict(res.diff, res.p_value, 0.05, True) == "indistinguishable"
        assert stats.verdict(res.diff, res.p_value, 0.05, False) == "indistinguishable"


def test_the_demo_sizes_words_vs_base_and_two_items_above():
    """mergelab_categories has 16 items: 16/16 against 4/16 is a difference; 6/16 against 4/16 is not."""
    base = np.r_[np.ones(4), np.zeros(12)]
    words = np.ones(16)
    res = _pair("mean", words, base)
    assert stats.verdict(res.diff, res.p_value, 0.05, True) == "better"
    two_more = base.copy()
    two_more[[4, 5]] = 1
    res = _pair("mean", two_more, base)
    assert res.p_value == pytest.approx(0.5) and stats.verdict(res.diff, res.p_value, 0.05, True) == "indistinguishable"


def test_corrections():
    p = [0.01, 0.04, 0.03, 0.2, math.nan]
    holm = stats.adjust(p, "holm")
    # Holm by hand: sorted 0.01, 0.03, 0.04, 0.2 times 4, 3, 2, 1, made monotone
    assert np.allclose(holm[:4], [0.04, 0.09, 0.09, 0.2]) and math.isnan(holm[4])
    assert np.allclose(stats.adjust(p, "bh")[:4], sps.false_discovery_control([0.01, 0.04, 0.03, 0.2]))
    assert np.allclose(stats.adjust(p, "none")[:4], p[:4])
    with pytest.raises(ValueError, match="unknown correction"):
        stats.adjust(p, "bonferroni")


def test_verdicts_respect_direction_and_versus_parents():
    assert stats.verdict(-3.0, 0.001, 0.05, higher_is_better=False) == "better"
    assert stats.verdict(0.2, 0.001, 0.05, higher_is_better=True) == "better"
    assert stats.verdict(0.2, 0.001, 0.05, higher_is_better=False) == "worse"
    assert stats.verdict(0.2, 0.06, 0.05, higher_is_better=True) == "indistinguishable"
    assert stats.versus_parents(["better", "better"]) == "better than all"
    assert stats.versus_parents(["worse", "worse"]) == "worse than all"
    assert stats.versus_parents(["better", "worse"]) == "between"
    assert stats.versus_parents(["better", "indistinguishable"]) == "undecided"
    assert stats.versus_parents(["better", ""]) == ""


def test_resamples_depend_on_the_seed_and_task_only():
    a = stats.task_rng(0, "t1").integers(0, 1000, 5)
    assert (a == stats.task_rng(0, "t1").integers(0, 1000, 5)).all()
    assert not (a == stats.task_rng(1, "t1").integers(0, 1000, 5)).all()
    assert not (a == stats.task_rng(0, "t2").integers(0, 1000, 5)).all()


def test_t_interval_equals_scipy():
    x = [0.61, 0.64, 0.58, 0.66, 0.6]
    mean, lo, hi, n = stats.t_interval(x, 0.05)
    ref = sps.t.interval(0.95, len(x) - 1, loc=np.mean(x), scale=sps.sem(x))
    assert n == 5 and mean == pytest.approx(np.mean(x)) and (lo, hi) == pytest.approx(ref)


def test_stratified_resamples_keep_each_stratum_s_size():
    """A group task's bootstrap draws within each subtask as many items as it has."""
    import numpy as np

    strata = np.array(["a"] * 5 + ["b"] * 3 + ["a"] * 2)
    for counts in stats.count_blocks(10, 50, np.random.default_rng(0), strata):
        assert (counts[:, strata == "a"].sum(axis=1) == 7).all()
        assert (counts[:, strata == "b"].sum(axis=1) == 3).all()
    plain = next(stats.count_blocks(10, 50, np.random.default_rng(0)))
    assert (plain.sum(axis=1) == 10).all() and not (plain[:, strata == "b"].sum(axis=1) == 3).all()
