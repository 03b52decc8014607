#!/usr/bin/env bash
# LLM-TOPLA-Summary's fine-tuning speed, fuselab (burn flex) against PyTorch + PEFT on the same
# model, batch and machine, measured one after the other in one run: the `SmolLM2 LoRA
# (summary)` line of `cargo bench --bench llm` and tests/bench/topla_summary_peft.py with 2 and
# 1 threads. Needs `fuselab models fetch` (SmolLM2) and the PEFT venv of topla_summary_peft.py.
#
#   FUSELAB_DATA_DIR=… PY=/root/venvs/peft-bench/bin/python tests/bench/topla_summary.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${FUSELAB_DATA_DIR:?set FUSELAB_DATA_DIR to the data directory with models/llm}"
py="${PY:-python3}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/fuselab/target}"
fuselab=$(cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab --bench llm 2>/dev/null \
  | grep 'SmolLM2 LoRA (summary)')
echo "fuselab: $fuselab"
rust=$(echo "$fuselab" | sed -E 's/.*: +([0-9.]+) tokens\/s.*/\1/')
for threads in 2 1; do
  torch=$("$py" tests/bench/topla_summary_peft.py --threads "$threads" --data-dir "$FUSELAB_DATA_DIR" 2>/dev/null)
  echo "PyTorch + PEFT, $threads thread(s): $torch"
  tps=$(echo "$torch" | "$py" -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_second"])')
  "$py" -c "print(f'fuselab / PyTorch ($threads thread(s)): {$rust / $tps:.2f}x')"
done
