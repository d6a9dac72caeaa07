"""Holmes probing: features, probes, data validation, and the stage end to end."""

from __future__ import annotations

import http.server
import threading
import zipfile
from pathlib import Path
from typing import List

import numpy as np
import pytest
import torch

from conftest import fake_model_dir, planned_jobs, snakemake, write_config
from mergelab.embedded.holmes_demo import DATASETS, write_demo_set
from mergelab.evaluate.holmes_data import ProbeDataset, Row, manifest_rows, obtain, read_dataset, resolve_datasets
from mergelab.evaluate.holmes_encode import Requests, encode, features, load_encoder, probe_features, row_requests
from mergelab.evaluate.probe import (
    ProbeSettings,
    ProbeTask,
    lr_factor,
    macro_f1,
    pearson,
    train_probe_plain,
    train_probes,
)
from mergelab.plan.holmes_sets import DataError, datasets_of_version, find_datasets, metadata, read_probes
from mergelab.plan.jobs import HolmesSettings

# ---------------------------------------------------------------- features


@pytest.fixture(scope="module")
def gpt2_dir(tmp_path_factory, tiny_models):
    """A tiny GPT-2: absolute positions, so left padding shows if positions are wrong."""
    from transformers import AutoTokenizer, GPT2Config, GPT2LMHeadModel

    tok = AutoTokenizer.from_pretrained(tiny_models["base"])
    torch.manual_seed(0)
    model = GPT2LMHeadModel(
        GPT2Config(
            vocab_size=len(tok),
            n_positions=512,
            n_embd=32,
            n_layer=2,
            n_head=4,
            bos_token_id=tok.bos_token_id,
            eos_token_id=tok.eos_token_id,
        )
    )
    out = tmp_path_factory.mktemp("gpt2")
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


@pytest.fixture(scope="module", params=["llama", "gpt2"])
def encoder(request, tiny_models, gpt2_dir):
    path = tiny_models["base"] if request.param == "llama" else gpt2_dir
    model, tok, max_length = load_encoder(str(path), "float32", "cpu")
    return model, tok, max_length


def alone(model, tok, text):
    """Reference: the text encoded by itself (no padding): hidden states and offsets."""
    enc = tok(text, return_tensors="pt", return_offsets_mapping=True)
    offsets = enc.pop("offset_mapping")[0]
    with torch.no_grad():
        h = model(**enc).last_hidden_state[0].double()
    return h, offsets


SENTS = ["The cat sees the river.", "A bird helps the old tree again before lunch every morning.", "Hot."]
CTX = "My friend watches a small boat with care."


@pytest.mark.parametrize("side", ["left", "right"])
def test_features_equal_unbatched_reference(encoder, side):
    model, tok, max_length = encoder
    tok.padding_side = side
    ds = ProbeDataset(
        "t",
        Path("."),
        "SENTENCE_TOKENS",
        2,
        rows=[
            Row("0", [("friend", 0, 3, 9), ("boat", 0, 28, 32)], [CTX], 0, "train"),
            Row("1", [("watches", 0, 10, 17), ("care", 0, 38, 42)], [CTX], 1, "train"),
        ],
    )
    sent = ProbeDataset(
        "s", Path("."), "SENTENCE", 2, rows=[Row(str(i), [s], None, 0, "train") for i, s in enumerate(SENTS)]
    )
    req = Requests()
    tok_rows = row_requests(ds, req, "")
    sent_rows = row_requests(sent, req, "")
    vectors = encode(model, tok, req, batch_size=8, max_length=max_length)

    # sentences: the masked mean equals the mean over the text encoded alone
    x = features(sent, sent_rows, vectors)
    for i, s in enumerate(SENTS):
        h, _ = alone(model, tok, s)
        torch.testing.assert_close(x[i].double(), h.mean(0), atol=2e-5, rtol=1e-4)
    # token spans: mean of the sub-words overlapping the characters, per element, concatenated
    x = features(ds, tok_rows, vectors)
    h, off = alone(model, tok, CTX)
    d = h.shape[1]
    for i, r in enumerate(ds.rows):
        for j, (_, _, start, end) in enumerate(r.inputs):
            sel = [t for t in range(len(off)) if off[t, 0] < end and off[t, 1] > start and off[t, 1] > off[t, 0]]
            assert sel, "the span must cover tokens"
            torch.testing.assert_close(x[i, j * d : (j + 1) * d].double(), h[sel].mean(0), atol=2e-5, rtol=1e-4)
    tok.padding_side = "right"


def test_pair_and_cross_widths(encoder):
    model, tok, max_length = encoder
    d = model.config.hidden_size
    bi = ProbeDataset("bi", Path("."), "SENTENCE_PAIR_BI", 2, rows=[Row("0", SENTS[:2], None, 0, "train")])
    cross = ProbeDataset("x", Path("."), "SENTENCE_PAIR_CROSS", 2, rows=[Row("0", SENTS[:2], None, 0, "train")])
    spans = ProbeDataset(
        "sp",
        Path("."),
        "SENTENCE_SPANS",
        2,
        rows=[Row("0", [("My", 0, 0, 2, "a"), ("friend", 0, 3, 9, "a"), ("boat", 0, 28, 32, "b")], [CTX], 0, "train")],
    )
    req = Requests()
    rows = [row_requests(ds, req, "") for ds in (bi, cross, spans)]
    vectors = encode(model, tok, req, batch_size=4, max_length=max_length)
    xb, xc, xs = (features(ds, r, vectors) for ds, r in zip((bi, cross, spans), rows))
    assert xb.shape == (1, 2 * d) and xc.shape == (1, d) and xs.shape == (1, 2 * d)
    # the pair is encoded separately ([u; v]); the cross pair as one text "s1 {sep} s2"
    u, _ = alone(model, tok, SENTS[0])
    torch.testing.assert_close(xb[0, :d].double(), u.mean(0), atol=2e-5, rtol=1e-4)
    joined, _ = alone(model, tok, f"{SENTS[0]}  {SENTS[1]}")
    torch.testing.assert_close(xc[0].double(), joined.mean(0), atol=2e-5, rtol=1e-4)
    assert f"{SENTS[0]}  {SENTS[1]}" in req.texts  # sep "" between two spaces, as the reference joins


def test_each_text_is_encoded_once():
    req = Requests()
    a = ProbeDataset("a", Path("."), "SENTENCE", 2, rows=[Row("0", [SENTS[0]], None, 0, "train")] * 3)
    b = ProbeDataset("b", Path("."), "SENTENCE_PAIR_BI", 2, rows=[Row("0", SENTS[:2], None, 0, "train")])
    row_requests(a, req, "")
    row_requests(b, req, "")
    assert req.texts == SENTS[:2] and len(req.pieces) == 2


def test_truncation_at_the_model_limit(encoder):
    model, tok, max_length = encoder
    assert max_length == min(model.config.max_position_embeddings, tok.model_max_length)
    req = Requests()
    long_text = " ".join(["the cat sees the river"] * 200)
    rid = req.request([(req.text(long_text), None)])
    vec = encode(model, tok, req, batch_size=1, max_length=16)[rid]
    ids = tok(long_text, truncation=True, max_length=16, return_tensors="pt")
    with torch.no_grad():
        expect = model(**ids).last_hidden_state[0].double().mean(0)
    torch.testing.assert_close(vec.double(), expect, atol=2e-5, rtol=1e-4)


# ---------------------------------------------------------------- probes


def synthetic(name, n, d=24, k=2, sep=1.5, seed=0, regression=False, shuffle=False):
    g = torch.Generator().manual_seed(seed)
    centers = torch.randn(k, d, generator=torch.Generator().manual_seed(1000 + seed)) * sep
    w = torch.randn(d, generator=torch.Generator().manual_seed(2000 + seed)) / d**0.5

    def part(m):
        x = torch.randn(m, d, generator=g)
        if regression:
            return x, x @ w + 0.05 * torch.randn(m, generator=g)
        y = torch.randint(0, k, (m,), generator=g)
        x = x + centers[y]
        if shuffle:
            y = y[torch.randperm(m, generator=g)]
        return x, y

    tr, dv, te = part(n), part(n // 4), part(n)
    return ProbeTask(name, 1 if regression else k, *tr, *dv, *te)


@pytest.fixture(scope="module")
def probe_tasks():
    return [
        synthetic("separable", 400, k=2, sep=2.0),
        synthetic("three", 400, k=3, sep=2.0, seed=1),
        synthetic("shuffled", 600, k=2, sep=2.0, seed=2, shuffle=True),
        synthetic("regression", 800, regression=True, seed=3),
        synthetic("wide", 300, d=48, k=2, sep=0.4, seed=4),
    ]


@pytest.fixture(scope="module")
def vectorised(probe_tasks):
    return train_probes(probe_tasks, [0, 1, 2, 3, 4])


def mean_score(results, name):
    return float(np.mean([r.score for r in results if r.name == name]))


def test_probe_scores(vectorised):
    assert mean_score(vectorised, "separable") >= 0.95
    assert mean_score(vectorised, "three") >= 0.95
    assert 0.35 <= mean_score(vectorised, "shuffled") <= 0.65
    assert mean_score(vectorised, "regression") >= 0.9
    assert {r.metric for r in vectorised if r.name == "regression"} == {"pearson"}
    assert {r.metric for r in vectorised if r.name != "regression"} == {"macro_f1"}
    assert len(vectorised) == 25 and all(1 <= r.best_epoch <= r.epochs <= 20 for r in vectorised)


@pytest.mark.slow  # trains every probe again, five seeds, as the fixture vectorised did: 10-19 s of CPU
def test_same_seed_same_scores(probe_tasks, vectorised):
    again = train_probes(probe_tasks, [0, 1, 2, 3, 4])
    assert [(r.name, r.seed, r.score) for r in again] == [(r.name, r.seed, r.score) for r in vectorised]


@pytest.mark.slow  # trains every probe again, five seeds, with a plain loop: ~14 s on 2 cores
def test_vectorised_trainer_matches_a_plain_loop(probe_tasks, vectorised):
    plain = [train_probe_plain(t, seed) for t in probe_tasks for seed in range(5)]
    for t in probe_tasks:
        assert mean_score(vectorised, t.name) == pytest.approx(mean_score(plain, t.name), abs=0.02), t.name


def test_early_stopping_stops_and_keeps_the_best_dev_weights(vectorised):
    shuffled = [r for r in vectorised if r.name == "shuffled"]
    assert any(r.epochs < 20 for r in shuffled)  # no signal: the dev loss stops improving
    assert all(r.epochs - r.best_epoch <= 5 for r in shuffled)


def test_objectives_are_both_available(probe_tasks):
    task = probe_tasks[0]
    ref = train_probes([task], [0], ProbeSettings(objective="reference"))[0]
    std = train_probes([task], [0], ProbeSettings(objective="standard"))[0]
    assert ref.best_dev_loss != std.best_dev_loss
    assert ref.score >= 0.95 and std.score >= 0.95


def test_schedule_is_transformers_linear_warmup():
    from transformers import get_linear_schedule_with_warmup

    opt = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=1.0)
    total, warmup = 20 * 7, 20 * 7 * 0.1
    sched = get_linear_schedule_with_warmup(opt, num_warmup_steps=warmup, num_training_steps=total)
    for step in range(total):
        assert opt.param_groups[0]["lr"] == pytest.approx(lr_factor(step, warmup, total))
        opt.step()
        sched.step()


def test_metrics_equal_sklearn_and_scipy():
    from scipy.stats import pearsonr
    from sklearn.metrics import f1_score

    rng = np.random.default_rng(0)
    for k in (2, 3, 5):
        y, p = rng.integers(0, k, 200), rng.integers(0, k, 200)
        assert macro_f1(p, y) == pytest.approx(f1_score(y, p, average="macro"))
    p[:] = 0
    assert macro_f1(p, y) == pytest.approx(f1_score(y, p, average="macro"))
    a, b = rng.normal(size=100), rng.normal(size=100)
    assert pearson(a, b) == pytest.approx(pearsonr(a, b)[0])
    assert np.isnan(pearson(np.ones(5), np.arange(5)))


# ---------------------------------------------------------------- data


@pytest.fixture()
def demo_dir(tmp_path):
    root = tmp_path / "demo"
    write_demo_set(root)
    return root


def test_demo_set_covers_competences_and_types(demo_dir):
    meta = metadata()
    assert {c for _, c, _, _, _ in DATASETS} == {"discourse", "morphology", "reasoning", "semantics", "syntax"}
    assert {t for _, _, _, t, _ in DATASETS} >= {
        "SENTENCE",
        "SENTENCE_PAIR_BI",
        "SENTENCE_PAIR_CROSS",
        "SENTENCE_TOKENS",
    }
    assert any(k == 1 for *_, k in DATASETS)
    rows = manifest_rows(demo_dir, [d[0] for d in DATASETS])
    assert all(r["n_train"] and r["n_dev"] and r["n_test"] for r in rows)
    assert all(meta[r["probing_dataset"]]["competence"] == r["competence"] for r in rows)
    again = Path(str(demo_dir) + "2")
    write_demo_set(again)
    for d in DATASETS:
        assert (again / d[0] / "samples.csv").read_bytes() == (demo_dir / d[0] / "samples.csv").read_bytes()


def test_metadata_covers_the_real_datasets():
    meta = metadata()
    real = [n for n, r in meta.items() if "holmes" in r["versions"].split(",")]
    flash = [n for n, r in meta.items() if "flash-holmes" in r["versions"].split(",")]
    assert len(real) == 208 and len(flash) == 190
    assert {r["competence"] for r in meta.values()} == {"discourse", "morphology", "reasoning", "semantics", "syntax"}


def corrupt(folder: Path, edit):
    lines = (folder / "samples.csv").read_text().splitlines()
    edit(lines)
    (folder / "samples.csv").write_text("\n".join(lines) + "\n")


BAD_DATA = {
    "missing config": (lambda f: (f / "config-none.yaml").unlink(), "missing config-none.yaml"),
    "missing samples": (lambda f: (f / "samples.csv").unlink(), "missing samples.csv"),
    "bad literal": (
        lambda f: corrupt(f, lambda ls: ls.__setitem__(3, "2,\"['The dog runs.'\",,1,train")),
        "samples.csv line 4: inputs is not a Python literal",
    ),
    "unknown type": (
        lambda f: (f / "config-none.yaml").write_text(
            (f / "config-none.yaml").read_text().replace("SENTENCE", "SENTENCE_TRIPLES")
        ),
        "unknown probe_task_type 'SENTENCE_TRIPLES'",
    ),
    "label out of range": (
        lambda f: corrupt(f, lambda ls: ls.__setitem__(5, ls[5].rsplit(",", 2)[0] + ",7,train")),
        "samples.csv line 6: label '7' out of range for num_labels 2",
    ),
    "empty split": (
        lambda f: corrupt(f, lambda ls: ls.__setitem__(slice(1, None), [x for x in ls[1:] if not x.endswith(",dev")])),
        "the dev split has no rows",
    ),
    "missing column": (
        lambda f: corrupt(f, lambda ls: ls.__setitem__(0, "id,inputs,context,label,split")),
        "missing column(s) set-0",
    ),
}


@pytest.mark.parametrize("case", sorted(BAD_DATA))
def test_data_errors_name_file_and_line(case, demo_dir):
    folder = demo_dir / "mergelab-demo-agreement"
    edit, text = BAD_DATA[case]
    edit(folder)
    with pytest.raises(DataError) as err:
        read_dataset(folder)
    assert text in str(err.value) and str(folder) in str(err.value)


def test_token_span_outside_its_context(demo_dir):
    folder = demo_dir / "mergelab-demo-subject-object"
    corrupt(folder, lambda ls: ls.__setitem__(1, ls[1].replace("3, 9)", "3, 99)")))
    with pytest.raises(DataError, match=r"line 2: character span \(3, 99\) outside context\[0\]"):
        read_dataset(folder)


def test_zip_is_unpacked_and_validated(tmp_path, demo_dir):
    archive = tmp_path / "flash-holmes.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(demo_dir.rglob("*")):
            if p.is_file():
                zf.write(p, Path("flash-holmes") / p.relative_to(demo_dir))
    root = tmp_path / "data"
    folder = obtain("flash-holmes", root, archive=archive)
    assert folder == root / "flash-holmes"
    rows = manifest_rows(folder, [d[0] for d in DATASETS])
    assert len(rows) == len(DATASETS)
    # a second call uses the unpacked folder as it is
    (folder / "mergelab-demo-sum" / "marker").write_text("x")
    assert (
        obtain("flash-holmes", root, archive=archive) == folder and (folder / "mergelab-demo-sum" / "marker").exists()
    )


class _ZipHandler(http.server.BaseHTTPRequestHandler):
    payload = b""

    def do_GET(self):  # noqa: N802
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)

    def log_message(self, *args):
        pass


def test_download_from_a_url(tmp_path, demo_dir):
    buf = tmp_path / "x.zip"
    with zipfile.ZipFile(buf, "w") as zf:
        for p in sorted(demo_dir.rglob("*")):
            if p.is_file():
                zf.write(p, p.relative_to(demo_dir))
    _ZipHandler.payload = buf.read_bytes()
    server = http.server.HTTPServer(("127.0.0.1", 0), _ZipHandler)
    thread = threading.Thread(target=server.handle_request, daemon=True)
    thread.start()
    try:
        folder = obtain("holmes", tmp_path / "data", url=f"http://127.0.0.1:{server.server_port}/holmes.zip")
    finally:
        thread.join(10)
        server.server_close()
    assert (folder / "mergelab-demo-tense" / "samples.csv").is_file()
    assert (tmp_path / "data" / "holmes.zip").is_file()


def test_offline_download_says_where_to_put_the_archive(tmp_path):
    with pytest.raises(DataError) as err:
        obtain("flash-holmes", tmp_path / "data", url="http://127.0.0.1:9/flash-holmes.zip")
    msg = str(err.value)
    assert "could not download the flash-holmes archive" in msg
    assert f"put it at {tmp_path / 'data' / 'flash-holmes.zip'}" in msg
    assert not list((tmp_path / "data").glob("*.partial"))


# ---------------------------------------------------------------- a set of the user's own (issue 16)

OWN = {  # a dataset of the user's own -> the demo dataset it copies
    "peer-agreement": "mergelab-demo-agreement",  # SENTENCE, mapped by the user's CSV
    "peer-roles": "mergelab-demo-subject-object",  # SENTENCE_TOKENS, mapped
    "peer-coherence": "mergelab-demo-coherence",  # SENTENCE_PAIR_BI, not mapped: unknown
    "peer-sum": "mergelab-demo-sum",  # regression, not mapped: unknown
    "mergelab-demo-tense": "mergelab-demo-tense",  # a name workflow/holmes/probes.csv knows
}
OWN_PROBES = (
    "probing_dataset,competence,phenomenon\n"
    "peer-agreement,morphology,agreement of our own\n"
    "peer-roles,syntax,roles of our own\n"
    "mergelab-demo-tense,syntax,ignored: probes.csv knows it\n"
    "not-in-the-data,semantics,ignored\n"
)


def write_own_set(folder: Path) -> List[str]:
    """Holmes-format datasets none of which is in workflow/holmes/probes.csv under its name
    (but one), in folder/<name>/{config-none.yaml, samples.csv}; and the user's mapping beside."""
    import shutil

    src = folder.parent / ".demo-source"
    write_demo_set(src)
    for name, demo in OWN.items():
        shutil.copytree(src / demo, folder / name)
    shutil.rmtree(src)
    (folder / "probes.csv").write_text(OWN_PROBES)
    return sorted(OWN)


def holmes_plan(wd: Path, **holmes):
    from mergelab.plan.experiment import load_experiment

    fake_model_dir(wd / "models" / "m")
    cfg = {"models": {"m": {"path": "models/m"}}, "merges": [], "holmes": {"activate": True, **holmes}}
    return load_experiment(cfg, "cfg.yaml", workdir=wd).holmes


def zip_folder(folder: Path, archive: Path, top: str = "") -> Path:
    with zipfile.ZipFile(archive, "w") as zf:
        for p in sorted(folder.rglob("*")):
            if p.is_file():
                zf.write(p, Path(top) / p.relative_to(folder))
    return archive


def test_own_version_probes_every_dataset_of_its_folder(tmp_path):
    names = write_own_set(tmp_path / "data" / "holmes" / "peer")
    assert not set(names) - {"mergelab-demo-tense"} & set(metadata())
    plan = holmes_plan(tmp_path, version="peer")
    assert plan.datasets == names and plan.data_dir == str(tmp_path / "data" / "holmes" / "peer")
    assert holmes_plan(tmp_path, version="peer", datasets=["peer-*"]).datasets == [n for n in names if "peer" in n]
    # the job validates and lists the same datasets, competence from probes.csv where it knows the name
    folder = obtain("peer", tmp_path / "data" / "holmes")
    rows = manifest_rows(folder, resolve_datasets(folder, plan.datasets))
    assert [r["probing_dataset"] for r in rows] == names
    assert {r["probing_dataset"]: r["competence"] for r in rows}["mergelab-demo-tense"] == "morphology"
    assert {r["competence"] for r in rows if r["probing_dataset"] != "mergelab-demo-tense"} == {""}


def test_own_version_in_an_archive_plans_the_same_datasets_before_and_after_unpacking(tmp_path):
    names = write_own_set(tmp_path / "own")
    root = tmp_path / "data" / "holmes"
    root.mkdir(parents=True)
    zip_folder(tmp_path / "own", root / "peer.zip", top="peer")
    before = holmes_plan(tmp_path, version="peer").datasets
    assert before == names
    folder = obtain("peer", root)
    assert find_datasets(folder) == names and holmes_plan(tmp_path, version="peer").datasets == before
    # from a url, only the job sees the data: holmes.datasets travel as given, resolved there
    url = holmes_plan(tmp_path, version="ours", data={"url": "https://example.org/ours.zip"})
    assert url.datasets is None
    pats = holmes_plan(tmp_path, version="ours", datasets=["peer-*"], data={"url": "https://example.org/ours.zip"})
    assert pats.datasets == ["peer-*"]
    assert resolve_datasets(folder, pats.datasets) == [n for n in names if n.startswith("peer-")]
    with pytest.raises(DataError, match=r"pattern 'x\*' matches no dataset there"):
        resolve_datasets(folder, ["x*"])


def test_builtin_version_plans_its_own_datasets_and_those_added_to_its_folder(tmp_path):
    plain = holmes_plan(tmp_path, version="flash-holmes").datasets
    assert plain == datasets_of_version("flash-holmes") and len(plain) == 190
    write_own_set(tmp_path / "data" / "holmes" / "flash-holmes")
    added = holmes_plan(tmp_path, version="flash-holmes").datasets
    assert added == plain + ["mergelab-demo-tense", "peer-agreement", "peer-coherence", "peer-roles", "peer-sum"]
    assert holmes_plan(tmp_path, version="flash-holmes", datasets=["peer-*"]).datasets == added[191:]
    # the demo set is the workflow's own: it is written afresh, never added to
    write_own_set(tmp_path / "data" / "holmes" / "demo")
    assert holmes_plan(tmp_path, version="demo").datasets == [d[0] for d in DATASETS]


def test_builtin_folder_of_other_datasets_says_to_name_a_version(tmp_path):
    folder = tmp_path / "flash-holmes"
    write_own_set(folder)
    with pytest.raises(DataError, match="dataset 'bridging-edge' is missing .*give them a version name of their own"):
        manifest_rows(folder, datasets_of_version("flash-holmes"))


NOT_HOLMES = {
    "no config": (lambda f: (f / "config-none.yaml").unlink(), "peer-sum: missing config-none.yaml"),
    "not utf-8": (
        lambda f: (f / "samples.csv").write_bytes(b"id,inputs,context,label,set-0\n0,\"['caf\xe9']\",,1.0,train\n"),
        "peer-sum/samples.csv: not UTF-8 text",
    ),
    "config not utf-8": (
        lambda f: (f / "config-none.yaml").write_bytes(b"probe_name: \xff\n"),
        "peer-sum/config-none.yaml: not UTF-8 text",
    ),
    "config a list": (
        lambda f: (f / "config-none.yaml").write_text("- SENTENCE\n"),
        "peer-sum/config-none.yaml: expected a mapping of keys",
    ),
}


@pytest.mark.parametrize("case", sorted(NOT_HOLMES))
def test_a_dataset_of_ones_own_not_in_holmes_format_is_one_line_naming_the_file(case, tmp_path):
    folder = tmp_path / "peer"
    write_own_set(folder)
    edit, text = NOT_HOLMES[case]
    edit(folder / "peer-sum")
    assert "peer-sum" in find_datasets(folder)  # a folder with either Holmes file is a dataset
    with pytest.raises(DataError) as err:
        manifest_rows(folder, find_datasets(folder))
    msg = str(err.value)
    assert "\n" not in msg and text in msg and str(folder) in msg, msg


def test_user_mapping_is_read_and_checked(tmp_path):
    path = tmp_path / "probes.csv"
    path.write_text(OWN_PROBES + "peer-blank,,\n")
    mapping = read_probes(path)
    assert mapping["peer-agreement"] == {"competence": "morphology", "phenomenon": "agreement of our own"}
    assert mapping["peer-blank"] == {"competence": "unknown", "phenomenon": "unknown"}
    path.write_text(OWN_PROBES + "peer-roles,syntax,twice\n")
    with pytest.raises(DataError, match=r"probes.csv line 6: 'peer-roles' is listed twice"):
        read_probes(path)


# ---------------------------------------------------------------- features: reference (issue 16)


def captured_tasks(monkeypatch, model_dir, data_dir, names, **settings):
    """evaluate() up to the probes: the ProbeTasks it would train, by dataset name."""
    import mergelab.evaluate.probe
    from mergelab.evaluate.holmes import evaluate

    got = {}

    def capture(tasks, seeds, *args, **kw):
        got.update({t.name: t for t in tasks})
        return []

    monkeypatch.setattr(mergelab.evaluate.probe, "train_probes", capture)
    base = {"seeds": [0], "objective": "reference", "batch_size": 16, "dtype": "float32", "max_length": None}
    evaluate("m", str(model_dir), str(data_dir), names, HolmesSettings(**{**base, **settings}), "cpu")
    return got


def test_reference_features_are_the_float16_rounded_features_where_holmes_rounds(monkeypatch, tmp_path, tiny_models):
    names = ["mergelab-demo-agreement", "mergelab-demo-coherence", "mergelab-demo-contradiction"]
    names += ["mergelab-demo-subject-object"]
    write_demo_set(tmp_path)
    full = captured_tasks(monkeypatch, tiny_models["base"], tmp_path, names)
    ref = captured_tasks(monkeypatch, tiny_models["base"], tmp_path, names, features="reference")
    for name in names:
        for part in ("x_train", "x_dev", "x_test"):
            x, r = getattr(full[name], part), getattr(ref[name], part)
            assert r.dtype == torch.float32
            if name == "mergelab-demo-subject-object":  # token features: Holmes keeps them whole (encoding full)
                assert torch.equal(r, x), name
            else:  # SENTENCE, SENTENCE_PAIR_BI, SENTENCE_PAIR_CROSS: stored as float16 by Holmes
                assert torch.equal(r, x.half().float()), name
                assert not torch.equal(r, x), name
    # with a half encoding Holmes rounds every feature
    tokens = ProbeDataset("t", Path("."), "SENTENCE_TOKENS", 2, rows=[Row("0", [("a", 0, 0, 1)], ["a"], 0, "train")])
    vectors = torch.randn(1, 8)
    x = probe_features(tokens, [[0]], vectors, encoding="half", mode="reference")
    assert torch.equal(x, vectors.half().float())
    assert torch.equal(probe_features(tokens, [[0]], vectors, encoding="full", mode="reference"), vectors)


def test_features_setting_is_a_param_of_the_holmes_jobs_only(tmp_path):
    from mergelab.plan.experiment import load_experiment

    for n in ("a", "b"):
        fake_model_dir(tmp_path / "models" / n)
    cfg = {
        "models": {n: {"path": f"models/{n}"} for n in ("a", "b")},
        "merges": [{"name": "r", "models": ["a", "b"], "methods": ["linear"]}],
        "harness": {"tasks": ["mergelab_categories"]},
        "holmes": {"activate": True, "version": "demo"},
    }
    full = load_experiment(cfg, "cfg.yaml", workdir=tmp_path)
    cfg["holmes"]["features"] = "reference"
    ref = load_experiment(cfg, "cfg.yaml", workdir=tmp_path)
    for m in full.holmes.models:
        assert full.job_params("holmes_eval", model=m)["settings"].get("features") is None  # as before the key
        assert ref.job_params("holmes_eval", model=m)["settings"]["features"] == "reference"
    assert full.job_params("holmes_data") == ref.job_params("holmes_data")
    for m in full.merges:
        assert full.job_params("merge", model=m) == ref.job_params("merge", model=m)
    for m in full.harness.models:
        assert full.job_params("harness_eval", model=m, task="mergelab_categories") == ref.job_params(
            "harness_eval", model=m, task="mergelab_categories"
        )


# ---------------------------------------------------------------- zero-token texts (issue 16)


@pytest.fixture(scope="module")
def no_bos_dir(tmp_path_factory, tiny_models):
    """The tiny model with a tokenizer that adds no special token: an empty text is no token."""
    import shutil

    from tokenizers import processors
    from transformers import AutoTokenizer

    out = tmp_path_factory.mktemp("no-bos") / "m"
    shutil.copytree(tiny_models["base"], out)
    tok = AutoTokenizer.from_pretrained(out)
    tok._tokenizer.post_processor = processors.ByteLevel(trim_offsets=True)
    tok.save_pretrained(out)
    assert AutoTokenizer.from_pretrained(out)("")["input_ids"] == []
    return out


def test_a_text_of_zero_tokens_is_one_line_before_the_model_loads(monkeypatch, tmp_path, no_bos_dir):
    import mergelab.evaluate.holmes_encode
    from mergelab.evaluate.holmes import evaluate
    from mergelab.runtime.jobs import JobError

    write_demo_set(tmp_path)
    folder = tmp_path / "mergelab-demo-negation"
    lines = (folder / "samples.csv").read_text().splitlines()
    lines[5] = "4,\"['']\",,1,train"  # an empty sentence
    (folder / "samples.csv").write_text("\n".join(lines) + "\n")

    def no_model(*args, **kw):
        raise AssertionError("the model was loaded before the texts were checked")

    monkeypatch.setattr(mergelab.evaluate.holmes_encode, "load_model", no_model)
    settings = HolmesSettings(seeds=[0], objective="reference", batch_size=4, dtype="float32", max_length=None)
    with pytest.raises(JobError) as err:
        evaluate("m", str(no_bos_dir), str(tmp_path), ["mergelab-demo-agreement", folder.name], settings, "cpu")
    msg = str(err.value)
    assert "\n" not in msg
    assert msg.startswith("dataset 'mergelab-demo-negation': the text '' is zero tokens for TokenizersBackend"), msg
    assert str(folder / "samples.csv") in msg


def test_a_long_text_is_shortened_in_the_message(no_bos_dir):
    from transformers import AutoTokenizer

    from mergelab.evaluate.holmes_encode import check_tokens
    from mergelab.runtime.jobs import JobError

    class Empty:  # a tokenizer that drops everything
        def __call__(self, texts, **kw):
            return {"input_ids": [[] if t.startswith("drop") else [1] for t in texts]}

    long_text = "drop " + "word " * 40
    ds = ProbeDataset("d", Path("."), "SENTENCE", 2, rows=[Row("0", ["kept"], None, 0, "train")])
    ds.rows.append(Row("1", [long_text], None, 1, "train"))
    req = Requests()
    rows = row_requests(ds, req, "")
    with pytest.raises(JobError, match=r"dataset 'd': the text 'drop word word .{40,}\.\.\.' is zero tokens for Empty"):
        check_tokens(Empty(), [ds], [rows], req)
    check_tokens(AutoTokenizer.from_pretrained(no_bos_dir), [ds], [rows], req)  # a real tokenizer: no empty text


# ---------------------------------------------------------------- workflow


@pytest.mark.workflow
def test_embedded_set_end_to_end(default_run):
    """The embedded set through the workflow: the embedded default probes every model it evaluates
    (conftest's default_run: the demo models, its merges, the search's best trial) with the demo
    set, five seeds (the default's). (That the finished campaign plans nothing more is
    test_repo.py's test_embedded_default_runs_offline.)"""
    import csv

    wd, _ = default_run
    names = [d[0] for d in DATASETS]
    harness = {p.parent.name for p in (wd / "results" / "harness").glob("*/mergelab_categories.json")}
    probed = {p.parent.name for p in (wd / "results" / "holmes").glob("*/scores.csv")}
    assert probed == harness and {"base", "math", "words"} < probed
    for model in sorted(probed):
        with open(wd / "results" / "holmes" / model / "scores.csv") as fh:
            rows = list(csv.DictReader(fh))
        assert list(rows[0])[:8] == [
            "probing_dataset",
            "model_name",
            "encoding",
            "control_task_type",
            "sample_size",
            "seed",
            "num_hidden_layers",
            "score",
        ]
        assert sorted({r["probing_dataset"] for r in rows}) == sorted(names) and len(rows) == 5 * len(names)
        assert {r["model_name"] for r in rows} == {model} and {r["objective"] for r in rows} == {"reference"}
        assert {r["metric"] for r in rows if r["probing_dataset"] == "mergelab-demo-sum"} == {"pearson"}
        assert all(r["encoding"] == "full" and r["control_task_type"] == "NONE" for r in rows)
        assert all(r["score"] != "" for r in rows if r["metric"] == "macro_f1")
    assert (wd / "data" / "holmes" / "demo" / "mergelab-demo-sum" / "config-none.yaml").is_file()


@pytest.mark.parametrize("objective,regression", [("reference", False), ("standard", False), ("reference", True)])
def test_written_out_gradient_equals_autograd(objective, regression):
    from mergelab.evaluate.probe import losses, output_grad

    g = torch.Generator().manual_seed(0)
    z = torch.randn(3, 16, 4, generator=g, dtype=torch.float64, requires_grad=True)
    valid = torch.tensor([True, True, True, False]).expand(3, 1, 4)
    y = torch.randn(3, 16, generator=g) if regression else torch.randint(0, 3, (3, 16), generator=g)
    losses(z, y, objective, regression, None if regression else valid).sum().backward()
    expect = z.grad[..., :1] if regression else z.grad
    got = output_grad(z.detach(), y, objective, regression, None if regression else valid)
    torch.testing.assert_close(got, expect)
    if not regression:
        assert torch.all(got[..., 3] == 0)  # a padded class gets no gradient
    # the batched trainer's layout: classes along dim 1
    along1 = output_grad(
        z.detach().transpose(1, 2), y, objective, regression, None if regression else valid.transpose(1, 2), dim=1
    )
    torch.testing.assert_close(along1, expect.transpose(1, 2))


@pytest.mark.workflow
def test_own_datasets_end_to_end(tmp_path, tiny_models):
    """Issue 16: Holmes-format datasets of the user's own, under a version name of their own, none
    of them (but one) in workflow/holmes/probes.csv, some mapped to a competence by the user."""
    import shutil

    import pandas as pd

    from mergelab.analysis.organize import winning_rates

    names = write_own_set(tmp_path / "data" / "holmes" / "peer")
    cfg = {
        "models": {n: {"path": str(tiny_models[n])} for n in ("base", "alpha")},
        "merges": [],
        "harness": {"tasks": []},
        "holmes": {
            "activate": True,
            "version": "peer",
            "seeds": [0],
            "data": {"probes": "data/holmes/peer/probes.csv"},
        },
    }
    path = write_config(tmp_path, cfg)
    snakemake(tmp_path, path, "tables", check=True)
    for model in ("base", "alpha"):
        scores = pd.read_csv(tmp_path / "results" / "holmes" / model / "scores.csv")
        assert sorted(scores["probing_dataset"]) == names and scores["score"].notna().all()

    holmes = pd.read_csv(tmp_path / "results" / "tables" / "holmes.csv")
    assert len(holmes) == 2 * len(names) and (holmes["status"] == "ok").all()
    labels = holmes.drop_duplicates("probing_dataset").set_index("probing_dataset")[["competence", "phenomenon"]]
    assert labels.to_dict("index") == {
        "peer-agreement": {"competence": "morphology", "phenomenon": "agreement of our own"},  # the user's mapping
        "peer-roles": {"competence": "syntax", "phenomenon": "roles of our own"},
        "mergelab-demo-tense": {"competence": "morphology", "phenomenon": "tense"},  # probes.csv wins
        "peer-coherence": {"competence": "unknown", "phenomenon": "unknown"},
        "peer-sum": {"competence": "unknown", "phenomenon": "unknown"},
    }
    assert set(holmes[holmes["probing_dataset"] == "peer-sum"]["metric"]) == {"pearson"}

    comp = pd.read_csv(tmp_path / "results" / "tables" / "holmes_competences.csv")
    assert set(comp["competence"]) == {"morphology", "syntax", "overall"}
    known = holmes[holmes["competence"] != "unknown"]
    rates = winning_rates(known)
    for model in ("base", "alpha"):
        overall = comp[(comp["model"] == model) & (comp["competence"] == "overall")].iloc[0]
        mine = known[known["model"] == model]
        # the unknown ones (peer-coherence, F1; peer-sum, Pearson) are in no mean, overall included
        assert overall["n_f1"] == 3 and overall["n_pearson"] == 0
        assert overall["mean_f1"] == pytest.approx(mine["mean"].mean())
        assert overall["n_ranked"] == rates["counts"]["overall"][model] <= 3
        assert overall["winning_rate"] == pytest.approx(rates["rates"]["overall"][model], nan_ok=True)
        morph = comp[(comp["model"] == model) & (comp["competence"] == "morphology")].iloc[0]
        assert morph["mean_f1"] == pytest.approx(mine[mine["competence"] == "morphology"]["mean"].mean())
    log = (tmp_path / "logs" / "organize" / "organize.log").read_text()
    assert "2 Holmes dataset(s) of unknown competence left out of the competence table and the winning rates" in log
    assert "peer-coherence, peer-sum" in log

    # a second run reruns nothing; holmes.features reruns exactly the Holmes jobs (and the tables)
    proc = snakemake(tmp_path, path, "tables", "-n", check=True)
    assert "Nothing to be done" in proc.stdout + proc.stderr
    cfg["holmes"]["features"] = "reference"
    proc = snakemake(tmp_path, write_config(tmp_path, cfg, "reference.yaml"), "tables", "-n", check=True)
    jobs = planned_jobs(proc.stdout + proc.stderr)
    assert sorted(jobs["holmes_eval"]) == ["model=alpha", "model=base"]
    assert set(jobs) == {"holmes_eval", "organize", "tables"}, jobs

    # an edited mapping remakes the tables only; a dataset added to the folder is probed
    def planned():
        proc = snakemake(tmp_path, path, "tables", "-n", check=True)
        return planned_jobs(proc.stdout + proc.stderr)

    peer = tmp_path / "data" / "holmes" / "peer"
    (peer / "probes.csv").write_text(OWN_PROBES + "peer-sum,reasoning,sums of our own\n")
    assert set(planned()) == {"organize", "tables"}
    shutil.copytree(peer / "peer-sum", peer / "peer-new")
    jobs = planned()
    assert set(jobs) == {"holmes_data", "holmes_eval", "organize", "tables"} and len(jobs["holmes_eval"]) == 2, jobs


@pytest.mark.workflow
def test_own_dataset_not_in_holmes_format_stops_the_data_rule_with_one_line(tmp_path, tiny_models):
    write_own_set(tmp_path / "data" / "holmes" / "peer")
    (tmp_path / "data" / "holmes" / "peer" / "peer-roles" / "config-none.yaml").unlink()
    cfg = {
        "models": {"base": {"path": str(tiny_models["base"])}},
        "merges": [],
        "harness": {"tasks": []},
        "holmes": {"activate": True, "version": "peer", "seeds": [0]},
    }
    proc = snakemake(tmp_path, write_config(tmp_path, cfg), "evaluations")
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.startswith("mergelab: ")]
    folder = tmp_path / "data" / "holmes" / "peer" / "peer-roles"
    assert lines[0] == f"mergelab: {folder}: missing config-none.yaml (log: logs/holmes_data/peer.log)", lines
    assert not (tmp_path / "results" / "holmes" / "base").exists()
