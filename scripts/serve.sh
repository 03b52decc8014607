#!/usr/bin/env bash
# Sets up what is missing, builds fuselab and serves it on http://127.0.0.1:8080.
# Extra arguments go to `fuselab serve` (e.g. --addr 0.0.0.0:8080).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scripts/setup.sh run
scripts/build-web.sh
step "cargo: building fuselab (release)"
cargo build --release -p fuselab
exec "$TARGET_DIR/release/fuselab" serve "$@"
