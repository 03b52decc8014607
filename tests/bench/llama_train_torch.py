#!/usr/bin/env python3
"""PyTorch (CPU) twin of fuselab's tiny-Llama training step, for timing against burn.

The same model as `LlamaConfig::tiny` in ml/src/llm/model.rs (d 64, 2 layers, 4 heads over 2
key/value heads, SwiGLU 128, RMSNorm eps 1e-5, rotate-half RoPE theta 1e4, untied head,
vocab 512), the same batch (16 rows of 64 random token ids, loss on every next token) and the
same optimiser (AdamW, lr 1e-3, betas 0.9/0.999, eps 1e-8), full-parameter training.

    python tests/bench/llama_train_torch.py --steps 50 --threads 2

Compare with `cargo bench -p fuselab --bench llm` (same shapes; it prints tokens/s too).
"""
import argparse
import json
import math
import platform
import time

import torch
import torch.nn.functional as F

VOCAB, D, LAYERS, HEADS, KV, FFN, EPS, THETA = 512, 64, 2, 4, 2, 128, 1e-5, 1e4
HD = D // HEADS


class Block(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.q = torch.nn.Linear(D, D, bias=False)
        self.k = torch.nn.Linear(D, KV * HD, bias=False)
        self.v = torch.nn.Linear(D, KV * HD, bias=False)
        self.o = torch.nn.Linear(D, D, bias=False)
        self.gate = torch.nn.Linear(D, FFN, bias=False)
        self.up = torch.nn.Linear(D, FFN, bias=False)
        self.down = torch.nn.Linear(FFN, D, bias=False)
        self.n1 = torch.nn.Parameter(torch.ones(D))
        self.n2 = torch.nn.Parameter(torch.ones(D))


def rms(x, w):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + EPS) * w


def rope(x, cos, sin):
    half = x.shape[-1] // 2
    lo, hi = x[..., :half], x[..., half:]
    return torch.cat([lo * cos - hi * sin, hi * cos + lo * sin], -1)


class Llama(torch.nn.Module):
    def __init__(self):
        super().__init__()
        self.embed = torch.nn.Embedding(VOCAB, D)
        self.blocks = torch.nn.ModuleList(Block() for _ in range(LAYERS))
        self.norm = torch.nn.Parameter(torch.ones(D))
        self.head = torch.nn.Linear(D, VOCAB, bias=False)
        for p in self.parameters():
            if p.dim() == 2:
                torch.nn.init.normal_(p, std=0.02)

    def forward(self, ids):
        b, t = ids.shape
        pos = torch.arange(t, dtype=torch.float64)
        freq = THETA ** (-torch.arange(0, HD // 2, dtype=torch.float64) * 2 / HD)
        ang = pos[:, None] * freq[None]
        cos, sin = ang.cos().float(), ang.sin().float()
        mask = torch.full((t, t), float("-inf")).triu(1)
        x = self.embed(ids)
        for blk in self.blocks:
            h = rms(x, blk.n1)
            q = blk.q(h).view(b, t, HEADS, HD).transpose(1, 2)
            k = blk.k(h).view(b, t, KV, HD).transpose(1, 2)
            v = blk.v(h).view(b, t, KV, HD).transpose(1, 2)
            q, k = rope(q, cos, sin), rope(k, cos, sin)
            k = k.repeat_interleave(HEADS // KV, 1)
            v = v.repeat_interleave(HEADS // KV, 1)
            att = (q @ k.transpose(2, 3)) / math.sqrt(HD) + mask
            x = x + blk.o(att.softmax(-1).matmul(v).transpose(1, 2).reshape(b, t, D))
            h = rms(x, blk.n2)
            x = x + blk.down(F.silu(blk.gate(h)) * blk.up(h))
        return self.head(rms(x, self.norm))


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--steps", type=int, default=50)
    parser.add_argument("--warmup", type=int, default=5)
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=64)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = Llama()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3, betas=(0.9, 0.999), eps=1e-8, weight_decay=0.0)
    ids = torch.randint(0, VOCAB, (args.batch, args.seq))

    def step():
        logits = model(ids)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, VOCAB), ids[:, 1:].reshape(-1))
        opt.zero_grad()
        loss.backward()
        opt.step()
        return loss.item()

    for _ in range(args.warmup):
        step()
    start = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    seconds = time.perf_counter() - start
    tokens = args.steps * args.batch * args.seq
    print(json.dumps({
        "framework": f"PyTorch {torch.__version__} (CPU, {args.threads} threads)",
        "machine": platform.processor() or platform.machine(),
        "steps": args.steps,
        "tokens_per_second": round(tokens / seconds, 1),
        "ms_per_step": round(1000 * seconds / args.steps, 2),
        "final_loss": round(loss, 4),
    }))


if __name__ == "__main__":
    main()
