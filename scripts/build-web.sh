#!/usr/bin/env bash
# Builds the browser app into frontend/dist (wasm + JS glue + index.html + CSS), which the
# `fuselab` binary embeds. Unchanged files keep their timestamps so the binary is not rebuilt.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "cargo: building the browser app (wasm32, profile web)"
cargo build "${WEB_PACKAGES[@]:0:2}" --target wasm32-unknown-unknown --profile web

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/pkg"
wasm-bindgen --target web --no-typescript --out-dir "$stage/pkg" \
  "$TARGET_DIR/wasm32-unknown-unknown/web/fuselab_frontend.wasm"
wasm-opt -Oz "$stage/pkg/fuselab_frontend_bg.wasm" -o "$stage/pkg/fuselab_frontend_bg.wasm"
cp index.html "$stage/"
cp frontend/main.js frontend/theme.js frontend/style.css frontend/favicon.svg frontend/worker.js frontend/face-worker.js \
  frontend/pose-worker.js "$stage/"

# Gzipped twins of what compresses, for browsers that accept gzip (`-n`: no name or time, so an
# unchanged file gives unchanged bytes).
find "$stage" -type f \( -name '*.wasm' -o -name '*.js' -o -name '*.css' -o -name '*.html' \
  -o -name '*.svg' \) -exec gzip -9 -n -k {} +

mkdir -p frontend/dist
(cd "$stage" && find . -type f) | while read -r file; do
  if ! cmp -s "$stage/$file" "frontend/dist/$file"; then
    mkdir -p "frontend/dist/$(dirname "$file")"
    cp "$stage/$file" "frontend/dist/$file"
  fi
done
(cd frontend/dist && find . -type f) | while read -r file; do
  [ -e "$stage/$file" ] || rm "frontend/dist/$file"
done
wasm="frontend/dist/pkg/fuselab_frontend_bg.wasm"
printf 'wasm: %s bytes, %s bytes gzipped\n' "$(stat -c %s "$wasm")" "$(stat -c %s "$wasm.gz")" >&2
