"""Holmes probes: Dropout(0.2) -> Linear, trained many at once.

The method (../shared/reference/holmes.md): Adam (lr 1e-3, no weight decay),
batch 16, learning rate warmed up linearly over 10 % of 20 x (batches per
epoch) steps then decayed linearly (transformers' linear schedule with warm-up,
stepped after every update), at most 20 epochs, early stopping on the mean dev
loss with patience 5, test with the weights of the best dev loss. Scores: macro
F1 (classification) or Pearson r (regression). The reference objective applies
cross-entropy to softmax outputs (a double softmax); "standard" is plain
cross-entropy; regression uses SmoothL1.

`train_probes` trains every (dataset, seed) with the same kind and feature
width as one batched model: weights (M, D, K), one batched matmul per step, the
gradient of the loss written out (no autograd), Adam and the schedule written
out per member so that each member follows exactly its own schedule, epochs
and early stopping; members that stop leave the batch, so a step costs what the
members still training need. Members are initialised exactly like
``torch.nn.Linear`` after ``torch.manual_seed(seed)``; each member shuffles its
data with its own generator; dropout masks come from one generator per bucket
(so a bucket's results are reproducible for the same datasets and seeds).
`train_probe_plain` is the same method as a plain per-seed PyTorch loop: the
reference the tests and the benchmark compare with.
"""

from __future__ import annotations

import math
import zlib
from dataclasses import dataclass
from typing import Dict, List, Optional, Sequence

import numpy as np

OBJECTIVES = ("reference", "standard")


@dataclass(frozen=True)
class ProbeSettings:
    epochs: int = 20
    batch_size: int = 16
    lr: float = 1e-3
    dropout: float = 0.2
    warmup_rate: float = 0.1
    patience: int = 5
    objective: str = "reference"
    betas: tuple = (0.9, 0.999)
    eps: float = 1e-8


@dataclass
class ProbeTask:
    """One dataset's features and labels (torch tensors)."""

    name: str
    num_labels: int
    x_train: "object"
    y_train: "object"
    x_dev: "object"
    y_dev: "object"
    x_test: "object"
    y_test: "object"

    @property
    def regression(self) -> bool:
        return self.num_labels == 1

    @property
    def width(self) -> int:
        return int(self.x_train.shape[1])


@dataclass
class ProbeResult:
    name: str
    seed: int
    score: float
    metric: str
    epochs: int
    best_epoch: int
    best_dev_loss: float


# --------------------------------------------------------------------------- shared pieces


def lr_factor(step: int, warmup: float, total: int) -> float:
    """transformers.get_linear_schedule_with_warmup's multiplier for update number `step` (0-based)."""
    if step < warmup:
        return float(step) / float(max(1, warmup))
    return max(0.0, float(total - step) / float(max(1, total - warmup)))


def losses(logits, y, objective: str, regression: bool, valid_classes=None):
    """Per-example loss; logits (..., K), y (...)."""
    import torch
    import torch.nn.functional as F

    if regression:
        return F.smooth_l1_loss(logits[..., 0], y.to(logits.dtype), reduction="none")
    if valid_classes is not None:
        logits = logits.masked_fill(~valid_classes, float("-inf"))
    if objective == "reference":
        probs = torch.softmax(logits, dim=-1)
        if valid_classes is not None:
            probs = probs.masked_fill(~valid_classes, float("-inf"))
        logits = probs
    logp = torch.log_softmax(logits, dim=-1)
    return -logp.gather(-1, y.long().unsqueeze(-1)).squeeze(-1)


def macro_f1(pred: np.ndarray, y: np.ndarray) -> float:
    """Macro F1 over the classes that occur in y or pred (scikit-learn's default)."""
    pred, y = np.asarray(pred), np.asarray(y)
    scores = []
    for c in np.union1d(np.unique(y), np.unique(pred)):
        tp = np.sum((pred == c) & (y == c))
        fp = np.sum((pred == c) & (y != c))
        fn = np.sum((pred != c) & (y == c))
        scores.append(0.0 if tp == 0 else 2 * tp / (2 * tp + fp + fn))
    return float(np.mean(scores))


def pearson(pred: np.ndarray, y: np.ndarray) -> float:
    pred, y = np.asarray(pred, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if pred.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(pred, y)[0, 1])


def score(task: ProbeTask, logits) -> tuple:
    """(score, metric name) of test logits."""
    out = logits.detach().cpu().double().numpy()
    y = task.y_test.detach().cpu().numpy()
    if task.regression:
        return pearson(out[:, 0], y), "pearson"
    return macro_f1(out.argmax(-1), y), "macro_f1"


def _key(name: str, seed: int) -> int:
    return zlib.crc32(f"{seed}:{name}".encode())


# --------------------------------------------------------------------------- batched trainer


def train_probes(tasks: Sequence[ProbeTask], seeds: Sequence[int], settings: ProbeSettings = ProbeSettings(),
                 device: str = "cpu", log=None) -> List[ProbeResult]:
    """Train a probe for every task and seed; tasks are grouped into buckets trained as one."""
    import torch

    results: List[ProbeResult] = []
    for bucket in buckets(tasks, settings.batch_size):
        with torch.no_grad():
            results.extend(_train_bucket(bucket, list(seeds), settings, device))
        if log:
            log(f"probed {', '.join(t.name for t in bucket)}")
    order = {t.name: i for i, t in enumerate(tasks)}
    return sorted(results, key=lambda r: (order[r.name], r.seed))


def buckets(tasks: Sequence[ProbeTask], batch_size: int) -> List[List[ProbeTask]]:
    """Tasks trained as one: the same kind (classification or regression) and feature width."""
    groups: Dict[tuple, List[ProbeTask]] = {}
    for t in tasks:
        groups.setdefault((t.regression, t.width), []).append(t)
    return list(groups.values())


def output_grad(z, y, objective: str, regression: bool, valid=None):
    """d(loss)/d(logits) of the per-example losses in `losses`, computed directly (no autograd)."""
    import torch

    if regression:
        return (z[..., 0] - y.to(z.dtype)).clamp(-1.0, 1.0).unsqueeze(-1)  # SmoothL1, beta 1
    if valid is not None:
        z = z.masked_fill(~valid, float("-inf"))
    p = torch.softmax(z, dim=-1)
    onehot = torch.zeros_like(p).scatter_(-1, y.long().unsqueeze(-1), 1.0)
    if objective == "standard":
        return p - onehot
    # reference: L = CE(softmax(z)) = -p_y + logsumexp(p) over the valid classes
    pm = p if valid is None else p.masked_fill(~valid, float("-inf"))
    g = torch.softmax(pm, dim=-1) - onehot  # dL/dp
    return p * (g - (p * g).sum(-1, keepdim=True))  # through the softmax's Jacobian


class _Bucket:
    """The state of the members still training, as stacked tensors (rows = members)."""

    FIELDS = ("W", "b", "mW", "vW", "mb", "vb", "valid", "offset", "n", "nb", "total", "warmup", "perms", "ids")

    def keep(self, rows) -> None:
        for f in self.FIELDS:
            setattr(self, f, getattr(self, f)[rows])


def _train_bucket(tasks: List[ProbeTask], seeds: List[int], s: ProbeSettings, device: str) -> List[ProbeResult]:
    import torch

    members = [(ti, seed) for ti in range(len(tasks)) for seed in seeds]
    M, D = len(members), tasks[0].width
    regression = tasks[0].regression
    K = 1 if regression else max(t.num_labels for t in tasks)
    bs = s.batch_size
    # Dropout masks from 16-bit uniforms (a third of the cost of torch.rand on a CPU): an input is
    # dropped with probability round(p * 2^16) / 2^16 (0.199997 for 0.2) and the kept ones scaled
    # by 1 / (1 - that), applied to the logits instead of the inputs.
    drop_below = round(s.dropout * 65536) - 32768
    scale = 1.0 / (1.0 - (drop_below + 32768) / 65536)

    x_train = torch.cat([t.x_train for t in tasks]).to(device, torch.float32)
    y_train = torch.cat([t.y_train for t in tasks]).to(device)
    sizes = [len(t.y_train) for t in tasks]
    starts = np.cumsum([0] + sizes[:-1])

    st = _Bucket()
    st.ids = torch.arange(M, device=device)
    st.offset = torch.tensor([int(starts[ti]) for ti, _ in members], device=device)
    st.n = torch.tensor([sizes[ti] for ti, _ in members], device=device)
    st.nb = (st.n + bs - 1) // bs
    st.total = (st.nb * s.epochs).float()
    st.warmup = st.total * s.warmup_rate
    st.W = torch.zeros(M, D, K, device=device)
    st.b = torch.zeros(M, K, device=device)
    st.valid = torch.zeros(M, K, dtype=torch.bool, device=device)
    for m, (ti, seed) in enumerate(members):
        k = 1 if regression else tasks[ti].num_labels
        torch.manual_seed(seed)
        lin = torch.nn.Linear(D, k)  # exactly the plain probe's initialisation
        st.W[m, :, :k] = lin.weight.detach().T.to(device)
        st.b[m, :k] = lin.bias.detach().to(device)
        st.valid[m, :k] = True
    st.mW, st.vW = torch.zeros_like(st.W), torch.zeros_like(st.W)
    st.mb, st.vb = torch.zeros_like(st.b), torch.zeros_like(st.b)
    st.perms = torch.zeros(M, int(st.nb.max()) * bs, dtype=torch.long, device=device)

    gen = torch.Generator(device=device).manual_seed(
        zlib.crc32(",".join(f"{tasks[ti].name}:{seed}" for ti, seed in members).encode()))
    epoch, wait, best_epoch = [0] * M, [0] * M, [0] * M
    best_loss = [math.inf] * M
    best_W, best_b = st.W.clone(), st.b.clone()
    arange_bs = torch.arange(bs, device=device)
    beta1, beta2 = s.betas
    step = 0
    while len(st.ids):
        phase = torch.remainder(st.nb.new_tensor(step), st.nb)  # batch number within each member's epoch
        for r in (phase == 0).nonzero().flatten().tolist():  # an epoch starts: a new order of the data
            m = int(st.ids[r])
            g = torch.Generator().manual_seed(_key(tasks[members[m][0]].name, members[m][1]) * 64 + epoch[m])
            st.perms[r, : sizes[members[m][0]]] = torch.randperm(sizes[members[m][0]], generator=g).to(device)
        pos = phase[:, None] * bs + arange_bs
        in_batch = pos < st.n[:, None]
        rows = st.offset[:, None] + st.perms.gather(1, pos.clamp(max=st.perms.shape[1] - 1)).masked_fill(~in_batch, 0)
        x = x_train.index_select(0, rows.flatten()).view(len(rows), bs, D)
        x.mul_(_kept(x.shape, drop_below, gen, device))
        z = torch.baddbmm(st.b[:, None, :], x, st.W, alpha=scale)
        dz = output_grad(z, y_train[rows], s.objective, regression, None if regression else st.valid[:, None, :])
        dz = dz * (in_batch / in_batch.sum(1, keepdim=True)).unsqueeze(-1)  # mean over the batch's rows
        grads = ((st.W, torch.bmm(x.transpose(1, 2), dz).mul_(scale), "mW", "vW"), (st.b, dz.sum(1), "mb", "vb"))
        # Adam, written out: every member has its own learning rate (its own schedule); all
        # active members are at update number `step` of their schedule.
        lr = s.lr * _lr_factors(step, st.warmup, st.total)
        t = step + 1
        for p, grad, mk, vk in grads:
            m1, m2 = getattr(st, mk), getattr(st, vk)
            m1.mul_(beta1).add_(grad, alpha=1 - beta1)
            m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
            denom = (m2.sqrt() / math.sqrt(1 - beta2 ** t)).add_(s.eps)
            p.sub_((lr / (1 - beta1 ** t)).view((-1,) + (1,) * (p.dim() - 1)) * m1 / denom)
        step += 1
        ending = ((step % st.nb) == 0).nonzero().flatten().tolist()
        if not ending:
            continue
        dev = _dev_losses(tasks, members, st, ending, s, regression, device)
        done = []
        for r in ending:
            m = int(st.ids[r])
            epoch[m] += 1
            if dev[r] < best_loss[m]:
                best_loss[m], best_epoch[m], wait[m] = dev[r], epoch[m], 0
                best_W[m], best_b[m] = st.W[r], st.b[r]
            else:
                wait[m] += 1
            if wait[m] >= s.patience or epoch[m] >= s.epochs:
                done.append(r)
        if done:
            st.keep(torch.tensor([r for r in range(len(st.ids)) if r not in set(done)], dtype=torch.long,
                                 device=device))

    results = []
    with torch.no_grad():
        for m, (ti, seed) in enumerate(members):
            task = tasks[ti]
            k = 1 if regression else task.num_labels
            logits = task.x_test.to(device, torch.float32) @ best_W[m, :, :k] + best_b[m, :k]
            value, metric = score(task, logits)
            results.append(ProbeResult(task.name, seed, value, metric, epoch[m], best_epoch[m], best_loss[m]))
    return results


def _kept(shape, below: int, gen, device):
    """Boolean mask, False with probability (below + 2^15) / 2^16, from random int64s split in four."""
    import torch

    n = math.prod(shape)
    words = torch.randint(-2**63, 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, generator=gen, device=device)
    return (words.view(torch.int16)[:n] >= below).view(shape)


def _lr_factors(step: int, warmup, total):
    """lr_factor for every member at once (tensors of warm-up and total steps)."""
    import torch

    up = step / warmup.clamp(min=1)
    down = ((total - step) / (total - warmup).clamp(min=1)).clamp(min=0)
    return torch.where(step < warmup, up, down)


def _dev_losses(tasks, members, st, ending, s, regression, device) -> Dict[int, float]:
    """Mean dev loss of the members (rows of st) whose epoch just ended; one batched pass per task."""
    import torch

    out = {}
    by_task: Dict[int, List[int]] = {}
    for r in ending:
        by_task.setdefault(members[int(st.ids[r])][0], []).append(r)
    for ti, rs in by_task.items():
        task = tasks[ti]
        x = task.x_dev.to(device, torch.float32)
        logits = torch.baddbmm(st.b[rs][:, None, :], x.expand(len(rs), -1, -1), st.W[rs])
        y = task.y_dev.to(device).expand(len(rs), -1)
        per = losses(logits, y, s.objective, regression, None if regression else st.valid[rs][:, None, :])
        for r, value in zip(rs, per.mean(1).tolist()):
            out[r] = value
    return out


# --------------------------------------------------------------------------- plain loop


def train_probe_plain(task: ProbeTask, seed: int, settings: ProbeSettings = ProbeSettings(),
                      device: str = "cpu") -> ProbeResult:
    """The same method as a plain PyTorch loop, one seed at a time (reference and benchmark)."""
    import torch
    from torch.utils.data import DataLoader, TensorDataset

    s = settings
    torch.manual_seed(seed)
    k = 1 if task.regression else task.num_labels
    model = torch.nn.Sequential(torch.nn.Dropout(s.dropout), torch.nn.Linear(task.width, k)).to(device)
    opt = torch.optim.Adam(model.parameters(), lr=s.lr, betas=s.betas, eps=s.eps)
    loader = DataLoader(TensorDataset(task.x_train.float(), task.y_train), batch_size=s.batch_size, shuffle=True)
    total = s.epochs * len(loader)
    warmup = total * s.warmup_rate
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda step: lr_factor(step, warmup, total))
    best, best_state, best_epoch, wait, epochs = math.inf, None, 0, 0, 0
    xd, yd = task.x_dev.float().to(device), task.y_dev.to(device)
    for epoch in range(1, s.epochs + 1):
        model.train()
        for x, y in loader:
            opt.zero_grad()
            loss = losses(model(x.to(device)), y.to(device), s.objective, task.regression).mean()
            loss.backward()
            opt.step()
            sched.step()
        epochs = epoch
        model.eval()
        with torch.no_grad():
            dev = losses(model(xd), yd, s.objective, task.regression).mean().item()
        if dev < best:
            best, best_epoch, wait = dev, epoch, 0
            best_state = {k2: v.clone() for k2, v in model.state_dict().items()}
        else:
            wait += 1
            if wait >= s.patience:
                break
    model.load_state_dict(best_state)
    model.eval()
    with torch.no_grad():
        value, metric = score(task, model(task.x_test.float().to(device)))
    return ProbeResult(task.name, seed, value, metric, epochs, best_epoch, best)
