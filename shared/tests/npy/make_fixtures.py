"""Writes the NumPy fixtures read by shared/tests/npy.rs (run from this folder; numpy 2.x).

The values are small and fixed, and repeated in the Rust test, so the test checks that the Rust
reader sees exactly what NumPy wrote.
"""
import numpy as np

labels = np.array([0, 1, 2, 1, 0, 2], dtype=np.int64)
predictions = np.array([[0, 1, 1, 1, 0, 2], [2, 1, 2, 0, 0, 2]], dtype=np.int32)
probabilities = np.asfortranarray(
    np.arange(2 * 6 * 3, dtype=np.float32).reshape(2, 6, 3) / 64
)

np.save("labels.npy", labels)
np.save("predictions_be.npy", predictions.astype(">u2"))
np.save("probabilities_fortran.npy", probabilities)
np.savez("pool.npz", labels=labels, predictions=predictions, probabilities=probabilities)
np.savez_compressed(
    "pool_compressed.npz", labels=labels, predictions=predictions, probabilities=probabilities
)

# A reference pool (the vectors' hand_4m_ties case) as .npz, and hand_3m_3c as a folder of
# float32 probability arrays, for the CLI tests; then two malformed folders.
import json
import os

case = json.load(open("../vectors/focal/hand_4m_ties.json"))["inputs"]
np.savez(
    "hand_4m_ties.npz",
    labels=np.array(case["labels"], dtype=np.int64),
    predictions=np.array(case["predictions"], dtype=np.int64),
    probabilities=np.array(case["probabilities"], dtype=np.float64),
)
case = json.load(open("../vectors/focal/hand_3m_3c.json"))["inputs"]
os.makedirs("hand_3m_3c", exist_ok=True)
np.save("hand_3m_3c/labels.npy", np.array(case["labels"], dtype=np.int32))
for m in range(3):
    np.save(f"hand_3m_3c/m{m}.npy", np.array(case["probabilities"][m], dtype=np.float32))
# Class ids for one model and probabilities for the other: soft voting needs them for all.
os.makedirs("mixed", exist_ok=True)
np.save("mixed/labels.npy", np.array([0, 1], dtype=np.int64))
np.save("mixed/a.npy", np.array([0, 1], dtype=np.int64))
np.save("mixed/b.npy", np.array([[0.9, 0.1], [0.2, 0.8]]))
# A text array: an unsupported dtype.
os.makedirs("text_dtype", exist_ok=True)
np.save("text_dtype/labels.npy", np.array([0, 1], dtype=np.int64))
np.save("text_dtype/a.npy", np.array(["cat", "dog"]))
np.save("text_dtype/b.npy", np.array([0, 1], dtype=np.int64))
