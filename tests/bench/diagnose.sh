#!/usr/bin/env bash
# Where training time goes (issue 22, item 1): fuselab's mask and tiny-Llama benches (burn flex)
# with one and two rayon threads, their PyTorch twins with --threads 1 and 2, one after the
# other, then a `perf record -g` profile of each fuselab bench with two threads (the top symbols
# printed, perf.data kept under $OUT). Run it on an idle machine: with two cores, anything else
# running distorts both sides.
#
#   FUSELAB_DATA_DIR=… PY=/root/venvs/p3mask-bench/bin/python tests/bench/diagnose.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
: "${FUSELAB_DATA_DIR:?set FUSELAB_DATA_DIR to the data directory of fuselab models fetch}"
py="${PY:-python3}"
out="${OUT:-/tmp/fuselab-diagnose}"
mkdir -p "$out"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-/var/cache/fuselab/target}"
built=$(cargo bench -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab \
  --bench mask --bench llm --no-run 2>&1)
bench() { echo "$built" | sed -nE "s/.*Executable benches\/$1\.rs \((.*)\)/\1/p"; }
mask=$(bench mask)
llm=$(bench llm)
[ -x "$mask" ] && [ -x "$llm" ] || { echo "bench executables not found:"; echo "$built"; exit 1; }

# The tiny Llama only: without FUSELAB_DATA_DIR the llm bench skips SmolLM2.
tiny() { env -u FUSELAB_DATA_DIR RAYON_NUM_THREADS="$1" "$llm" | grep 'tiny Llama'; }

for threads in 1 2; do
  echo "== $threads thread(s)"
  echo "fuselab mask:    $(RAYON_NUM_THREADS=$threads "$mask" | tail -1)"
  echo "PyTorch mask:    $("$py" tests/bench/p3mask_torch.py --data-dir "$FUSELAB_DATA_DIR" \
    --epochs 6 --threads "$threads" 2>/dev/null | tail -1)"
  tiny "$threads" | sed 's/^/fuselab llama: /'
  echo "PyTorch llama:   $("$py" tests/bench/llama_train_torch.py --threads "$threads")"
done

echo "== profiles (2 threads, self time, symbols above 1 %)"
for name in mask llm; do
  exe=$(bench "$name")
  if [ "$name" = llm ]; then
    env -u FUSELAB_DATA_DIR RAYON_NUM_THREADS=2 perf record -q -g -o "$out/$name.perf.data" \
      "$exe" > /dev/null 2>&1
  else
    RAYON_NUM_THREADS=2 perf record -q -g -o "$out/$name.perf.data" "$exe" > /dev/null 2>&1
  fi
  echo "-- $name"
  perf report -i "$out/$name.perf.data" --no-children --percent-limit 1 --stdio -g none \
    --sort dso,symbol 2>/dev/null | grep -E '^ +[0-9]' | cut -c1-150
done
