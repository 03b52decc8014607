#!/usr/bin/env bash
# Builds one fuzz target (AddressSanitizer + libFuzzer on the stable toolchain) and fuzzes it.
#
#   fuzz/run.sh <target> [seconds] [extra libFuzzer flags...]
#
# New inputs go to fuzz/corpus-run/<target>/ (not committed); the committed corpus and the
# seeds are read. Findings land in fuzz/artifacts/<target>/. Minimise the run's corpus into the
# committed one afterwards: see docs/fuzzing.md.
set -euo pipefail
cd "$(dirname "$0")"
target=${1:?usage: fuzz/run.sh <target> [seconds] [libFuzzer flags...]}
seconds=${2:-600}
shift $(( $# < 2 ? $# : 2 ))
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-/var/cache/fuselab/fuzz-target}
# The backend (a dependency of the targets) embeds the browser app at build time.
if [[ -z ${FUSELAB_WEB_DIST:-} && ! -f ../frontend/dist/index.html ]]; then
  echo "fuzz/run.sh: the backend embeds frontend/dist; run scripts/build-web.sh first (or set FUSELAB_WEB_DIST)" >&2
  exit 2
fi
# cargo-fuzz passes -Zsanitizer=address, which the stable compiler accepts only with this.
export RUSTC_BOOTSTRAP=1
mkdir -p "corpus-run/$target" "corpus/$target" "artifacts/$target"
seeds=()
[[ -d corpus-seeds/$target ]] && seeds=("corpus-seeds/$target")
# The mask key's payload alone is 150,528 bytes; photos and forms of photos get 64 KiB; the
# other inputs stay small.
max_len=16384
case $target in
  mask_key) max_len=200000 ;;
  image | multipart) max_len=65536 ;;
esac
# An allocation bomb counts: one allocation above 1 GiB or 2 GiB resident is a finding (the
# parsers' own limits allow 512 MiB of decompressed data). -timeout: seconds per input.
exec cargo fuzz run "$target" "corpus-run/$target" "corpus/$target" "${seeds[@]}" -- \
  -max_total_time="$seconds" -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 \
  -max_len="$max_len" -print_final_stats=1 "$@"
