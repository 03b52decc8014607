#!/usr/bin/env python3
"""PyTorch (CPU) twin of fuselab's CTR models (DIN, DIN + trigger, CCN), for timing training
steps against the burn implementation in ml/src/ctr/ at batch 256.

It mirrors `CtrModel` (ml/src/ctr/model.rs) with `CtrConfig::default()` (embedding_dim 16,
2 heads, MLP 200-80-1, CCN's FiLM reading, λ_a = λ_r = 0.1, margin 1.0) on the layout of the
exposure schema (`Schema::exposures`) that fuselab's synthetic benchmark uses:

- one embedding table [V, 16] per vocabulary: item_id (1000 + 2 for padding and
  out-of-vocabulary), item_cat (20 + 2), user_id (2000 + 2), scenario (10 + 2); the trigger and
  history fields share the item tables. Init N(0, 0.05²).
- linear layers as `x @ W + b` with W [in, out] and b [1, out] (here as the fused `addmm`),
  W ~ N(0, 1/in), b = 0.
- an item is the concat of its two field embeddings, D = 32; the history is [b, 20, D].
- target attention (`CtrModel::attention`): q from the candidate, k and v from the history, 2
  heads of 16, scores / √16 plus an additive −1e9 mask on padding, softmax, the o layer, times
  1 where the row has any history. DIN: head = [user_id, scenario, e_t, att_t(e_t)].
  DIN + trigger adds [e_g, att_g(e_g)] with its own q/k/v/o.
  CCN adds the FiLM module: cond = [scenario, mean(history), e_g] (context without the user id), γ = 1 + W_γ cond, β = W_β cond,
  z = tanh(W_φ(e_t ⊙ γ + β)), head += [z, z ⊙ masked_mean(history)].
- MLP with ReLU to one logit, BCE with logits (mean); for CCN plus 0.1 × attraction (mean
  ‖ẑ_i − ẑ_j‖² over co-click and co-non-click pairs) and 0.1 × repulsion
  (mean max(0, 1 − ‖ẑ_i − ẑ_j‖)² over mono-click pairs), ẑ = z / ‖z‖, pairs being every
  unordered pair of rows of one page in the batch (`page_pairs` with co_non_click_keep = 1,
  so every weight is 1), as in ml/src/ctr/loss.rs.
- Adam, lr 1e-3, torch.optim.Adam's defaults otherwise (β 0.9/0.999, ε 1e-8, no weight decay),
  the same update as `ctr::train::Adam`.

The inputs are synthetic, drawn with numpy from a fixed seed in the shapes of fuselab's synthetic
benchmark (`SyntheticConfig::default()`): pages of 8 rows with one user, scenario and trigger
each, the user's history (max_len 20, a random length 0..=20 per user, items with their
categories, padded with id 0), ~15 % clicks. A batch of 256 rows is 32 whole pages. A pool of
16 such batches is built before timing and cycled through; only the training steps after the
warm-up are timed, wall clock: forward, backward, the optimiser step and, for CCN, building the
pair index tensors from the batch's page ids and labels (fuselab builds its pairs per step too).

Tested with Python 3.11.7, torch 2.15.0 and numpy 2.4.6 from PyPI (the Linux x86-64 wheel is
the CUDA build and pulls the nvidia-* runtime packages; everything here runs on the CPU):

    python3 -m venv /root/venvs/ctr-bench
    /root/venvs/ctr-bench/bin/pip install torch==2.15.0 numpy==2.4.6
    /root/venvs/ctr-bench/bin/python tests/bench/ctr_torch.py --threads 1
    /root/venvs/ctr-bench/bin/python tests/bench/ctr_torch.py --model ccn --steps 100 --threads 2 --json

tests/bench/ctr.sh runs `cargo bench --bench ctr` and this script (1 and 2 threads) in one go.
"""
import argparse
import json
import math
import sys
import time

import numpy as np
import torch
import torch.nn.functional as F

EMBEDDING_DIM, HEADS, MLP = 16, 2, (200, 80)
LAMBDA_ATTRACT, LAMBDA_REPEL, MARGIN = 0.1, 0.1, 1.0
ITEMS, CATEGORIES, USERS, SCENARIOS = 1000, 20, 2000, 10
VOCABULARIES = {  # + 2: padding (0) and out-of-vocabulary (1), as `Preprocessor::vocabulary_size`
    "item_id": ITEMS + 2,
    "item_cat": CATEGORIES + 2,
    "user_id": USERS + 2,
    "scenario": SCENARIOS + 2,
}
CONTEXT = ("user_id", "scenario")
ITEM_FIELDS = ("item_id", "item_cat")  # target; trigger and history share these tables
MAX_LEN, PAGE_SIZE, CLICK_RATE, POOL = 20, 8, 0.15, 16
D = EMBEDDING_DIM * len(ITEM_FIELDS)  # item width, 32
MODELS = ("din", "din-trigger", "ccn")


def rust_parameter_count(model):
    """`CtrModel::parameter_count()` for this config, from ml/src/ctr/model.rs (`init`,
    `head_width`): embeddings [V, 16] per vocabulary, 4 × (D×D + D) per attention, FiLM's γ, β
    ([C + D → D] each, C the context width) and φ (D → D), the MLP with its [1, out] biases."""
    linear = lambda i, o: i * o + o  # noqa: E731
    count = sum(v * EMBEDDING_DIM for v in VOCABULARIES.values())
    attentions = 1 if model == "din" else 2
    count += attentions * 4 * linear(D, D)
    context = len(CONTEXT) * EMBEDDING_DIM
    head = context + 2 * D + (2 * D if model != "din" else 0) + (2 * D if model == "ccn" else 0)
    if model == "ccn":
        conditioning = (len(CONTEXT) - 1) * EMBEDDING_DIM + 2 * D
        count += 2 * linear(conditioning, D) + linear(D, D)
    for width in MLP:
        count += linear(head, width)
        head = width
    return count + linear(head, 1)


# The Rust counts for this config, worked out by hand from model.rs (embeddings 3038 × 16 = 48608;
# one attention 4 × 1056 = 4224; FiLM 2592 + 2592 + 1056 = 6240; MLP 200·in + 16361 with
# in = 96 / 160 / 224): the torch models below have exactly these many parameters (checked at
# start-up against both this table and `rust_parameter_count`).
RUST_PARAMETERS = {"din": 88_393, "din-trigger": 105_417, "ccn": 124_457}


class Ctr(torch.nn.Module):
    """`CtrModel` with named parameters of the same shapes (`embedding.*`, `attention.*`,
    `film.*`, `mlp.*`; dots become underscores)."""

    def __init__(self, model):
        super().__init__()
        self.model = model
        self.trigger = model != "din"
        self.ccn = model == "ccn"
        self.p = torch.nn.ParameterDict()
        for name, size in sorted(VOCABULARIES.items()):
            self.p[f"embedding_{name}"] = torch.nn.Parameter(torch.randn(size, EMBEDDING_DIM) * 0.05)
        for attention in ("target", "trigger") if self.trigger else ("target",):
            for part in ("q", "k", "v", "o"):
                self._linear(f"attention_{attention}_{part}", D, D)
        context = len(CONTEXT) * EMBEDDING_DIM
        if self.ccn:
            conditioning = (len(CONTEXT) - 1) * EMBEDDING_DIM + 2 * D
            self._linear("film_gamma", conditioning, D)
            self._linear("film_beta", conditioning, D)
            self._linear("film_phi", D, D)
        inputs = context + 2 * D + (2 * D if self.trigger else 0) + (2 * D if self.ccn else 0)
        for i, width in enumerate(MLP):
            self._linear(f"mlp_{i}", inputs, width)
            inputs = width
        self._linear("mlp_out", inputs, 1)

    def _linear(self, name, inputs, outputs):
        self.p[f"{name}_weight"] = torch.nn.Parameter(torch.randn(inputs, outputs) / math.sqrt(max(inputs, 1)))
        self.p[f"{name}_bias"] = torch.nn.Parameter(torch.zeros(1, outputs))

    def linear(self, name, x):
        return torch.addmm(self.p[f"{name}_bias"], x, self.p[f"{name}_weight"])

    def embed(self, vocabulary, ids):
        return F.embedding(ids, self.p[f"embedding_{vocabulary}"])

    def item(self, ids):  # ids: one [n] tensor per item field → [n, D]
        return torch.cat([self.embed(f, i) for f, i in zip(ITEM_FIELDS, ids)], 1)

    def attention(self, name, query, keys, batch):
        b, l, width = keys.shape
        hd = width // HEADS
        q = self.linear(f"attention_{name}_q", query).reshape(b, 1, HEADS, hd).transpose(1, 2)
        flat = keys.reshape(b * l, width)
        k = self.linear(f"attention_{name}_k", flat).reshape(b, l, HEADS, hd).transpose(1, 2)
        v = self.linear(f"attention_{name}_v", flat).reshape(b, l, HEADS, hd).transpose(1, 2)
        scores = q.matmul(k.transpose(2, 3)) / math.sqrt(hd) + batch["additive_mask"]  # [b, h, 1, L]
        out = scores.softmax(3).matmul(v).reshape(b, width)
        return self.linear(f"attention_{name}_o", out) * batch["present"]

    def forward(self, batch):
        b = batch["rows"]
        target = self.item(batch["target"])
        history = self.item(batch["history"]).reshape(b, MAX_LEN, D)
        context = [self.embed(f, batch[f]) for f in CONTEXT]
        head = context + [target, self.attention("target", target, history, batch)]
        z = None
        if self.trigger:
            trigger = self.item(batch["trigger"])
            head += [trigger, self.attention("trigger", trigger, history, batch)]
            if self.ccn:
                # The user as their history's mean, not their id (ml/src/ctr/model.rs).
                mean_history = (history * batch["mean_weights"].unsqueeze(2)).sum(1)
                scenario = [c for f, c in zip(CONTEXT, context) if f != "user_id"]
                cond = torch.cat(scenario + [mean_history, trigger], 1)
                gamma = self.linear("film_gamma", cond) + 1.0
                beta = self.linear("film_beta", cond)
                z = torch.tanh(self.linear("film_phi", target * gamma + beta))
                head += [z, z * mean_history]
                z = z / (z.pow(2).sum(1, keepdim=True) + 1e-12).sqrt()
        x = torch.cat(head, 1)
        for i in range(len(MLP)):
            x = torch.relu(self.linear(f"mlp_{i}", x))
        return self.linear("mlp_out", x).reshape(b), z


def page_pairs(pages, labels):
    """Every unordered same-page pair (i < j) as index tensors, split into attractive (same
    label) and repulsive (mono-click) ones; `page_pairs` with co_non_click_keep = 1."""
    same = (pages[:, None] == pages[None, :]).triu(1)
    i, j = same.nonzero(as_tuple=True)
    attractive = labels[i] == labels[j]
    return (i[attractive], j[attractive]), (i[~attractive], j[~attractive])


def pair_loss(z, pairs, repel):
    i, j = pairs
    if i.numel() == 0:  # a kind with no pair contributes nothing
        return None
    weights = torch.ones(i.numel())
    squared = (z.index_select(0, i) - z.index_select(0, j)).pow(2).sum(1)
    if repel:
        squared = (MARGIN - (squared + 1e-12).sqrt()).clamp_min(0.0).pow(2)
    return (squared * weights).sum() / weights.sum()


def make_batches(rows, seed):
    """POOL batches of `rows` rows (whole pages of PAGE_SIZE), as tensors."""
    rng = np.random.default_rng(seed)
    item_cat = rng.integers(2, CATEGORIES + 2, size=ITEMS + 2)  # ids 2.. are real items
    user_length = rng.integers(0, MAX_LEN + 1, size=USERS + 2)
    user_history = rng.integers(2, ITEMS + 2, size=(USERS + 2, MAX_LEN))
    pages_per_batch = -(-rows // PAGE_SIZE)
    rows = pages_per_batch * PAGE_SIZE
    batches = []
    for n in range(POOL):
        users = rng.integers(2, USERS + 2, size=pages_per_batch)
        scenarios = rng.integers(2, SCENARIOS + 2, size=pages_per_batch)
        triggers = rng.integers(2, ITEMS + 2, size=pages_per_batch)
        items = np.concatenate([rng.choice(np.arange(2, ITEMS + 2), PAGE_SIZE, replace=False)
                                for _ in range(pages_per_batch)])
        rep = lambda a: np.repeat(a, PAGE_SIZE)  # noqa: E731
        user = rep(users)
        length = user_length[user]
        real = np.arange(MAX_LEN)[None, :] < length[:, None]
        hist = np.where(real, user_history[user], 0)
        hist_cat = np.where(real, item_cat[hist], 0)
        mean_weights = np.where(real, 1.0 / np.maximum(length, 1)[:, None], 0.0)
        long = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.int64).reshape(-1))  # noqa: E731
        f32 = lambda a: torch.from_numpy(np.ascontiguousarray(a, dtype=np.float32))  # noqa: E731
        batches.append({
            "rows": rows,
            "user_id": long(user),
            "scenario": long(rep(scenarios)),
            "target": (long(items), long(item_cat[items])),
            "trigger": (long(rep(triggers)), long(item_cat[rep(triggers)])),
            "history": (long(hist), long(hist_cat)),  # [b·L] each
            "additive_mask": f32(np.where(real, 0.0, -1e9).reshape(rows, 1, 1, MAX_LEN)),
            "mean_weights": f32(mean_weights),
            "present": f32((length > 0).reshape(rows, 1)),
            "pages": long(np.repeat(np.arange(n * pages_per_batch, (n + 1) * pages_per_batch), PAGE_SIZE)),
            "labels": f32(rng.random(rows) < CLICK_RATE),
        })
    return batches


def run(model_name, args, batches):
    torch.manual_seed(args.seed)
    model = Ctr(model_name)
    parameters = sum(p.numel() for p in model.parameters())
    # The torch model has exactly the Rust model's parameter_count() for the same config.
    assert parameters == RUST_PARAMETERS[model_name] == rust_parameter_count(model_name), (
        model_name, parameters, RUST_PARAMETERS[model_name], rust_parameter_count(model_name))
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)

    def step(batch):
        logits, z = model(batch)
        loss = F.binary_cross_entropy_with_logits(logits, batch["labels"])
        if z is not None:
            attract, repel = page_pairs(batch["pages"], batch["labels"])
            term = pair_loss(z, attract, repel=False)
            if term is not None:
                loss = loss + LAMBDA_ATTRACT * term
            term = pair_loss(z, repel, repel=True)
            if term is not None:
                loss = loss + LAMBDA_REPEL * term
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for s in range(args.warmup):
        step(batches[s % len(batches)])
    start = time.perf_counter()
    for s in range(args.steps):
        loss = step(batches[(args.warmup + s) % len(batches)])
    seconds = time.perf_counter() - start
    rows = batches[0]["rows"]
    return {
        "model": model_name,
        "threads": torch.get_num_threads(),
        "batch": rows,
        "steps_per_second": round(args.steps / seconds, 2),
        "rows_per_second": round(args.steps * rows / seconds, 1),
        "final_loss": round(loss, 5),
        "parameters": parameters,
        "torch": torch.__version__,
    }


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--model", choices=MODELS, help="one model (default: all three in turn)")
    parser.add_argument("--batch", type=int, default=256, help="rows per batch (whole pages of 8)")
    parser.add_argument("--steps", type=int, default=200, help="timed steps")
    parser.add_argument("--warmup", type=int, default=20, help="untimed steps first")
    parser.add_argument("--threads", type=int, default=1, help="torch.set_num_threads")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="one JSON object per model")
    args = parser.parse_args()
    if args.batch < 1 or args.steps < 1 or args.warmup < 0 or args.threads < 1:
        parser.error("--batch, --steps and --threads must be positive, --warmup non-negative")
    torch.set_num_threads(args.threads)
    batches = make_batches(args.batch, args.seed)
    for name in [args.model] if args.model else MODELS:
        result = run(name, args, batches)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(f"ctr {name} batch {result['batch']}: {result['steps_per_second']} steps/s, "
                  f"{result['rows_per_second']} rows/s, final loss {result['final_loss']}, "
                  f"{result['parameters']} parameters (Rust parameter_count: {RUST_PARAMETERS[name]}), "
                  f"PyTorch {torch.__version__}, {result['threads']} thread(s)", flush=True)
    if args.json:
        print(f"torch {torch.__version__}, {torch.get_num_threads()} thread(s)", file=sys.stderr)


if __name__ == "__main__":
    main()
