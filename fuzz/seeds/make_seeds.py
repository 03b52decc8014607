"""Writes the hand-made seed inputs of the fuzz targets into fuzz/corpus-seeds/<target>/.

Run from the repository root: `python3 fuzz/seeds/make_seeds.py` (numpy 2.4.6 made the committed
corpora's seeds). The mask key seeds come from `cargo run --example seeds` (see docs/fuzzing.md);
the campaign's corpus, minimised, is what gets committed under fuzz/corpus/.
"""

import glob
import io
import json
import os
import zipfile

import numpy as np

OUT = "fuzz/corpus-seeds"


def put(target, name, data):
    os.makedirs(f"{OUT}/{target}", exist_ok=True)
    if isinstance(data, str):
        data = data.encode()
    with open(f"{OUT}/{target}/{name}", "wb") as f:
        f.write(data)


def npy(array):
    buffer = io.BytesIO()
    np.save(buffer, array, allow_pickle=True)
    return buffer.getvalue()


def npz(compressed=False, **arrays):
    buffer = io.BytesIO()
    (np.savez_compressed if compressed else np.savez)(buffer, **arrays)
    return buffer.getvalue()


# --- npy: the test fixtures, pools as concatenated files, and every dtype the reader may meet.
for path in glob.glob("shared/tests/npy/*.npy"):
    put("npy", os.path.basename(path), open(path, "rb").read())
for folder in ["hand_3m_3c", "mixed", "text_dtype"]:
    files = sorted(glob.glob(f"shared/tests/npy/{folder}/*.npy"), key=lambda p: "labels" not in p)
    put("npy", f"pool_{folder}", b"".join(open(p, "rb").read() for p in files))
rng = np.random.default_rng(7)
labels = rng.integers(0, 3, 12)
for dtype in ["i1", "i2", "<i4", ">i4", "<i8", "u1", "u2", "u4", "u8", "?", "<f2", "<f4", ">f8", "<f8"]:
    put("npy", f"labels_{dtype.replace('<', 'le').replace('>', 'be')}.npy", npy(labels.astype(dtype)))
probabilities = rng.dirichlet(np.ones(3), 12)
put("npy", "probabilities_f4.npy", npy(probabilities.astype("<f4")))
put("npy", "probabilities_fortran_f8.npy", npy(np.asfortranarray(probabilities)))
put("npy", "scalar.npy", npy(np.int64(3)))
put("npy", "empty.npy", npy(np.zeros((0,), "<i8")))
put("npy", "three_d.npy", npy(np.zeros((2, 2, 2), "<f8")))
put("npy", "unicode.npy", npy(np.array(["a", "bc"])))
put("npy", "object.npy", npy(np.array([1, None], dtype=object)))
put("npy", "structured.npy", npy(np.zeros(2, dtype=[("a", "<i4"), ("b", "<f8")])))
put("npy", "complex.npy", npy(np.zeros(2, "<c16")))
v2 = bytearray(npy(labels.astype("<i8")))
put("npy", "version_2.npy", bytes(v2[:6]) + b"\x02\x00" + int.from_bytes(v2[8:10], "little").to_bytes(4, "little") + bytes(v2[10:]))
pool = [labels.astype("<i8")] + [rng.integers(0, 3, 12).astype("<i8") for _ in range(3)]
put("npy", "pool_ints", b"".join(npy(a) for a in pool))
put("npy", "pool_probabilities", npy(labels.astype("<i8")) + b"".join(npy(rng.dirichlet(np.ones(3), 12)) for _ in range(3)))

# --- npz: the fixtures and generated archives, stored and deflated.
for path in glob.glob("shared/tests/npy/*.npz"):
    put("npz", os.path.basename(path), open(path, "rb").read())
predictions = rng.integers(0, 3, (4, 12))
put("npz", "predictions.npz", npz(labels=labels, predictions=predictions))
put("npz", "probabilities.npz", npz(True, labels=labels, probabilities=rng.dirichlet(np.ones(3), (4, 12))))
put("npz", "both_f4.npz", npz(labels=labels.astype("<i4"), predictions=predictions.astype("u1"), probabilities=rng.dirichlet(np.ones(3), (4, 12)).astype("<f4")))
put("npz", "names.npz", npz(True, labels=labels, predictions=predictions, names=np.array(["a", "b", "c", "d"])))
put("npz", "empty.npz", npz())
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr("labels.npy", npy(labels))
    archive.writestr("nested/predictions.npy", npy(predictions))
    archive.writestr("readme.txt", "not an array")
put("npz", "odd_members.npz", buffer.getvalue())
buffer = io.BytesIO()
with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as archive:
    archive.writestr("labels.npy", npy(np.zeros(1 << 20, "u1")))
put("npz", "inflates_1mib.npz", buffer.getvalue())

# --- pool_json and csv from the reference vectors, plus hand-made ones.
for path in sorted(glob.glob("shared/tests/vectors/focal/*.json")):
    case = json.load(open(path))
    if "inputs" not in case:
        continue
    inputs = case["inputs"]
    names = [f"m{i}" for i in range(len(inputs["predictions"]))]
    models = [{"name": n, "predictions": p} for n, p in zip(names, inputs["predictions"])]
    stem = os.path.basename(path)[:-5]
    if inputs["n_samples"] <= 100:
        put("pool_json", f"{stem}.json", json.dumps({"labels": inputs["labels"], "models": models}))
        if inputs.get("probabilities"):
            with_probabilities = [{"name": n, "probabilities": p} for n, p in zip(names, inputs["probabilities"])]
            put("pool_json", f"{stem}_probabilities.json", json.dumps({"labels": inputs["labels"], "models": with_probabilities, "classes": inputs["n_classes"]}))
        rows = ["label," + ",".join(names)] + [",".join(map(str, [l] + [p[i] for p in inputs["predictions"]])) for i, l in enumerate(inputs["labels"])]
        put("csv", f"{stem}.csv", "\n".join(rows) + "\n")
        put("csv", f"{stem}_pair", "label\n" + "\n".join(map(str, inputs["labels"])) + "\n\0" + ",".join(names) + "\n" + "\n".join(",".join(str(p[i]) for p in inputs["predictions"]) for i in range(len(inputs["labels"]))) + "\n")
put("pool_json", "hand.json", '{"labels":[0,1,2,1],"models":[{"name":"a","predictions":[0,1,2,2]},{"name":"b","predictions":[0,0,2,1],"probabilities":[[0.9,0.05,0.05],[0.6,0.3,0.1],[0,0,1],[0.2,0.7,0.1]]},{"name":"c","probabilities":[[0.5,0.5,0],[0.1,0.8,0.1],[0.3,0.3,0.4],[0.25,0.5,0.25]]}],"classes":3}')
put("pool_json", "gaps.json", '{"labels":[0,5],"models":[{"name":"a","predictions":[0,5]},{"name":"b","predictions":[1,5]}],"classes":7}')
put("pool_json", "invalid.json", '{"labels":[0],"models":[{"name":"a"}]}')
put("csv", "quoted.csv", 'label,"a,1","b ""q""",  c  \n0,0,1,0\n1,1,1,0\n\n2,2,0,2\n')
put("csv", "crlf.csv", "label,a,b\r\n0,0,1\r\n1,1,1\r\n")
put("csv", "pair_header_numbers", "0\n1\n2\n\0a,b\n0,0\n1,2\n2,2\n")
