#!/usr/bin/env bash
# Installs what building, running (`setup.sh run`) or testing (`setup.sh test`) fuselab needs and
# is missing. Nothing is downloaded from outside the package registries (apt, crates.io, npm,
# PyPI for the demo's data).
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
mode="${1:-run}"

# ffmpeg decodes videos for `fuselab pose predict`.
packages=(mesa-vulkan-drivers libvulkan1 ffmpeg)
# The job tests run against a throwaway PostgreSQL cluster (scripts/with-postgres.sh).
[ "$mode" = test ] && packages+=(chromium chromium-driver postgresql)
command -v npm >/dev/null || packages+=(nodejs npm)
# pip fetches the demo pool's data (scikit-learn's wheel; scripts/fetch-digits.sh).
python3 -m pip --version >/dev/null 2>&1 || packages+=(python3-pip)
missing=()
for package in "${packages[@]}"; do
  dpkg -s "$package" >/dev/null 2>&1 || missing+=("$package")
done
if [ ${#missing[@]} -gt 0 ]; then
  step "apt: installing ${missing[*]}"
  sudo=()
  [ "$(id -u)" -ne 0 ] && sudo=(sudo)
  "${sudo[@]}" apt-get update -q
  DEBIAN_FRONTEND=noninteractive "${sudo[@]}" apt-get install -y -q "${missing[@]}"
fi

if ! rustup target list --installed | grep -qx wasm32-unknown-unknown; then
  step "rustup: adding wasm32-unknown-unknown"
  rustup target add wasm32-unknown-unknown
fi
if [ "$mode" = test ]; then
  for component in rustfmt clippy; do
    rustup component list --installed | grep -q "^$component" || rustup component add "$component"
  done
fi

# wasm-bindgen-cli must be exactly the wasm-bindgen version in Cargo.lock.
wasm_bindgen=$(grep -A1 '^name = "wasm-bindgen"$' Cargo.lock | sed -n 's/^version = "\(.*\)"$/\1/p')
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen" ]; then
  step "cargo: installing wasm-bindgen-cli $wasm_bindgen (a few minutes, once)"
  # Not --locked: the lock file it ships pins crates this registry does not have.
  cargo install wasm-bindgen-cli --version "$wasm_bindgen"
fi

# wasm-split-cli splits the app's wasm into the shell and one lazily fetched part per page (the
# pages' `#[lazy]` functions); its format must match the `wasm_split_helpers` leptos pins (0.2.3).
if ! cargo install --list | grep -q '^wasm_split_cli_support v0.2.3:'; then
  step "cargo: installing wasm-split-cli 0.2.3 (a minute or two, once)"
  cargo install --locked wasm_split_cli_support --version 0.2.3 --features build-binary
fi

# npm: wasm-opt (binaryen) and playwright-core, exactly as package-lock.json pins them.
if ! cmp -s package-lock.json node_modules/.fuselab-installed 2>/dev/null; then
  step "npm: installing build and test tools"
  npm ci --no-audit --no-fund
  cp package-lock.json node_modules/.fuselab-installed
fi
