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
width as one batched model: weights (M, K, D + 1) with the bias as the last
column, two batched matmuls per step (forward and gradient), the gradient of
the loss written out (no autograd), Adam and the schedule written out per
member so that each member follows exactly its own schedule, epochs
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
from typing import Dict, List, Sequence

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


def train_probes(
    tasks: Sequence[ProbeTask],
    seeds: Sequence[int],
    settings: ProbeSettings = ProbeSettings(),
    device: str = "cpu",
    log=None,
) -> List[ProbeResult]:
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


def output_grad(z, y, objective: str, regression: bool, valid=None, dim: int = -1):
    """d(loss)/d(logits) of the per-example losses in `losses`, computed directly (no autograd).

    The classes lie along `dim` of z (the last one by default; `valid` broadcasts against z).
    """
    import torch

    if regression:
        return (z.select(dim, 0) - y.to(z.dtype)).clamp(-1.0, 1.0).unsqueeze(dim)  # SmoothL1, beta 1
    if valid is not None:
        z = z.masked_fill(~valid, float("-inf"))
    p = torch.softmax(z, dim=dim)
    onehot = torch.zeros_like(p).scatter_(dim, y.long().unsqueeze(dim), 1.0)
    if objective == "standard":
        return p - onehot
    # reference: L = CE(softmax(z)) = -p_y + logsumexp(p) over the valid classes
    pm = p if valid is None else p.masked_fill(~valid, float("-inf"))
    g = torch.softmax(pm, dim=dim) - onehot  # dL/dp
    return p * (g - (p * g).sum(dim, keepdim=True))  # through the softmax's Jacobian


class _Bucket:
    """The state of the members still training, as stacked tensors (rows = members)."""

    FIELDS = ("W", "m1", "m2", "valid", "rows", "weights", "pos", "ids")

    def keep(self, rows) -> None:
        for f in self.FIELDS:
            setattr(self, f, getattr(self, f)[rows])
        self.step_size = self.step_size[:, rows]


class _Masks:
    """Dropout masks (1.0 kept, 0.0 dropped) from 16-bit uniforms: an input is dropped with probability
    round(p * 2^16) / 2^16 (0.199997 for 0.2). On a CPU the 16-bit words come from numpy's SFC64 (one
    call per step, about half the cost of torch.randint's Mersenne twister); elsewhere from a torch
    generator on the device. Comparing into a float32 buffer is ~3x cheaper than making a bool mask."""

    def __init__(self, seed: int, dropout: float, size: int, device: str):
        import torch

        self.below = round(dropout * 65536) - 32768
        self.keep_rate = 1.0 - (self.below + 32768) / 65536
        self.buffer = torch.empty(size, device=device)
        self.cpu = torch.device(device).type == "cpu"
        if self.cpu:
            self.rng = np.random.Generator(np.random.SFC64(seed))
        else:
            self.gen = torch.Generator(device=device).manual_seed(seed)

    def draw(self, shape):
        import torch

        n = math.prod(shape)
        if self.cpu:
            words = torch.from_numpy(
                self.rng.integers(-(2**63), 2**63 - 1, (n + 3) // 4, dtype=np.int64, endpoint=True)
            )
        else:
            words = torch.randint(
                -(2**63), 2**63 - 1, ((n + 3) // 4,), dtype=torch.int64, generator=self.gen, device=self.buffer.device
            )
        out = self.buffer[:n]
        torch.ge(words.view(torch.int16)[:n], self.below, out=out)
        return out.view(shape)


def _train_bucket(tasks: List[ProbeTask], seeds: List[int], s: ProbeSettings, device: str) -> List[ProbeResult]:
    """Train every (task, seed) of a bucket as one batched model.

    Layout: weights (members, K, D + 1) with the bias as the last column (its input a constant 1 that
    dropout never touches), so that both batched matmuls have the long D axis innermost and
    contiguous (4-6x faster than (members, D, K) on a CPU for K <= 5) and the softmax runs over a
    middle axis (vectorised over the batch). The training inputs are scaled by dropout's 1 / (1 - p)
    once, so a step only multiplies them by a 0/1 mask.
    """
    import torch

    members = [(ti, seed) for ti in range(len(tasks)) for seed in seeds]
    M, D = len(members), tasks[0].width
    regression = tasks[0].regression
    K = 1 if regression else max(t.num_labels for t in tasks)
    bs = s.batch_size
    beta1, beta2 = s.betas
    mask_seed = zlib.crc32(",".join(f"{tasks[ti].name}:{seed}" for ti, seed in members).encode())
    masks = _Masks(mask_seed, s.dropout, M * bs * D, device)

    x_train = torch.cat([t.x_train for t in tasks]).to(device, torch.float32)
    xa = torch.empty(len(x_train), D + 1, device=device)
    torch.mul(x_train, 1.0 / masks.keep_rate, out=xa[:, :D])
    xa[:, D] = 1.0
    y_train = torch.cat([t.y_train for t in tasks]).to(device)
    if not regression:
        y_train = y_train.long()
    sizes = [len(t.y_train) for t in tasks]
    starts = np.cumsum([0] + sizes[:-1])
    n = np.array([sizes[ti] for ti, _ in members])
    nb = (n + bs - 1) // bs
    span = int(nb.max()) * bs

    # Per member and position within an epoch: the weight of the example in its batch's mean (0 past
    # the data); per update number and member: lr x schedule x Adam's bias corrections (float64, then
    # float32), so that a step reads one row instead of computing the schedule.
    at = np.arange(span)
    weights = np.where(at < n[:, None], 1.0 / np.minimum(bs, n[:, None] - (at // bs) * bs).clip(min=1), 0.0)
    total = nb * s.epochs
    warmup = total * s.warmup_rate
    steps = np.arange(int(total.max()))[:, None]
    decay = np.maximum(0.0, (total - steps) / np.maximum(1, total - warmup))
    factor = np.where(steps < warmup, steps / np.maximum(1, warmup), decay)
    t = steps + 1.0
    step_size = s.lr * factor * np.sqrt(1 - beta2**t) / (1 - beta1**t)

    st = _Bucket()
    st.ids = torch.arange(M, device=device)
    st.W = torch.zeros(M, K, D + 1, device=device)
    st.valid = torch.zeros(M, K, 1, dtype=torch.bool, device=device)
    for m, (ti, seed) in enumerate(members):
        k = 1 if regression else tasks[ti].num_labels
        torch.manual_seed(seed)
        lin = torch.nn.Linear(D, k)  # exactly the plain probe's initialisation
        st.W[m, :k, :D] = lin.weight.detach().to(device)
        st.W[m, :k, D] = lin.bias.detach().to(device)
        st.valid[m, :k] = True
    st.m1, st.m2 = torch.zeros_like(st.W), torch.zeros_like(st.W)
    st.rows = torch.zeros(M, span, dtype=torch.long, device=device)  # rows of xa in this epoch's order
    st.weights = torch.tensor(weights, dtype=torch.float32, device=device)
    st.step_size = torch.tensor(step_size, dtype=torch.float32, device=device)
    st.pos = torch.zeros(M, 1, dtype=torch.long, device=device)  # position within the epoch
    nb_of = [int(v) for v in nb]  # batches per epoch, per active row
    nb_set = set(nb_of)
    dev_x = {}

    epoch, wait, best_epoch = [0] * M, [0] * M, [0] * M
    best_loss = [math.inf] * M
    best_W = st.W.clone()
    arange_bs = torch.arange(bs, device=device)
    buf_x = torch.empty(M * bs, D + 1, device=device)  # preallocated: no fresh pages every step
    buf_g, buf_d = torch.empty_like(st.W), torch.empty_like(st.W)

    def new_order(rs):  # an epoch starts for these rows: a new order of each member's data
        for r in rs:
            m = int(st.ids[r])
            ti, seed = members[m]
            g = torch.Generator().manual_seed(_key(tasks[ti].name, seed) * 64 + epoch[m])
            st.rows[r, : sizes[ti]] = torch.randperm(sizes[ti], generator=g).to(device) + int(starts[ti])
        st.pos.index_fill_(0, torch.tensor(rs, dtype=torch.long, device=device), 0)

    new_order(range(M))
    step = 0
    while nb_of:
        R = len(nb_of)
        idx = st.pos + arange_bs
        rows = st.rows.gather(1, idx)
        x = torch.index_select(xa, 0, rows.view(-1), out=buf_x[: R * bs]).view(R, bs, D + 1)
        x[:, :, :D].mul_(masks.draw((R, bs, D)))
        z = torch.bmm(st.W, x.transpose(1, 2))  # (R, K, bs)
        dz = output_grad(z, y_train[rows], s.objective, regression, None if regression else st.valid, dim=1)
        dz.mul_(st.weights.gather(1, idx).unsqueeze(1))  # mean over the batch's rows
        grad = torch.bmm(dz, x, out=buf_g[:R])  # (R, K, D + 1), the bias's gradient in the last column
        # Adam, written out: every member has its own learning rate (its own schedule); all active
        # members are at update number `step`. p -= lr_t sqrt(bc2) / bc1 * m / (sqrt(v) + eps sqrt(bc2)).
        st.m1.lerp_(grad, 1 - beta1)
        st.m2.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
        denom = torch.sqrt(st.m2, out=buf_d[:R]).add_(s.eps * math.sqrt(1 - beta2 ** (step + 1)))
        st.W.addcdiv_(torch.mul(st.m1, st.step_size[step].view(R, 1, 1), out=buf_g[:R]), denom, value=-1.0)
        st.pos += bs
        step += 1
        if not any(step % v == 0 for v in nb_set):
            continue
        ending = [r for r in range(R) if step % nb_of[r] == 0]
        dev = _dev_losses(tasks, members, st, ending, s, regression, device, dev_x)
        done, better, better_m = [], [], []
        for r in ending:
            m = int(st.ids[r])
            epoch[m] += 1
            if dev[r] < best_loss[m]:
                best_loss[m], best_epoch[m], wait[m] = dev[r], epoch[m], 0
                better.append(r)
                better_m.append(m)
            else:
                wait[m] += 1
            if wait[m] >= s.patience or epoch[m] >= s.epochs:
                done.append(r)
        if better:
            best_W[better_m] = st.W[better]
        go_on = [r for r in ending if r not in set(done)]
        if go_on:
            new_order(go_on)
        if done:
            gone = set(done)
            kept = [r for r in range(R) if r not in gone]
            st.keep(torch.tensor(kept, dtype=torch.long, device=device))
            nb_of = [nb_of[r] for r in kept]
            nb_set = set(nb_of)

    results = []
    for m, (ti, seed) in enumerate(members):
        task = tasks[ti]
        k = 1 if regression else task.num_labels
        logits = task.x_test.to(device, torch.float32) @ best_W[m, :k, :D].T + best_W[m, :k, D]
        value, metric = score(task, logits)
        results.append(ProbeResult(task.name, seed, value, metric, epoch[m], best_epoch[m], best_loss[m]))
    return results


def _dev_losses(tasks, members, st, ending, s, regression, device, dev_x) -> Dict[int, float]:
    """Mean dev loss of the members (rows of st) whose epoch just ended; one matmul per task."""
    import torch

    out = {}
    by_task: Dict[int, List[int]] = {}
    for r in ending:
        by_task.setdefault(members[int(st.ids[r])][0], []).append(r)
    for ti, rs in by_task.items():
        task = tasks[ti]
        if ti not in dev_x:
            dev_x[ti] = (task.x_dev.to(device, torch.float32), task.y_dev.to(device))
        x, y = dev_x[ti]
        W = st.W[rs]  # (R, K, D + 1)
        R, K, D = W.shape[0], W.shape[1], W.shape[2] - 1
        logits = torch.addmm(W[:, :, D].reshape(-1), x, W[:, :, :D].reshape(R * K, D).T)
        logits = logits.view(len(x), R, K).transpose(0, 1)
        valid = None if regression else st.valid[rs].transpose(1, 2)
        per = losses(logits, y.expand(R, -1), s.objective, regression, valid)
        for r, value in zip(rs, per.mean(1).tolist()):
            out[r] = value
    return out


# --------------------------------------------------------------------------- plain loop


def train_probe_plain(
    task: ProbeTask, seed: int, settings: ProbeSettings = ProbeSettings(), device: str = "cpu"
) -> ProbeResult:
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
