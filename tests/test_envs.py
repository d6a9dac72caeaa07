"""Every conda env provides what its rules' scripts import (what `snakemake --sdm conda` runs).

For each rule of workflow/rules/*.smk with a `conda:` env and a `script:`, every third-party
distribution the script imports, or the mergelab code it can run imports, must be among the env's
pip pins or what they require (read from the installed distributions, whose versions are the
lock's, as are the envs' pins: test_repo checks both). Static and quick: see tests/envcheck.py.
"""

from __future__ import annotations

import re

import yaml
from envcheck import RULES_DIR, SCRIPTS, Rule, check_rule, env_provides, parse_rules, rel, required_imports

KNOWN_RULES = {
    "demo_models",
    "merge",
    "merges_table",
    "harness_eval",
    "harness_eval_model",
    "holmes_data",
    "holmes_eval",
    "organize",
    "plot",
    "fetch",
    "push",
    "push_results",
}


def test_rules_with_an_env_and_a_script_are_found():
    rules = parse_rules()
    assert KNOWN_RULES <= set(rules), KNOWN_RULES - set(rules)
    for name in KNOWN_RULES:
        rule = rules[name]
        assert rule.env and rule.env.is_file(), f"{name}: conda env {rule.env}"
        assert rule.script and rule.script.is_file(), f"{name}: script {rule.script}"
    base = rules["harness_eval"]
    assert rules["harness_eval_samples"] == Rule(
        "harness_eval_samples", RULES_DIR / "harness.smk", base.env, base.script
    )


def test_use_rule_inherits_env_and_script_unless_it_names_its_own(tmp_path):
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / "a.smk").write_text(
        'rule a:\n    output:\n        "x",\n    conda:\n        "../envs/a.yaml"\n    script:\n'
        '        "../s/a.py"\n\n\nrule b:\n    shell:\n        "true"\n'
    )
    (tmp_path / "rules" / "b.smk").write_text(
        'use rule a as c with:\n    conda:\n        "../envs/c.yaml"\n\n\nuse rule a as d with:\n'
        '    output:\n        "y",\n'
    )
    rules = parse_rules(tmp_path / "rules")
    a = rules["a"]
    assert (a.env, a.script) == (tmp_path / "envs/a.yaml", tmp_path / "s/a.py")
    assert (rules["b"].env, rules["b"].script) == (None, None)
    assert (rules["c"].env, rules["c"].script) == (tmp_path / "envs/c.yaml", a.script)
    assert (rules["d"].env, rules["d"].script) == (a.env, a.script)


def test_every_env_provides_what_its_rules_import():
    failures = []
    checked = set()
    for rule in parse_rules().values():
        if rule.env is None or rule.script is None or rule.script.suffix != ".py":
            continue  # no env to check, or a script whose imports this check cannot read
        failures += check_rule(rule.name, rule.env, rule.script)
        checked.add(rule.name)
    assert checked >= KNOWN_RULES, KNOWN_RULES - checked
    assert not failures, "\n".join(failures)


def test_the_check_finds_what_a_short_env_lacks(tmp_path):
    env = tmp_path / "short.yaml"
    env.write_text(yaml.safe_dump({"dependencies": ["python=3.11", "pip", {"pip": ["PyYAML==6.0.4"]}]}))
    failures = check_rule("push_results", env, SCRIPTS / "run_push_results.py")
    head = f"push_results ({rel(env)}): "
    assert any(
        re.fullmatch(
            re.escape(head) + r"pandas \(distribution pandas\), imported by "
            r"scripts/run_push_results\.py:\d+, is not provided by the env",
            f,
        )
        for f in failures
    ), "\n".join(failures)
    assert any(
        f.startswith(f"{head}huggingface_hub (distribution huggingface-hub), imported by scripts/mergelab/hub.py:")
        for f in failures
    ), "\n".join(failures)
    assert not any(f.startswith(f"{head}yaml ") for f in failures), "\n".join(failures)


def test_extras_and_markers_decide_what_an_env_provides(tmp_path):
    env = tmp_path / "env.yaml"
    env.write_text(yaml.safe_dump({"dependencies": [{"pip": ["lm-eval[hf]==0.4.13"]}]}))
    provided, problems = env_provides(env)
    assert not problems
    assert {"lm-eval", "torch", "transformers", "accelerate", "peft", "datasets", "numpy"} <= provided
    assert not {"vllm", "wandb"} & provided  # other extras' requirements
    plain = tmp_path / "plain.yaml"
    plain.write_text(yaml.safe_dump({"dependencies": [{"pip": ["lm-eval==0.4.13"]}]}))
    provided, _ = env_provides(plain)
    assert "lm-eval" in provided and "accelerate" not in provided and "peft" not in provided


def test_imports_optional_nested_relative_and_transitive(tmp_path):
    (tmp_path / "pkg" / "sub").mkdir(parents=True)
    (tmp_path / "pkg" / "__init__.py").write_text("import yaml\n")
    (tmp_path / "pkg" / "sub" / "__init__.py").write_text("from .. import other\n")
    (tmp_path / "pkg" / "other.py").write_text(
        "import typing\nimport numpy\nif __name__ == '__main__':\n    import only_as_main\n"
        "if typing.TYPE_CHECKING:\n    import only_for_types\nelse:\n    import at_runtime\n"
    )
    (tmp_path / "pkg" / "sub" / "leaf.py").write_text(
        "try:\n    import bitsandbytes\nexcept (ImportError, OSError):\n    bitsandbytes = None\n"  # 1-4
        "try:\n    import scipy\nexcept Exception:\n    pass\n"  # 5-8
        "def f():\n    return g()\n"  # 9-10
        "def g():\n    from pandas import DataFrame\n"  # 11-12
        "def unused():\n    import torch\n"  # 13-14
        "class C:\n    def m(self):\n        import requests\n"
    )  # 15-17
    script = tmp_path / "run.py"
    script.write_text("def main():\n    from pkg.sub.leaf import f\n    import pkg.gone\n")
    found, problems = required_imports(script, tmp_path)
    assert set(found) == {"yaml", "numpy", "at_runtime", "scipy", "pandas", "requests"}  # not bitsandbytes, torch
    [(imp, chain)] = found["pandas"]
    assert (imp.file, imp.line) == (tmp_path / "pkg/sub/leaf.py", 12)
    assert chain == f"{rel(script)} -> pkg.sub.leaf.f -> pkg.sub.leaf.g"
    assert found["numpy"][0][1] == f"{rel(script)} -> pkg.sub -> pkg.other"
    assert problems == [f"pkg.gone, imported by {rel(script)}:3, has no file under {rel(tmp_path)}"]
    by_attribute = tmp_path / "run2.py"
    by_attribute.write_text("import pkg.sub.leaf as leaf\nimport pkg\nleaf.unused()\npkg.other\n")
    found, problems = required_imports(by_attribute, tmp_path)
    assert "torch" in found and "pandas" not in found and not problems
