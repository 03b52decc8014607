#!/usr/bin/env bash
# Fetches the hand-written digits the demo pool is trained on: the copy inside scikit-learn's
# wheel on PyPI (`sklearn/datasets/data/digits.csv.gz`; the UCI "Optical Recognition of
# Handwritten Digits" data, CC BY 4.0, shipped by scikit-learn under BSD-3-Clause). Verifies its
# SHA-256, caches it, and prints its path.
source "$(dirname "${BASH_SOURCE[0]}")/common.sh"
SKLEARN=1.9.1
SHA256=09f66e6debdee2cd2b5ae59e0d6abbb73fc2b0e0185d2e1957e9ebb51e23aa22
cache="$XDG_CACHE_HOME/fuselab"
digits="$cache/digits.csv.gz"
if ! echo "$SHA256  $digits" | sha256sum --check --status 2>/dev/null; then
  step "pip: downloading scikit-learn $SKLEARN's wheel for its digits data"
  mkdir -p "$cache"
  wheels="$(mktemp -d)"
  trap 'rm -rf "$wheels"' EXIT
  python3 -m pip download --quiet --no-deps --only-binary=:all: "scikit-learn==$SKLEARN" -d "$wheels" >&2
  python3 - "$wheels" "$digits.part" <<'PY'
import glob, sys, zipfile
wheel = glob.glob(f"{sys.argv[1]}/scikit_learn-*.whl")[0]
with zipfile.ZipFile(wheel) as archive, open(sys.argv[2], "wb") as out:
    out.write(archive.read("sklearn/datasets/data/digits.csv.gz"))
PY
  echo "$SHA256  $digits.part" | sha256sum --check --status \
    || { echo "digits.csv.gz from scikit-learn $SKLEARN does not have the expected SHA-256" >&2; exit 1; }
  mv "$digits.part" "$digits"
fi
echo "$digits"
