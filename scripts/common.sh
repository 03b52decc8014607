# Shared settings of fuselab's scripts; sourced, not run.
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PATH="${CARGO_HOME:-$HOME/.cargo}/bin:$ROOT/node_modules/.bin:$PATH"
# Keep builds outside the clone where the machine offers a cache (CI keeps /var/cache/fuselab).
if [ -z "${CARGO_TARGET_DIR:-}" ] && [ -d /var/cache/fuselab ] && [ -w /var/cache/fuselab ]; then
  export CARGO_TARGET_DIR=/var/cache/fuselab/target
fi
TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}"
# burn-wgpu's kernel cache and Mesa's shader cache live here; keeping them saves ~30 s per process.
export XDG_CACHE_HOME="${XDG_CACHE_HOME:-$HOME/.cache}"
# The native crates, built and tested as one set with one profile so features never re-unify.
NATIVE_PACKAGES=(-p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab)
# The crates that are compiled to wasm32 for the browser.
WEB_PACKAGES=(-p fuselab-frontend -p fuselab-workers -p fuselab-shared -p fuselab-shaders -p fuselab-ml -p fuselab-ui)
export FUSELAB_T0="${FUSELAB_T0:-$(date +%s)}"
# Prints a step heading with the seconds since the outermost script started.
step() { printf '\n== [%4ss] %s\n' "$(($(date +%s) - FUSELAB_T0))" "$*" >&2; }
