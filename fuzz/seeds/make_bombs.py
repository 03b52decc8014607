"""Writes the two deflate bombs of docs/fuzzing.md ("Probes beyond max_len") to /tmp: archives of
about 0.5 MB that inflate to 600 MiB (over npy::MAX_DECOMPRESSED_BYTES) and 500 MiB (under it).
Too large for the fuzzer's -max_len and for the committed corpus, so they are made on demand:

    python3 fuzz/seeds/make_bombs.py
    B=/var/cache/fuselab/fuzz-target/x86_64-unknown-linux-gnu/release
    $B/npz -rss_limit_mb=2048 -malloc_limit_mb=1024 -timeout=10 /tmp/bomb_600mib.npz
    (cd fuzz && cargo run --release --example replay -- npz /tmp/bomb_500mib.npz)
"""

import io
import zipfile

import numpy as np


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array)
    return buffer.getvalue()


for name, size in [("bomb_600mib", 600 << 20), ("bomb_500mib", 500 << 20)]:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
        archive.writestr("labels.npy", npy(np.zeros(size // 8, "<i8")))
        archive.writestr("predictions.npy", npy(np.zeros((2, 16), "<i8")))
    with open(f"/tmp/{name}.npz", "wb") as f:
        f.write(buffer.getvalue())
    print(f"/tmp/{name}.npz: {len(buffer.getvalue())} bytes")
