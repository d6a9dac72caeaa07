"""Tables, figures and report: the numbers users load equal the tools' own outputs."""

from __future__ import annotations

import json
import math
import os
from dataclasses import replace
from pathlib import Path

import pandas as pd
import pytest

from conftest import REPO, SNAKEMAKE, base_env, catalogue_of, planned_jobs, snakemake, unloadable_copy, write_config
from mergelab.analysis import compare, harness_rows, leaderboard
from mergelab.analysis import organize as org
from mergelab.analysis.kendall import kendall_table
from mergelab.analysis.normalised import MEAN_ROW, normalised_scores
from mergelab.analysis.plots import best_parent_rows
from mergelab.analysis.stats import aggregation, metric_value

FIXTURES = REPO / "tests" / "data" / "harness_results"
CATALOGUE = catalogue_of(
    {
        "model_order": ["base", "ab_task_arithmetic_w0.5"],
        "models": {
            "base": {"role": "base"},
            "ab_task_arithmetic_w0.5": {
                "role": "merge",
                "recipe": "ab",
                "method": "task_arithmetic",
                "parameters": {"weight": 0.5},
                "parents": ["alpha"],
                "base": "base",
            },
        },
    }
)
TASKS = ["mergelab_demo", "test_mc", "ifeval_like"]


def fixture_files():
    return {m: {t: str(FIXTURES / m / f"{t}.json") for t in TASKS} for m in CATALOGUE.model_order}


@pytest.fixture(scope="module")
def harness():
    return org.harness_table(fixture_files(), CATALOGUE)


def test_every_number_of_the_json_is_in_the_table(harness):
    checked = 0
    for model, tasks in fixture_files().items():
        for harness_task, path in tasks.items():
            res = json.loads(Path(path).read_text())
            entries = {**res.get("groups", {}), **res["results"]}
            for task, metrics in entries.items():
                for key, value in metrics.items():
                    if "," not in key or "_stderr" in key or isinstance(value, (dict, list)):
                        continue
                    metric, filt = key.split(",")
                    row = harness[
                        (harness["model"] == model)
                        & (harness["harness_task"] == harness_task)
                        & (harness["task"] == task)
                        & (harness["metric"] == metric)
                        & (harness["filter"] == filt)
                    ]
                    assert len(row) == 1, (model, task, key)
                    row = row.iloc[0]
                    assert row["value"] == pytest.approx(float(value)), (model, task, key)
                    stderr = metrics.get(f"{metric}_stderr,{filt}")
                    if isinstance(stderr, (int, float)):
                        assert row["stderr"] == pytest.approx(float(stderr))
                    else:
                        assert math.isnan(row["stderr"])  # "N/A" stays missing, not zero
                    n = res["n-samples"].get(task, {}).get("effective", metrics.get("sample_len"))
                    assert row["n_samples"] == n and row["n_shot"] == res["n-shot"][task]
                    assert str(row["version"]) == str(res["versions"][task])
                    checked += 1
    assert checked == len(harness) and checked > 30


def test_groups_subtasks_filters_and_ifeval_metrics_survive(harness):
    base = harness[harness["model"] == "base"]
    group = base[base["task"] == "test_mc"]
    assert set(group["metric"]) == {"acc", "acc_norm"} and group["is_group"].all()
    subs = base[(base["harness_task"] == "test_mc") & (base["group"] == "test_mc")]
    assert set(subs["task"]) == {"mergelab_antonyms", "test_capitals"}
    arith = base[base["task"] == "mergelab_arithmetic"]
    assert list(zip(arith["metric"], arith["filter"])) == [("exact_match", "first-word")]
    ifeval = base[base["task"] == "ifeval_like"]
    assert set(ifeval["metric"]) == {
        "prompt_level_strict_acc",
        "inst_level_strict_acc",
        "prompt_level_loose_acc",
        "inst_level_loose_acc",
    }
    ppl = base[base["task"] == "mergelab_text_ppl"]
    assert not ppl["higher_is_better"].any()


def test_one_documented_primary_metric_per_task(harness):
    primary = harness[harness["primary"]]
    assert not primary.duplicated(["model", "harness_task", "task"]).any()
    chosen = {r.task: (r.metric, r.filter) for r in primary[primary["model"] == "base"].itertuples()}
    assert chosen["test_mc"] == ("acc_norm", "none")
    assert chosen["ifeval_like"] == ("prompt_level_strict_acc", "none")
    assert chosen["mergelab_arithmetic"] == ("exact_match", "first-word")
    assert chosen["mergelab_text_ppl"] == ("word_perplexity", "none")
    assert harness_rows.primary_choice([("exact_match", "flexible-extract"), ("exact_match", "strict-match")]) == (
        "exact_match",
        "strict-match",
    )


def leaderboard_of(harness, catalogue, items=None):
    comparisons = compare.merge_comparisons(harness, items or {}, catalogue)
    return leaderboard.leaderboard(
        leaderboard.leaderboard_table(harness, None, comparisons, catalogue), comparisons, catalogue
    )


def test_missing_result_is_missing_not_zero(tmp_path):
    files = fixture_files()
    files["ab_task_arithmetic_w0.5"]["test_mc"] = str(tmp_path / "nowhere.json")
    table = org.harness_table(files, CATALOGUE)
    gap = table[(table["model"] == "ab_task_arithmetic_w0.5") & (table["harness_task"] == "test_mc")]
    assert len(gap) == 1 and gap["status"].iloc[0] == "missing" and math.isnan(gap["value"].iloc[0])
    board = leaderboard_of(table, CATALOGUE)
    lines = board.splitlines()
    merge_line = next(line for line in lines if line.startswith("| ab_task_arithmetic_w0.5"))
    header = lines[2].strip("|").split(" | ")
    test_mc = header.index("test_mc (acc_norm)")
    assert merge_line.strip("|").split(" | ")[test_mc].strip() == "–"
    # the gap grows no column of its own (issue 15: "test_mc ()"), whichever model comes first
    assert [h for h in header if h.startswith("test_mc")] == ["test_mc (acc_norm)"]
    first = replace(CATALOGUE, model_order=["ab_task_arithmetic_w0.5"] + CATALOGUE.model_order[:-1])
    files = {m: files[m] for m in first.model_order}
    table = org.harness_table(files, first)
    board = leaderboard_of(table, first)
    assert [h for h in board.splitlines()[2].strip("|").split(" | ") if h.startswith("test_mc")] == [
        "test_mc (acc_norm)"
    ]


# ---------------------------------------------------------------- Holmes aggregation by hand

SCORES = {  # model -> dataset -> two seeds' scores
    "A": {"d1": (0.4, 0.6), "d2": (0.8, 0.8), "d3": (0.1, 0.1)},
    "B": {"d1": (0.7, 0.7), "d2": (0.7, 0.9), "d3": (0.2, 0.4)},
    "C": {"d1": (0.5, 0.7), "d2": (0.4, 0.4), "d3": (0.3, 0.1)},
}
MANIFEST = [
    {
        "probing_dataset": "d1",
        "competence": "syntax",
        "phenomenon": "p1",
        "probe_task_type": "SENTENCE",
        "num_labels": "2",
    },
    {
        "probing_dataset": "d2",
        "competence": "syntax",
        "phenomenon": "p2",
        "probe_task_type": "SENTENCE",
        "num_labels": "3",
    },
    {
        "probing_dataset": "d3",
        "competence": "semantics",
        "phenomenon": "p3",
        "probe_task_type": "SENTENCE",
        "num_labels": "1",
    },
]
HOLMES_CATALOGUE = catalogue_of({"models": {m: {"role": "parent"} for m in SCORES}})


@pytest.fixture()
def holmes(tmp_path):
    files = {}
    for model, per in SCORES.items():
        rows = [
            {
                "probing_dataset": d,
                "model_name": model,
                "seed": s,
                "score": v,
                "metric": "pearson" if d == "d3" else "macro_f1",
                "objective": "reference",
                "encoding": "full",
            }
            for d, vals in per.items()
            for s, v in enumerate(vals)
        ]
        path = tmp_path / f"{model}.csv"
        pd.DataFrame(rows).to_csv(path, index=False)
        files[model] = str(path)
    return org.holmes_table(files, MANIFEST, HOLMES_CATALOGUE)


def test_seed_means_and_sd(holmes):
    row = holmes[(holmes["model"] == "A") & (holmes["probing_dataset"] == "d1")].iloc[0]
    assert row["mean"] == pytest.approx(0.5) and row["sd"] == pytest.approx(0.1414213562)
    assert row["n_seeds"] == 2 and row["metric"] == "macro_f1" and row["competence"] == "syntax"
    assert holmes[holmes["probing_dataset"] == "d3"]["metric"].eq("pearson").all()
    from scipy import stats as sps

    ref = sps.t.interval(0.95, 1, loc=0.5, scale=sps.sem([0.4, 0.6]))  # the t-interval over the 2 seeds
    assert (row["ci_low"], row["ci_high"]) == pytest.approx(ref)


def test_competence_means_keep_f1_and_pearson_apart_and_winning_rates(holmes):
    comp = org.competence_table(holmes, HOLMES_CATALOGUE).set_index(["model", "competence"])
    # dataset means: d1 A .5 B .7 C .6 | d2 A .8 B .8 C .4 | d3 A .1 B .3 C .2
    assert comp.loc[("A", "syntax"), "mean_f1"] == pytest.approx((0.5 + 0.8) / 2)
    assert math.isnan(comp.loc[("A", "syntax"), "mean_pearson"])
    assert comp.loc[("A", "semantics"), "mean_pearson"] == pytest.approx(0.1)
    assert math.isnan(comp.loc[("A", "semantics"), "mean_f1"])
    assert comp.loc[("B", "overall"), "mean_f1"] == pytest.approx(0.75)
    assert comp.loc[("B", "overall"), "mean_pearson"] == pytest.approx(0.3)
    # ranks (max for ties, 1 = worst), normalised per dataset:
    # d1: A 0, B 1, C .5 | d2: A 1, B 1, C 0 (A and B tie at rank 3) | d3: A 0, B 1, C .5
    expected = {
        ("A", "syntax"): 50.0,
        ("B", "syntax"): 100.0,
        ("C", "syntax"): 25.0,
        ("A", "semantics"): 0.0,
        ("B", "semantics"): 100.0,
        ("C", "semantics"): 50.0,
        ("A", "overall"): 100 / 3,
        ("B", "overall"): 100.0,
        ("C", "overall"): 100 / 3,
    }
    for key, rate in expected.items():
        assert comp.loc[key, "winning_rate"] == pytest.approx(rate), key
    assert comp.loc[("C", "overall"), "winning_rate"] != pytest.approx(
        (comp.loc[("C", "syntax"), "winning_rate"] + comp.loc[("C", "semantics"), "winning_rate"]) / 2
    )


def headline_rows(task, metric, values, higher_is_better=True):
    """Headline harness rows of models A, B, C on one task."""
    return [
        {
            "model": m,
            "harness_task": task,
            "task": task,
            "primary": True,
            "metric": metric,
            "filter": "none",
            "value": v,
            "stderr": 0.0,
            "higher_is_better": higher_is_better,
            "status": "ok",
        }
        for m, v in zip("ABC", values)
    ]


def test_unknown_competence_is_in_the_dataset_table_and_out_of_the_competence_means(tmp_path, caplog):
    """Issue 16: a dataset workflow/holmes/probes.csv does not know takes the user's mapping, else
    competence "unknown": a row of holmes.csv, but in no competence mean nor winning rate."""
    files = {}
    for model, per in SCORES.items():
        extra = {"own1": (0.9, 0.9), "own2": (0.3, 0.5)} if model == "A" else {"own1": (0.1, 0.1), "own2": (0.6, 0.6)}
        rows = [
            {"probing_dataset": d, "seed": s, "score": v, "objective": "reference", "encoding": "full"}
            for d, vals in {**per, **extra}.items()
            for s, v in enumerate(vals)
        ]
        files[model] = str(tmp_path / f"{model}.csv")
        pd.DataFrame(rows).to_csv(files[model], index=False)
    own = [
        {"probing_dataset": n, "competence": "", "phenomenon": "", "probe_task_type": "SENTENCE", "num_labels": "2"}
        for n in ("own1", "own2")
    ]
    mapping = {"own2": {"competence": "syntax", "phenomenon": "ours"}, "d1": {"competence": "x", "phenomenon": "y"}}
    table = org.holmes_table(files, MANIFEST + own, HOLMES_CATALOGUE, mapping)
    labels = table.drop_duplicates("probing_dataset").set_index("probing_dataset")
    assert labels.loc["own1", ["competence", "phenomenon"]].tolist() == ["unknown", "unknown"]
    assert labels.loc["own2", ["competence", "phenomenon"]].tolist() == ["syntax", "ours"]
    assert labels.loc["d1", ["competence", "phenomenon"]].tolist() == ["syntax", "p1"]  # probes.csv wins
    assert (table[table["probing_dataset"] == "own1"]["status"] == "ok").all()
    with caplog.at_level("WARNING", logger="mergelab.organize"):
        comp = org.competence_table(table, HOLMES_CATALOGUE)
    assert "1 Holmes dataset(s) of unknown competence left out" in caplog.text and "own1" in caplog.text
    assert "unknown" not in set(comp["competence"])
    without = org.competence_table(table[table["probing_dataset"] != "own1"], HOLMES_CATALOGUE)
    pd.testing.assert_frame_equal(comp, without)
    assert comp.set_index(["model", "competence"]).loc[("A", "overall"), "n_f1"] == 3  # d1, d2, own2
    # the per-dataset Kendall table keeps it
    head = pd.DataFrame(headline_rows("t1", "acc", (0.2, 0.9, 0.5)))
    assert "own1" in set(kendall_table(head, table, comp, "dataset")["holmes"])


def test_kendall_tau_equals_scipy(holmes, harness):
    from scipy.stats import kendalltau

    comp = org.competence_table(holmes, HOLMES_CATALOGUE)
    head = pd.DataFrame(
        headline_rows("t1", "acc", (0.2, 0.9, 0.5))
        + headline_rows("ppl", "word_perplexity", (30.0, 10.0, 20.0), higher_is_better=False)
    )
    table = kendall_table(head, holmes, comp, "competence").set_index(["holmes", "harness_task"])
    wr = comp[comp["competence"] == "overall"].set_index("model")["winning_rate"]
    tau, p = kendalltau(wr[["A", "B", "C"]], [0.2, 0.9, 0.5])
    assert table.loc[("overall", "t1"), "tau"] == pytest.approx(tau)
    assert table.loc[("overall", "t1"), "p_value"] == pytest.approx(p)
    tau, p = kendalltau(wr[["A", "B", "C"]], [-30.0, -10.0, -20.0])  # lower perplexity is better
    assert table.loc[("overall", "ppl"), "tau"] == pytest.approx(tau) and table.loc[("overall", "ppl"), "n"] == 3
    per_dataset = kendall_table(head, holmes, comp, "dataset").set_index(["holmes", "harness_task"])
    tau, p = kendalltau([0.5, 0.7, 0.6], [0.2, 0.9, 0.5])
    assert per_dataset.loc[("d1", "t1"), "tau"] == pytest.approx(tau)
    assert per_dataset.loc[("d1", "t1"), "p_value"] == pytest.approx(p)


STATS_CATALOGUE = catalogue_of(
    {
        "model_order": ["base", "words", "math", "m_up2", "m_all", "m_ppl"],
        "models": {
            "base": {"role": "base"},
            "words": {"role": "parent"},
            "math": {"role": "parent"},
            **{
                m: {"role": "merge", "recipe": "r", "method": "ties", "parents": ["words", "math"], "base": "base"}
                for m in ("m_up2", "m_all", "m_ppl")
            },
        },
        "stats": {"alpha": 0.05, "bootstrap": 2000, "correction": "holm", "seed": 0},
    }
)


def stats_campaign():
    """16 binary items (cats: words 16/16, math and base 4/16, m_up2 two items above them, m_all
    16/16) and 30 documents of a perplexity task (m_ppl clearly lower than every other model)."""
    import numpy as np

    rng = np.random.default_rng(0)
    cats = {"base": [1] * 4 + [0] * 12, "math": [0] * 12 + [1] * 4, "words": [1] * 16}
    cats["m_up2"] = [1] * 6 + [0] * 10
    cats["m_all"] = [1] * 16
    cats["m_ppl"] = cats["base"]
    words = rng.integers(10, 60, size=30).astype(float)
    per_word = {m: 4.0 + rng.normal(0, 0.05, 30) for m in ("base", "words", "math", "m_up2", "m_all")}
    per_word["m_ppl"] = per_word["base"] - 0.5
    items, rows = {}, []
    for m in STATS_CATALOGUE.model_order:
        a = pd.DataFrame({"task": "cats", "doc_id": range(16), "filter": "none", "metric": "acc"})
        a = a.assign(value=np.asarray(cats[m], float), weight=1.0, harness_task="cats")
        b = pd.DataFrame({"task": "ppl", "doc_id": range(30), "filter": "none", "metric": "word_perplexity"})
        b = b.assign(value=-per_word[m] * words, weight=words, harness_task="ppl")
        items[m] = pd.concat([a, b], ignore_index=True)
        for t, metric, hib in (("cats", "acc", True), ("ppl", "word_perplexity", False)):
            rows.append(
                {"model": m, "harness_task": t, "task": t, "metric": metric, "filter": "none", "primary": True}
                | {"higher_is_better": hib, "value": 0.0, "stderr": 0.0, "status": "ok"}
            )
    return pd.DataFrame(rows, columns=harness_rows.HARNESS_COLUMNS), items


def test_merge_comparisons_pair_every_merge_with_its_parents_and_base():
    from mergelab.analysis import stats

    harness, items = stats_campaign()
    table = compare.merge_comparisons(harness, items, STATS_CATALOGUE)
    assert list(table.columns[:5]) == ["model", "parent", "relation", "recipe", "method"]
    assert len(table) == 3 * 3 * 2  # merges x (2 parents + base) x tasks
    row = table.set_index(["model", "parent", "task"])
    up2 = row.loc[("m_up2", "base", "cats")]
    assert (up2["merge_value"], up2["parent_value"], up2["n"]) == (6 / 16, 4 / 16, 16)
    assert up2["verdict"] == "indistinguishable" and up2["test"].startswith("exact McNemar")
    assert row.loc[("m_all", "math", "cats"), "verdict"] == "better"
    assert row.loc[("m_all", "words", "cats"), "verdict"] == "indistinguishable"  # identical items
    assert row.loc[("m_all", "words", "cats"), "p_value"] == 1.0
    assert row.loc[("m_all", "base", "cats"), "relation"] == "base"
    assert row.loc[("m_all", "math", "cats"), "versus_parents"] == "undecided"  # = words, > math
    ppl = row.loc[("m_ppl", "words", "ppl")]  # lower perplexity: better, from the bootstrap over documents
    assert ppl["diff"] < 0 and ppl["ci_high"] < 0 and ppl["verdict"] == "better"
    assert ppl["test"] == stats.TESTS["bootstrap"] and ppl["versus_parents"] == "better than all"
    assert ppl["merge_value"] == pytest.approx(
        math.exp(-items["m_ppl"]["value"][16:].sum() / items["m_ppl"]["weight"][16:].sum())
    )
    # Holm across the whole campaign; the settings are in every row
    assert table["p_adjusted"].tolist() == pytest.approx(stats.adjust(table["p_value"], "holm").tolist())
    assert set(table["correction"]) == {"holm"} and set(table["alpha"]) == {0.05}
    board = leaderboard_of(harness, STATS_CATALOGUE, items)
    lines = {line.split("|")[1].strip(): line for line in board.splitlines() if line.startswith("| m_")}
    assert "▲" in lines["m_ppl"].split("|")[4] and not any(mark in lines["m_up2"] for mark in "▲●▼")
    assert "Holm correction" in board and f"{len(table)} harness comparisons" in board


def test_comparisons_follow_the_configs_order_of_merges():
    """The catalogue's mapping reaches the job with its keys sorted (job params): the rows follow
    model_order, as the leaderboard's do."""
    harness, items = stats_campaign()
    order = ["base", "words", "math", "m_up2", "m_ppl", "m_all"]  # not alphabetical
    catalogue = replace(STATS_CATALOGUE, model_order=order, models=dict(sorted(STATS_CATALOGUE.models.items())))
    table = compare.merge_comparisons(harness, items, catalogue)
    assert list(dict.fromkeys(table["model"])) == ["m_up2", "m_ppl", "m_all"]


def test_identical_models_are_indistinguishable_in_the_tables():
    harness, items = stats_campaign()
    same = {m: items["base"] for m in items}
    table = compare.merge_comparisons(harness, same, STATS_CATALOGUE)
    assert set(table["verdict"]) == {"indistinguishable"} and (table["diff"] == 0).all()
    assert set(table["versus_parents"]) == {"undecided"}


GROUP_CATALOGUE = catalogue_of(
    {
        "model_order": ["base", "p1", "p2", "m"],
        "models": {
            "base": {"role": "base"},
            "p1": {"role": "parent"},
            "p2": {"role": "parent"},
            "m": {"role": "merge", "recipe": "r", "method": "ties", "parents": ["p1", "p2"], "base": "base"},
        },
        "stats": {"alpha": 0.05, "bootstrap": 2000, "correction": "holm", "seed": 0},
    }
)


def group_campaign(by_size: bool = True):
    """A group task "grp" of two subtasks (s1: 60 items, s2: 20), as lm-eval reports one (mmlu):
    per-item results of the subtasks only, and the group's own value in the table, the mean over
    all items (weighted by size) or, with by_size False, the mean of the subtasks' means. The
    merge m gets 57/60 and 12/20 right, every other model 30/60 and 10/20."""
    import numpy as np

    right = {"s1": (60, 30, 57), "s2": (20, 10, 12)}  # items, right answers of the others, of m
    items, rows = {}, []
    for m in GROUP_CATALOGUE.model_order:
        frames, means = [], {}
        for sub, (n, other, merge) in right.items():
            k = merge if m == "m" else other
            v = np.asarray([1.0] * k + [0.0] * (n - k))
            frames.append(pd.DataFrame({"task": sub, "doc_id": range(n), "filter": "none", "metric": "acc"}))
            frames[-1] = frames[-1].assign(value=v, weight=1.0, harness_task="grp")
            means[sub] = v.mean()
        items[m] = pd.concat(frames, ignore_index=True)
        group = items[m]["value"].mean() if by_size else sum(means.values()) / len(means)
        for task, value in (("grp", group), *means.items()):
            rows.append(
                {"model": m, "harness_task": "grp", "task": task, "metric": "acc", "filter": "none", "primary": True}
                | {"higher_is_better": True, "value": value, "stderr": 0.01, "status": "ok"}
            )
    return pd.DataFrame(rows, columns=harness_rows.HARNESS_COLUMNS), items


@pytest.mark.parametrize("by_size", [True, False])
def test_a_group_task_is_compared_by_its_own_value_over_all_its_subtasks(by_size):
    """mmlu, leaderboard: the per-item results are the subtasks'; the group's own row pairs the
    items of all of them (resampled within each subtask), with the group's aggregation."""
    from mergelab.analysis import plots, stats

    harness, items = group_campaign(by_size)
    table = compare.merge_comparisons(harness, items, GROUP_CATALOGUE)
    row = table.set_index(["parent", "task"])
    head = row.loc[("p1", "grp")]
    expected = 69 / 80 if by_size else (57 / 60 + 12 / 20) / 2
    assert head["merge_value"] == pytest.approx(expected) and head["n"] == 80
    assert head["parent_value"] == pytest.approx(0.5) and head["verdict"] == "better"
    assert head["ci_low"] > 0 and head["versus_parents"] == "better than all"
    assert head["test"].endswith("the items of its 2 subtasks, resampled within each")
    assert head["test"].startswith("exact McNemar" if by_size else "paired sign-flip")
    # the configured tasks are one family, the subtasks another (mmlu's 57 dilute no headline)
    headline = table["task"] == "grp"
    assert headline.sum() == 3 and leaderboard._count(table) == 3
    for family in (headline, ~headline):
        assert table.loc[family, "p_adjusted"].tolist() == pytest.approx(
            stats.adjust(table.loc[family, "p_value"], "holm").tolist()
        )
    iv = compare.model_intervals(harness, items, GROUP_CATALOGUE).set_index(["model", "task"])
    assert iv.loc[("m", "grp"), "value"] == pytest.approx(expected) and iv.loc[("m", "grp"), "n"] == 80
    assert iv.loc[("m", "grp"), "ci_low"] < expected < iv.loc[("p1", "grp"), "ci_low"] + 1
    org.add_intervals(harness, iv.reset_index())
    board = leaderboard.leaderboard(
        leaderboard.leaderboard_table(harness, None, table, GROUP_CATALOGUE), table, GROUP_CATALOGUE
    )
    merge_line = next(line for line in board.splitlines() if line.startswith("| m |"))
    assert "▲" in merge_line and "[" in merge_line and "±" not in merge_line
    assert list(plots.best_parent_rows(table)["harness_task"]) == ["grp"]


def test_a_group_whose_value_its_items_do_not_give_gets_no_headline_test():
    """A group of groups, or one aggregated otherwise: no made-up interval; its subtasks stay."""
    harness, items = group_campaign()
    harness.loc[harness["task"] == "grp", "value"] = 0.123
    table = compare.merge_comparisons(harness, items, GROUP_CATALOGUE)
    assert "grp" not in set(table["task"]) and set(table["task"]) == {"s1", "s2"}
    assert "grp" not in set(compare.model_intervals(harness, items, GROUP_CATALOGUE)["task"])


def test_model_intervals_hold_the_value_of_the_items():
    harness, items = stats_campaign()
    iv = compare.model_intervals(harness, items, STATS_CATALOGUE).set_index(["model", "task"])
    words = iv.loc[("words", "cats")]
    assert (words["value"], words["ci_low"], words["ci_high"], words["n"]) == (1.0, 1.0, 1.0, 16)
    base = iv.loc[("base", "cats")]
    assert base["ci_low"] < 0.25 < base["ci_high"]
    org.add_intervals(harness, iv.reset_index())
    assert harness["ci_low"].notna().all()


def test_outcomes_figure_of_a_partial_build_is_a_note(tmp_path):
    """Blank verdicts read back from the CSV (a parent's results missing) are NaN:
    the figure says there is nothing to count instead of crashing."""
    import io

    from mergelab.analysis import plots

    header = ",".join(compare.COMPARISON_COLUMNS)
    line = "ab_linear_w1,alpha,parent,ab,linear,cats,cats,acc,none,True,0,,,,,,,,,holm,0.05,,"
    comparisons = pd.read_csv(io.StringIO(header + "\n" + line + "\n"))
    assert comparisons["versus_parents"].isna().all()
    plots.outcomes(comparisons, tmp_path / "merge_outcomes")
    assert pd.read_csv(tmp_path / "merge_outcomes.csv")["note"].tolist() == ["no merge with evaluated parents"]
    assert (tmp_path / "merge_outcomes.png").stat().st_size > 0
    plots.merge_vs_parents(comparisons, tmp_path / "merge_vs_parents")
    assert (tmp_path / "merge_vs_parents.png").stat().st_size > 0


# ---------------------------------------------------------------- workflow

# The merges the embedded default (config/experiment.yaml) evaluates: one recipe's methods (a slerp
# sweep, task vectors over the base, a MoE), a passthrough stack of no base, and the search's best
# trial (best_trial()).
DEFAULT_MERGES = [
    "math-words_linear_w1",
    "math-words_slerp_t0.25",
    "math-words_slerp_t0.5",
    "math-words_slerp_t0.75",
    "math-words_model_stock",
    "math-words_task_arithmetic_w1",
    "math-words_ties_d0.5_w1",
    "math-words_dare_ties_d0.5_w1_s0",
    "math-words_moe_hidden_e2",
    "stack",
]
DEFAULT_TASKS = ("mergelab_arithmetic", "mergelab_categories", "mergelab_text_ppl")


@pytest.fixture(scope="module")
def campaign(default_run):
    """The embedded default's finished campaign (conftest's default_run: per_model harness jobs on
    the three demo tasks, Holmes' demo set, a sweep, a search), read, never changed, by these tests:
    its workdir and its merges, the search's best trial last."""
    wd, _ = default_run
    import yaml

    best = yaml.safe_load((wd / "results/search/tune/best.yaml").read_text())["best"]
    return wd, DEFAULT_MERGES + [b["model"] for b in best]


def declared_plots(wd):
    return sorted(p.relative_to(wd).as_posix() for p in (wd / "results" / "plots").rglob("*") if p.is_file())


@pytest.mark.workflow
def test_every_figure_exists_and_its_data_equals_the_tables(campaign):
    wd, merges = campaign
    plots = declared_plots(wd)
    stems = {p.rsplit(".", 1)[0] for p in plots}
    expected = {
        "results/plots/harness/mergelab_arithmetic",
        "results/plots/harness/mergelab_categories",
        "results/plots/harness/mergelab_text_ppl",
        "results/plots/holmes_competences",
        "results/plots/kendall_tau_competences",
        "results/plots/kendall_tau_datasets",
        "results/plots/merge_vs_parents",
        "results/plots/merge_outcomes",
        "results/plots/normalised_scores",
        "results/plots/search/tune",
        "results/plots/sweep/math-words",
    }
    assert stems == expected
    for stem in stems:
        for ext in ("png", "svg", "csv"):
            assert (wd / f"{stem}.{ext}").stat().st_size > 100, f"{stem}.{ext}"
    tables = wd / "results" / "tables"
    harness = pd.read_csv(tables / "harness.csv")
    head = harness_rows.headline(harness).set_index("model")
    for task in DEFAULT_TASKS:
        plotted = pd.read_csv(wd / f"results/plots/harness/{task}.csv").set_index("model")
        assert len(plotted) == 3 + len(merges)  # base, math, words and the merges
        ref = head[head["harness_task"] == task]
        for model, row in plotted.iterrows():
            assert row["value"] == pytest.approx(ref.loc[model, "value"])
    comp = pd.read_csv(tables / "holmes_competences.csv")
    plotted = pd.read_csv(wd / "results/plots/holmes_competences.csv")
    merged = plotted.merge(comp, on=["model", "competence"], suffixes=("_plot", ""))
    assert len(merged) == len(plotted) > 0
    assert (merged["mean_f1_plot"] - merged["mean_f1"]).abs().max() < 1e-12
    comparisons = pd.read_csv(tables / "merge_comparisons.csv")
    forest = pd.read_csv(wd / "results/plots/merge_vs_parents.csv")  # each merge against its best parent
    expected = best_parent_rows(comparisons).reset_index(drop=True)
    pd.testing.assert_frame_equal(forest, expected, check_dtype=False)
    holmes_tasks = comparisons.loc[comparisons["task"].str.startswith("holmes: "), "task"].nunique()
    assert holmes_tasks == 6  # the five competences and overall
    assert len(forest) == len(merges) * (len(DEFAULT_TASKS) + holmes_tasks)
    normalised = pd.read_csv(tables / "normalised_scores.csv")
    pd.testing.assert_frame_equal(pd.read_csv(wd / "results/plots/normalised_scores.csv"), normalised)
    assert set(normalised["model"]) == set(merges) - {"stack"}  # the merges over a base
    holmes = pd.read_csv(tables / "holmes.csv")
    kt = kendall_table(harness, holmes, comp, "competence")
    plotted = pd.read_csv(wd / "results/plots/kendall_tau_competences.csv")
    pd.testing.assert_frame_equal(plotted, kt, check_dtype=False)
    sweep = pd.read_csv(wd / "results/plots/sweep/math-words.csv")
    assert set(sweep["x"]) == {0.25, 0.5, 0.75} and set(sweep["method"]) == {"slerp"}
    parquet = pd.read_parquet(tables / "harness.parquet")
    assert parquet["value"].tolist() == pytest.approx(harness["value"].tolist(), nan_ok=True)


@pytest.mark.workflow
def test_tables_hold_the_campaign(campaign):
    """(That the finished campaign plans nothing more is test_repo.py's
    test_embedded_default_runs_offline, on the same campaign.)"""
    wd, merges = campaign
    tables = wd / "results" / "tables"
    harness = pd.read_csv(tables / "harness.csv")
    roles = dict(zip(harness["model"], harness["role"]))
    assert roles == {"base": "base", "math": "parent", "words": "parent", **{m: "merge" for m in merges}}
    ta = harness[harness["model"] == "math-words_task_arithmetic_w1"].iloc[0]
    assert (
        ta["recipe"] == "math-words"
        and ta["method"] == "task_arithmetic"
        and json.loads(ta["parameters"]) == {"weight": 1.0}
    )
    for model in ("math", "math-words_slerp_t0.25"):
        res = json.loads((wd / f"results/harness/{model}/mergelab_categories.json").read_text())
        row = harness[(harness["model"] == model) & (harness["metric"] == "acc_norm")].iloc[0]
        assert row["value"] == res["results"]["mergelab_categories"]["acc_norm,none"]
        assert row["batch_size"] == "16" or row["batch_size"] == 16
    holmes = pd.read_csv(tables / "holmes.csv")
    assert len(holmes) == (3 + len(merges)) * 8 and (holmes["status"] == "ok").all()
    prov = json.loads((tables / "provenance.json").read_text())
    assert prov["tool_versions"]["mergekit"] == "0.1.5"
    assert prov["models"]["math-words_slerp_t0.25"]["mergekit_config"]["parameters"] == {"t": 0.25}
    board = (tables / "leaderboard.md").read_text()
    merge_lines = [
        line for line in board.splitlines() if line.startswith("| ") and line.split("|")[2].strip() == "merge"
    ]
    assert [line.split("|")[1].strip() for line in merge_lines] == merges
    comparisons = pd.read_csv(tables / "merge_comparisons.csv")
    marks = {"better than all": "▲", "between": "●", "worse than all": "▼"}
    for line in merge_lines:  # a mark exactly where the paired comparisons say so
        model = line.split("|")[1].strip()
        for task, cell in zip(DEFAULT_TASKS, line.split("|")[3:6]):
            sel = comparisons[(comparisons["model"] == model) & (comparisons["task"] == task)]
            said = sel["versus_parents"].fillna("").iloc[0]
            assert [m for m in "▲●▼" if m in cell] == ([marks[said]] if said in marks else []), (line, said)
            assert "[" in cell, cell  # the model's interval
    # merge x (math, words, base) x task, each from the per-item results of both models; stack (layers
    # of base and of math, a passthrough of no base) against those two, as parents
    holmes_rows = comparisons["task"].str.startswith("holmes: ")
    assert set(comparisons[holmes_rows]["test"]) == {compare.HOLMES_TEST}
    assert (~holmes_rows).sum() == ((len(merges) - 1) * 3 + 2) * len(DEFAULT_TASKS)
    assert set(comparisons["relation"]) == {"parent", "base"}
    stack = comparisons[(comparisons["model"] == "stack") & ~holmes_rows]
    assert set(stack["parent"]) == {"base", "math"} and set(stack["relation"]) == {"parent"}
    for r in comparisons[~holmes_rows].itertuples():
        for model, value in ((r.model, r.merge_value), (r.parent, r.parent_value)):
            items = pd.read_parquet(wd / f"results/harness/{model}/{r.task}.items.parquet")
            sel = items[(items["metric"] == r.metric) & (items["filter"] == r.filter)]
            assert len(sel) == r.n and metric_value(aggregation(r.metric), sel["value"], sel["weight"]) == (
                pytest.approx(value)
            )
        row = harness[(harness["model"] == r.model) & (harness["task"] == r.task) & (harness["metric"] == r.metric)]
        assert row["value"].iloc[0] == pytest.approx(r.merge_value)  # the table lm-eval's JSON gives
        assert r.ci_low <= r.diff <= r.ci_high


@pytest.mark.workflow
def test_changing_stats_reruns_only_the_tables_and_figures(campaign, tmp_path):
    import yaml

    wd, _ = campaign
    cfg = yaml.safe_load((wd / "config" / "experiment.yaml").read_text())
    cfg["stats"] = {"alpha": 0.1, "correction": "bh"}
    proc = snakemake(wd, write_config(tmp_path, cfg, "stats.yaml"), "-n", check=True)  # the config outside wd
    assert set(planned_jobs(proc.stdout)) == {"organize", "plot", "all"}, proc.stdout[-2000:]


@pytest.mark.workflow
def test_report_builds(campaign, tmp_path):
    """What `make run` does last; the report goes outside the shared workdir."""
    import subprocess

    wd, _ = campaign
    report = tmp_path / "report.html"
    proc = subprocess.run(
        SNAKEMAKE + ["--snakefile", str(REPO / "Snakefile"), "--directory", str(wd), "--report", str(report)],
        cwd=wd,
        env=base_env(wd),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    html = report.read_text()
    assert "shaded band" in html and "Holmes vs harness" in html and "headline numbers" in html
    # it opens on the leaderboard (the workflow description, beside the job graph)
    assert "merges against their parents" in html and "A merge is marked only where paired comparisons" in html
    assert "gain retention" in html and "forest plot" in html
    # ... whose table is there, every model's row with its intervals, as results/tables/ has it
    board = pd.read_csv(wd / "results" / "tables" / "leaderboard.csv", dtype=str)
    for row in board.itertuples(index=False):
        cells = "".join(f"<td>{c}</td>\\n" for c in row).encode("ascii", "backslashreplace").decode()
        assert f"<tr>{cells}</tr>" in html, cells
    assert board.iloc[:, 2].str.contains(r"\[").all()


@pytest.mark.workflow
def test_failed_evaluation_gives_partial_tables_that_nothing_trusts(tmp_path, tiny_models):
    """A failed job (--keep-going): the console names its log; the tables and figures of the
    results that exist go to results/partial/, never where the organize and plot rules
    write (issue 15); the leaderboard marks the gap without growing columns for it; the
    next complete run makes the real tables and removes the partial ones."""
    broken = unloadable_copy(tiny_models["alpha"], tmp_path / "broken")
    cfg = {
        "models": {
            "base": {"path": str(tiny_models["base"])},
            "beta": {"path": str(tiny_models["beta"])},
            "broken": {"path": str(broken)},
        },
        "harness": {"tasks": ["mergelab_categories"], "settings": {"batch_size": 8}},
    }
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), "--keep-going")
    assert proc.returncode != 0
    err = proc.stderr
    assert "mergelab: 1 job(s) failed; each log ends with the cause:\n" in err
    assert (
        "  harness_eval (model=broken, task=mergelab_categories): logs/harness_eval/broken/mergelab_categories.log"
        in err
    )
    assert "results/partial/ (leaderboard: results/partial/tables/leaderboard.md)" in err
    assert not (tmp_path / "results" / "tables").exists() and not (tmp_path / "results" / "plots").exists()

    part = tmp_path / "results" / "partial"
    harness = pd.read_csv(part / "tables" / "harness.csv")
    gap = harness[harness["model"] == "broken"]
    assert len(gap) == 1 and gap["status"].iloc[0] == "missing" and gap["value"].isna().all()
    assert (harness[harness["model"] != "broken"]["status"] == "ok").all()
    assert (
        "missing harness result: broken on mergelab_categories" in (tmp_path / "logs/organize/partial.log").read_text()
    )
    assert (part / "plots/harness/mergelab_categories.png").stat().st_size > 1000
    board = (part / "tables" / "leaderboard.md").read_text().splitlines()
    assert board[2] == "| model | role | mergelab_categories (acc_norm) |"
    assert [line for line in board if line.startswith("| broken |")] == ["| broken | parent | – |"]
    assert "results/tables/" in (part / "README.md").read_text()

    # the broken model left out: a complete run makes the real tables, the partial ones go
    del cfg["models"]["broken"]
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), check=True)
    assert not part.exists()
    assert "mergelab: done.\n  leaderboard: results/tables/leaderboard.md" in proc.stderr


def test_the_partial_build_keeps_the_callers_pythonpath():
    """The onerror build runs `python -m mergelab.analysis.outputs` with the scripts folder first and
    the caller's PYTHONPATH after it: an install made with `pip --target` (how the GPU check
    runs on a machine whose Python lacks the workflow's packages) or a module system lives there."""
    from mergelab.analysis.outputs import subprocess_env

    scripts = REPO / "scripts"
    env = subprocess_env(scripts, {"PYTHONPATH": "/tmp/site", "HOME": "/h"})
    assert env == {"PYTHONPATH": f"{scripts}{os.pathsep}/tmp/site", "HOME": "/h"}
    assert subprocess_env(scripts, {})["PYTHONPATH"] == str(scripts)


def test_normalised_scores_by_hand():
    catalogue = catalogue_of(
        {
            "model_order": ["base", "math", "words", "m", "nobase"],
            "models": {
                "base": {"role": "base"},
                "math": {"role": "parent"},
                "words": {"role": "parent"},
                "m": {"role": "merge", "recipe": "r", "method": "ties", "parents": ["math", "words"], "base": "base"},
                "nobase": {"role": "merge", "recipe": "s", "method": "linear", "parents": ["math", "words"]},
            },
        }
    )
    values = {"base": (0.25, 100.0), "math": (0.25, 230.0), "words": (1.0, 210.0), "m": (0.625, 130.0)}
    values["nobase"] = (0.5, 150.0)
    rows = []
    for model, (acc, ppl) in values.items():
        for task, metric, v, hib in (("cats", "acc_norm", acc, True), ("ppl", "word_perplexity", ppl, False)):
            rows.append(
                {"model": model, "harness_task": task, "task": task, "metric": metric, "filter": "none"}
                | {"primary": True, "higher_is_better": hib, "value": v, "status": "ok"}
            )
    table = normalised_scores(pd.DataFrame(rows, columns=harness_rows.HARNESS_COLUMNS), catalogue)
    assert set(table["model"]) == {"m"}  # only merges with a base
    t = table.set_index("harness_task")
    assert t.loc["cats", "best_parent"] == "words" and t.loc["cats", "gain_retention"] == pytest.approx(0.5)
    assert t.loc["cats", "relative_to_best"] == pytest.approx(0.625)
    assert t.loc["ppl", "best_parent"] == "words"  # lower perplexity is better
    assert t.loc["ppl", "gain_retention"] == pytest.approx(30 / 110)
    assert t.loc["ppl", "relative_to_best"] == pytest.approx(210 / 130)
    assert t.loc[MEAN_ROW, "gain_retention"] == pytest.approx((0.5 + 30 / 110) / 2)
    assert t.loc[MEAN_ROW, "relative_to_best"] == pytest.approx((0.625 + 210 / 130) / 2)


def test_holmes_comparisons_are_wilcoxon_over_datasets():
    from scipy.stats import wilcoxon

    from mergelab.analysis import stats

    rng = __import__("numpy").random.default_rng(0)
    names = [f"d{i}" for i in range(12)]
    parent = rng.uniform(0.4, 0.8, size=12)
    scores = {"p": parent, "q": parent - 0.01, "m": parent + 0.05 + rng.normal(0, 0.01, 12)}
    rows = [
        {"model": mdl, "probing_dataset": d, "competence": "syntax" if i < 6 else "semantics"}
        | {"metric": "macro_f1", "mean": float(v[i]), "status": "ok"}
        for mdl, v in scores.items()
        for i, d in enumerate(names)
    ]
    holmes = pd.DataFrame(rows)
    catalogue = catalogue_of(
        {
            "models": {
                "p": {"role": "parent"},
                "q": {"role": "parent"},
                "m": {"role": "merge", "recipe": "r", "method": "ties", "parents": ["p", "q"]},
            },
            "stats": {"alpha": 0.05, "bootstrap": 2000, "correction": "holm", "seed": 0},
        }
    )
    table = compare.merge_comparisons(pd.DataFrame(columns=harness_rows.HARNESS_COLUMNS), {}, catalogue, holmes)
    t = table.set_index(["parent", "task"])
    assert set(table["task"]) == {"holmes: syntax", "holmes: semantics", "holmes: overall"}
    over = t.loc[("p", "holmes: overall")]
    assert over["n"] == 12 and over["test"] == compare.HOLMES_TEST
    assert over["p_value"] == pytest.approx(wilcoxon(scores["m"], parent).pvalue)
    assert over["diff"] == pytest.approx((scores["m"] - parent).mean()) and over["ci_low"] > 0
    assert over["verdict"] == "better" and over["versus_parents"] == "better than all"
    assert t.loc[("p", "holmes: syntax"), "n"] == 6
    assert table["p_adjusted"].tolist() == pytest.approx(stats.adjust(table["p_value"], "holm").tolist())
    # with the harness comparisons: two families, each adjusted on its own
    harness, items = stats_campaign()
    models = {**STATS_CATALOGUE.models, **catalogue.models}
    order = STATS_CATALOGUE.model_order + list(catalogue.models)
    both = compare.merge_comparisons(harness, items, replace(STATS_CATALOGUE, models=models, model_order=order), holmes)
    alone = compare.merge_comparisons(harness, items, STATS_CATALOGUE)
    h = ~compare.is_holmes(both)
    assert both.loc[h, "p_adjusted"].tolist() == pytest.approx(alone["p_adjusted"].tolist())
    assert both.loc[~h, "p_adjusted"].tolist() == pytest.approx(table["p_adjusted"].tolist())
    # the leaderboard: Holmes mean F1 with its interval over the datasets, the merge marked as
    # the overall comparison says; the winning rate stays a bare number
    comp = org.competence_table(holmes, catalogue)
    board = leaderboard.leaderboard_table(
        pd.DataFrame(columns=harness_rows.HARNESS_COLUMNS), comp, table, catalogue, holmes
    )
    f1 = board.set_index("model")["Holmes mean F1"]
    iv = compare.holmes_intervals(holmes, catalogue)
    assert iv["m"][0] < scores["m"].mean() < iv["m"][1] and iv["p"][1] < iv["m"][1]
    assert f1["m"] == f"{scores['m'].mean():.3f} [{iv['m'][0]:.3f}, {iv['m'][1]:.3f}] ▲"
    assert f1["p"].startswith(f"{parent.mean():.3f} [") and "▲" not in f1["p"]
    assert "[" not in board.set_index("model").loc["m", "Holmes winning rate"]
    text = leaderboard.leaderboard(board, table, catalogue)
    assert "bootstrap interval over the datasets" in text and "Wilcoxon signed-rank" in text


def test_a_sweep_of_per_model_values_that_differ_is_drawn_one_position_each(tmp_path):
    """A recipe sweeping weight per model ({math: [0.2, 1.5], words: [0.2, 1.5]}) has merges whose
    swept value is a mapping, or one number where the models' values are equal: each gets its own
    position on the x axis, with its label."""
    from mergelab.analysis import plots

    points = [{"math": 0.2, "words": 1.5}, {"math": 1.5, "words": 0.2}, 1.5]  # equal values: one number
    models = {
        f"g{i}": {"role": "merge", "recipe": "grid", "method": "ties", "parameters": {"weight": p}, "parents": ["a"]}
        for i, p in enumerate(points)
    }
    models["a"] = {"role": "parent"}
    rows = [
        {"model": m, "task": "t", "harness_task": "t", "primary": True, "metric": "acc", "filter": "none", "value": v}
        for m, v in zip(["g0", "g1", "g2", "a"], [0.1, 0.4, 0.3, 0.5])
    ]
    stem = tmp_path / "sweep"
    plots.sweep(pd.DataFrame(rows), None, catalogue_of({"models": models}), "grid", "weight", stem)
    data = pd.read_csv(stem.with_suffix(".csv"))
    assert sorted(map(str, data["x"])) == sorted(json.dumps(p, sort_keys=True) for p in points)
    assert data.set_index("model")["value"].to_dict() == {"g0": 0.1, "g1": 0.4, "g2": 0.3}
    assert stem.with_suffix(".png").stat().st_size > 0
