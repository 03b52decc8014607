#!/usr/bin/env python3
"""PyTorch + PEFT (CPU) twin of `fuselab llm topla summary`'s fine-tuning step, for timing.

The same model and weights (SmolLM2-135M-Instruct from the Q4_1 GGUF file `fuselab models fetch`
caches, dequantised to float32 by transformers), the same adaptation (11 marker tokens added
and trained as PEFT's trainable tokens; LoRA r 8, alpha 16, dropout 0 on q/k/v/o), the same
batch (4 rows of 192 random token ids, loss on every next token) and optimiser (AdamW, lr 3e-4,
constant) as the `SmolLM2 LoRA (summary)` line of `cargo bench --bench llm`.

    python3 -m venv /root/venvs/peft-bench
    /root/venvs/peft-bench/bin/pip install torch==2.15.0 transformers==5.25.0 peft==0.21.2 gguf
    /root/venvs/peft-bench/bin/python tests/bench/topla_summary_peft.py --threads 2

Prints tokens/s (padded tokens of the timed steps over their wall time) and the versions.
"""
import argparse
import json
import os
import platform
import time
from pathlib import Path

import peft
import torch
import transformers

MARKERS = ["[BOQ]", "[EOQ]", "[BOA]"] + [f"[{m} {j}]" for j in range(4) for m in ("BOC", "EOC")]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--steps", type=int, default=6)
    parser.add_argument("--warmup", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=192)
    parser.add_argument(
        "--data-dir",
        default=os.environ.get("FUSELAB_DATA_DIR", "/var/cache/fuselab/data"),
        help="fuselab's data directory (models/llm/SmolLM2-135M-Instruct.Q4_1.gguf)",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    gguf = Path(args.data_dir) / "models/llm/SmolLM2-135M-Instruct.Q4_1.gguf"
    started = time.perf_counter()
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, torch_dtype=torch.float32
    )
    load = time.perf_counter() - started
    vocab = model.get_input_embeddings().weight.shape[0]
    tokenizer.add_special_tokens({"additional_special_tokens": MARKERS})
    model.resize_token_embeddings(vocab + len(MARKERS))
    config = peft.LoraConfig(
        r=8,
        lora_alpha=16,
        lora_dropout=0.0,
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj"],
        trainable_token_indices=list(range(vocab, vocab + len(MARKERS))),
        task_type="CAUSAL_LM",
    )
    model = peft.get_peft_model(model, config)
    model.train()
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad], lr=3e-4, weight_decay=0.0
    )
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(0, vocab, (args.batch, args.seq), generator=generator)

    def step() -> float:
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        optimizer.step()
        return float(loss.detach())

    for _ in range(args.warmup):
        step()
    started = time.perf_counter()
    for _ in range(args.steps):
        loss = step()
    seconds = time.perf_counter() - started
    tokens = args.steps * args.batch * args.seq
    print(
        json.dumps(
            {
                "tokens_per_second": tokens / seconds,
                "ms_per_step": 1000 * seconds / args.steps,
                "loss": loss,
                "threads": args.threads,
                "trainable_parameters": trainable,
                "load_seconds": load,
                "torch": torch.__version__,
                "transformers": transformers.__version__,
                "peft": peft.__version__,
                "python": platform.python_version(),
            }
        )
    )


if __name__ == "__main__":
    main()
