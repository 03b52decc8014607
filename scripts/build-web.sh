#!/usr/bin/env bash
# Builds the browser app into frontend/dist (wasm + JS glue + index.html + CSS), which the
# `fuselab` binary embeds. Unchanged files keep their timestamps so the binary is not rebuilt.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"

step "cargo: building the browser app (wasm32, profile web)"
cargo build -p fuselab-frontend -p fuselab-workers --target wasm32-unknown-unknown --profile web

stage="$(mktemp -d)"
trap 'rm -rf "$stage"' EXIT
mkdir -p "$stage/pkg"
web="$TARGET_DIR/wasm32-unknown-unknown/web"
# The app: split into its shell and a part per page (`#[lazy]` in shell.rs), each fetched when a
# page needs it; the shell goes through wasm-bindgen (keeping the function table and memory
# exported: the parts share them), the parts are loaded by `__wasm_split.js`.
wasm-split-cli --target web --out-name fuselab_frontend "$web/fuselab_frontend.wasm" "$stage/split"
wasm-bindgen --target web --no-typescript --keep-lld-exports --out-dir "$stage/pkg" \
  "$stage/split/fuselab_frontend.wasm"
rm "$stage/split/fuselab_frontend.wasm"
mv "$stage/split/"* "$stage/pkg/"
# The workers' module (burn and the engines), fetched only when a page first starts a worker.
wasm-bindgen --target web --no-typescript --out-dir "$stage/pkg" "$web/fuselab_workers.wasm"
for wasm in "$stage"/pkg/*.wasm; do
  wasm-opt -Oz "$wasm" -o "$wasm"
done
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
size() { printf '%s bytes, %s gzipped' "$(cat "$@" | wc -c)" "$(cat "${@/%/.gz}" | wc -c)"; }
printf 'the app shell (fuselab_frontend_bg.wasm): %s\n' "$(size frontend/dist/pkg/fuselab_frontend_bg.wasm)" >&2
printf 'its page parts (%s files): %s\n' "$(ls frontend/dist/pkg/{split,chunk}_*.wasm | wc -l)" \
  "$(size frontend/dist/pkg/{split,chunk}_*.wasm)" >&2
printf 'the workers (fuselab_workers_bg.wasm): %s\n' "$(size frontend/dist/pkg/fuselab_workers_bg.wasm)" >&2
