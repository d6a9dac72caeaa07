"""mergelab's static method table must describe mergekit exactly.

The config checks run without importing mergekit; this test is what keeps the
table honest when mergekit changes.
"""

import pytest
from mergekit.merge_methods import registry

from mergelab.plan.methods import METHODS, REQUIRED


def mk_methods():
    return {m.spec.name: m.spec for m in registry.registered_methods()}


def test_same_method_names():
    assert sorted(METHODS) == sorted(mk_methods())
    assert len(METHODS) == 20


@pytest.mark.parametrize("name", sorted(METHODS))
def test_contract_matches(name):
    spec = mk_methods()[name]
    ours = METHODS[name]
    c = spec.contract
    assert ours.base == c.base.value
    assert ours.min_inputs == c.min_inputs
    assert ours.max_inputs == c.max_inputs
    assert ours.min_non_base == c.min_non_base
    assert ours.max_non_base == c.max_non_base


@pytest.mark.parametrize("name", sorted(METHODS))
def test_parameters_match(name):
    spec = mk_methods()[name]
    ours = METHODS[name]
    theirs = {p.name: p for p in spec.parameters}
    assert sorted(ours.param_names) == sorted(theirs)
    for p in ours.params:
        t = theirs[p.name]
        assert p.scope == t.scope.value, p.name
        has_default = type(t.default) is not object  # mergekit marks "no default" with a bare object()
        if p.required:
            assert not has_default, f"{name}.{p.name}: mergekit has a default {t.default!r}"
        else:
            assert t.default == p.default, f"{name}.{p.name}: {t.default!r} != {p.default!r}"
        if p.type in (bool, int):
            assert t.value_type is p.type
    # our defaults are valid values of real parameters, and cover every required one
    for pname, value in ours.defaults.items():
        assert ours.param(pname).check(value) is None
    for p in ours.params:
        assert not p.required or p.name in ours.defaults, f"{name}.{p.name} is required but has no mergelab default"
    assert REQUIRED not in ours.defaults.values()


def test_abbreviations_are_unique_per_method():
    for m in METHODS.values():
        abbrevs = [p.abbrev for p in m.params]
        assert all(abbrevs) and len(set(abbrevs)) == len(abbrevs), m.name


def test_random_methods_are_the_sampling_ones():
    from mergekit.merge_methods.generalized_task_arithmetic import GeneralizedTaskArithmeticMerge
    from mergekit.sparsify import SparsificationMethod

    random_sparsifiers = {SparsificationMethod.random, SparsificationMethod.della_magprune}
    for m in registry.registered_methods():
        if isinstance(m, GeneralizedTaskArithmeticMerge):
            assert METHODS[m.spec.name].random == (m.sparsification_method in random_sparsifiers), m.spec.name
        else:
            assert not METHODS[m.spec.name].random, m.spec.name
