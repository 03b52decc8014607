#!/usr/bin/env bash
# CTR training speed at batch 256, fuselab (burn) against PyTorch on the same models, batch and
# machine, measured one after the other in one run: the `ctr <model> batch 256: X steps/s` lines
# of `cargo bench --bench ctr` and tests/bench/ctr_torch.py (DIN, DIN + trigger, CCN) with 1 and
# 2 threads, then a table and the ratios fuselab / PyTorch (above 1: fuselab is faster).
#
# The PyTorch venv is $CTR_BENCH_VENV (default /root/venvs/ctr-bench); when it has no python it
# is created with the pinned versions below (PyPI's torch wheel is the CUDA build, ~3 GB with its
# nvidia-* packages; only the CPU is used). Time on an otherwise idle machine: with a busy core,
# PyTorch's 2-thread runs slow down many times over (OpenMP threads spin at barriers; exporting
# OMP_WAIT_POLICY=PASSIVE avoids most of that: 2.8 → 38 steps/s for CCN under a busy CI build).
#
#   tests/bench/ctr.sh                       # CTR_STEPS=200 CTR_WARMUP=20 by default
#   CTR_BENCH_VENV=~/venvs/ctr CTR_STEPS=100 tests/bench/ctr.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
TORCH_VERSION=2.15.0
NUMPY_VERSION=2.4.6
venv="${CTR_BENCH_VENV:-/root/venvs/ctr-bench}"
steps="${CTR_STEPS:-200}"
warmup="${CTR_WARMUP:-20}"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/fuselab/target}"
if [ ! -x "$venv/bin/python" ]; then
  echo "creating $venv (torch $TORCH_VERSION, numpy $NUMPY_VERSION)" >&2
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "torch==$TORCH_VERSION" "numpy==$NUMPY_VERSION"
fi
py="$venv/bin/python"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

if ! cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab --bench ctr \
  >"$work/rust.out" 2>"$work/rust.err"; then
  echo "cargo bench --bench ctr failed:" >&2
  tail -n 30 "$work/rust.err" >&2
  exit 1
fi
grep -E '^ctr [^ ]+ batch [0-9]+: *[0-9.]+ steps/s' "$work/rust.out" >"$work/rust.lines" || {
  echo "cargo bench --bench ctr printed no 'ctr <model> batch N: X steps/s' line:" >&2
  tail -n 30 "$work/rust.out" >&2
  exit 1
}
sed 's/^/fuselab: /' "$work/rust.lines"

for threads in 1 2; do
  "$py" tests/bench/ctr_torch.py --json --batch 256 --steps "$steps" --warmup "$warmup" \
    --threads "$threads" 2>/dev/null | tee "$work/torch-$threads.json" | sed "s/^/PyTorch, $threads thread(s): /"
done

"$py" - "$work" <<'EOF'
import json, re, sys
work = sys.argv[1]
rust = {}
for line in open(f"{work}/rust.lines"):
    m = re.match(r"ctr (\S+) batch (\d+): *([0-9.]+) steps/s", line)
    if m and m.group(2) == "256":
        rust[m.group(1)] = float(m.group(3))
torch = {t: {r["model"]: r for r in map(json.loads, open(f"{work}/torch-{t}.json"))} for t in (1, 2)}
version = next(iter(torch[1].values()))["torch"]
print(f"\nsteps/s at batch 256 (PyTorch {version}, CPU)")
print(f"{'model':<12} {'fuselab':>9} {'torch 1t':>9} {'torch 2t':>9} {'fl/torch 1t':>12} {'fl/torch 2t':>12}")
for model in ("din", "din-trigger", "ccn"):
    fl = rust.get(model)
    t1, t2 = (torch[t][model]["steps_per_second"] for t in (1, 2))
    cell = lambda x: f"{x:9.2f}" if x is not None else f"{'n/a':>9}"
    ratio = lambda t: f"{fl / t:11.2f}x" if fl is not None else f"{'n/a':>12}"
    print(f"{model:<12} {cell(fl)} {cell(t1)} {cell(t2)} {ratio(t1)} {ratio(t2)}")
EOF
