"""The rule table (mergelab.plan.rules.RULES) is the one place that says what a rule is: the .smk
files, the SLURM profile and the docs agree with it, every job carries its rule's version, and no
other module keeps a list of rule names by hand."""

from __future__ import annotations

import ast
import re

import pytest
import yaml

from conftest import REPO
from mergelab.plan.jobs import FIRST_VERSION, JobSpec
from mergelab.plan.rules import RULES, gpu_rules, job_rules, rule, version_param

START = re.compile(r"^\s*(?:(?:rule|checkpoint) (\w+):|use rule (\w+) as (\w+))", re.M)


def blocks(text: str) -> dict:
    """rule name -> (the rule it is made from with `use rule`, or None; the text of its block)."""
    starts = list(START.finditer(text))
    out = {}
    for m, nxt in zip(starts, starts[1:] + [None]):
        body = text[m.start() : nxt.start() if nxt else len(text)]
        out[m.group(1) or m.group(3)] = (m.group(2), body)
    return out


def workflow_blocks() -> dict:
    files = sorted((REPO / "workflow" / "rules").glob("*.smk")) + [REPO / "workflow" / "Snakefile"]
    out = {}
    for f in files:
        for name, block in blocks(f.read_text()).items():
            assert name not in out, f"rule {name} is defined twice"
            out[name] = block
    return out


def test_every_rule_of_the_workflow_is_one_entry_of_the_table():
    defined = workflow_blocks()
    assert set(defined) == set(RULES), set(defined) ^ set(RULES)
    for name, (like, _) in defined.items():
        assert RULES[name].like == like, (
            f"{name}: `use rule {like} as {name}` but the table says like={RULES[name].like}"
        )


@pytest.mark.parametrize("name", sorted(n for n in RULES if not RULES[n].is_target and not RULES[n].like))
def test_each_rule_block_says_what_its_entry_says(name):
    """What the table says of a rule is what its block asks Snakemake for, under its own name."""
    entry, (_, body) = RULES[name], workflow_blocks()[name]
    assert f'rule_version=version_param("{name}")' in body, f"{name}: its jobs carry no version"
    assert (f'unpack(job_input("{name}"))' in body) == bool(entry.inputs), name
    assert (f'priority: rule_priority("{name}")' in body) == bool(entry.priority), name
    assert (f'localrule: light_rule("{name}")' in body) == entry.light, name
    assert ("threads: get_gpu_job_threads" in body) == bool(entry.gpu), name
    for key in ("gpu", "mem_mb", "runtime"):
        assert (f'{key}=job_resource("{name}", "{key}")' in body) == bool(entry.gpu), (name, key)
    # every other reference to a rule of the table in its block is to itself
    others = set(
        re.findall(r'(?:job_param|job_resource|job_input|version_param|rule_priority|light_rule)\("(\w+)"', body)
    )
    assert others <= {name}, (name, others)


def test_job_rules_have_specs_and_versions():
    for name, entry in job_rules().items():
        assert issubclass(entry.spec, JobSpec), name
        assert isinstance(entry.version, int) and entry.version >= 1, name
    # version 1 is never recorded by Snakemake (not a builtin), a later one is, under the rule's name
    assert all(version_param(n) is FIRST_VERSION for n in RULES if rule(n).version == 1)
    from dataclasses import replace

    import mergelab.plan.rules as rules_module

    bumped = {**RULES, "merge": replace(RULES["merge"], version=3)}
    orig = rules_module.RULES
    rules_module.RULES = bumped
    try:
        assert version_param("search_best") == version_param("merge") == "merge v3"
    finally:
        rules_module.RULES = orig


def test_the_slurm_profile_covers_every_gpu_rule():
    text = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    profile = yaml.safe_load(text)
    gpu = set(gpu_rules())
    assert gpu == {
        "merge", "merge_released", "search_best", "sanity_check", "harness_eval", "harness_eval_samples",
        "harness_eval_model", "holmes_eval", "search_eval", "search_probe",
    }  # fmt: skip
    assert set(profile["set-threads"]) == gpu and all(v >= 1 for v in profile["set-threads"].values())
    resources = profile["set-resources"]
    assert gpu <= set(resources), gpu - set(resources)
    for name in gpu:  # the documented entry: one node per job, the partition and GPU model added once
        assert resources[name] == resources["merge"] and resources[name]["nodes"] == 1, name
    assert set(resources) - gpu <= {r for r in RULES if rule(r).light}


def listed(text: str, lead: str) -> set:
    """The rule names in the parenthesis after ``lead`` (line breaks and comment marks allowed)."""
    m = re.search(re.escape(lead) + r"\s*\(([^)]*)\)", text)
    assert m, lead
    return {w.strip(" \n#") for w in m.group(1).replace("\n", " ").replace("#", " ").split(",")}


def test_the_docs_name_the_gpu_and_light_rules_of_the_table():
    gpu, light = set(gpu_rules()), {n for n in RULES if rule(n).light}
    assert listed((REPO / "docs" / "gpus-and-slurm.md").read_text(), "Every GPU rule") == gpu
    assert listed((REPO / "profiles" / "slurm" / "config.yaml").read_text(), "Every GPU rule") == gpu
    assert listed((REPO / "docs" / "gpus-and-slurm.md").read_text(), "Light rules") == light
    schema = yaml.safe_load((REPO / "workflow" / "schemas" / "config.schema.yaml").read_text())
    assert listed(schema["properties"]["compute"]["properties"]["light_rules"]["description"], "light rules") == light


def rule_name_lists(tree: ast.AST) -> list:
    """Literal lists, tuples, sets and dict keys holding two or more rule names."""
    found = []
    for node in ast.walk(tree):
        items = node.keys if isinstance(node, ast.Dict) else getattr(node, "elts", None)
        if isinstance(node, (ast.List, ast.Tuple, ast.Set, ast.Dict)) and items:
            names = [n.value for n in items if isinstance(n, ast.Constant) and n.value in RULES]
            if len(set(names)) >= 2:
                found.append((node.lineno, names))
    return found


def test_no_module_keeps_a_list_of_rule_names_by_hand():
    table = REPO / "scripts" / "mergelab" / "plan" / "rules.py"
    for path in sorted((REPO / "scripts").rglob("*.py")):
        if path != table:
            assert not rule_name_lists(ast.parse(path.read_text())), path
    # and the check sees one
    assert rule_name_lists(ast.parse('WAIT = {"organize", "plot"}\nX = ("merge", 1)'))[0][1] == ["organize", "plot"]


def test_a_new_gpu_rule_gets_its_profile_lines_and_doc_lists_from_make_docs(monkeypatch):
    """Adding a GPU rule touches its four files; `make docs` writes its SLURM profile lines (the
    shared `*gpu-job` entry, 4 threads) and its name in every list of the docs."""
    from mergelab.docs.rule_lists import fill_lists, fill_profile
    from mergelab.plan.rules import Rule

    profile = (REPO / "profiles" / "slurm" / "config.yaml").read_text()
    page = (REPO / "docs" / "gpus-and-slurm.md").read_text()
    assert fill_profile(profile) == profile and fill_lists(page) == page  # committed as generated
    monkeypatch.setitem(RULES, "merge_check", Rule("merge_check", like="merge"))
    monkeypatch.setitem(RULES, "tabulate", Rule("tabulate", light=True))
    made = yaml.safe_load(fill_profile(profile))
    assert made["set-resources"]["merge_check"] == made["set-resources"]["merge"] == {"nodes": 1}
    assert made["set-threads"]["merge_check"] == 4
    assert set(made["set-resources"]) - set(gpu_rules()) == set(yaml.safe_load(profile)["set-resources"]) - set(
        gpu_rules()
    )  # the light rules' entries are kept
    assert "merge_check" in listed(fill_lists(page), "Every GPU rule")
    assert "tabulate" in listed(fill_lists(page), "Light rules")
    assert listed(fill_profile(profile), "Every GPU rule") == set(gpu_rules())


def test_every_list_of_a_page_is_wrapped_where_it_stands():
    """Two lists after the same lead: each is wrapped from its own line's column and keeps that
    line's comment mark."""
    from mergelab.docs.rule_lists import WIDTH, fill_list

    names = [f"rule_{i:02d}" for i in range(20)]
    text = "Every GPU rule (" + ", ".join(["x" * 30] * 6) + ") asks.\n#   and Every GPU rule (y) ends.\n"
    out = fill_list(text, "Every GPU rule", names)
    assert listed(out, "Every GPU rule") == set(names)
    second = out[out.index("#   and") :]
    assert listed(second, "Every GPU rule") == set(names) and second.endswith(") ends.\n")
    assert all(line.startswith("#   ") for line in second.splitlines())
    assert all(len(line) <= WIDTH for line in out.splitlines() if line.endswith(","))  # where a list breaks
