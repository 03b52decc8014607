"""fuselab.select against `fuselab ensemble select`: every method gives the CLI's document."""

import json
import os
import pathlib
import subprocess

import numpy as np
import pytest

import fuselab

BIN = os.environ.get("FUSELAB_BIN")
VECTORS = pathlib.Path(__file__).resolve().parents[2] / "shared" / "tests" / "vectors" / "focal"


@pytest.mark.skipif(BIN is None, reason="set FUSELAB_BIN to the fuselab binary")
@pytest.mark.parametrize(
    "flags, kwargs",
    [
        (["--method", "topk", "--top-k", "4"], {"method": "topk", "top_k": 4}),
        (["--method", "threshold", "--rule", "std", "--std-k", "0.5"], {"method": "threshold", "rule": "std", "std_k": 0.5}),
        (["--method", "kmeans"], {"method": "kmeans"}),
        (["--method", "hq", "--fraction", "0.2"], {"method": "hq", "fraction": 0.2}),
        (["--method", "ga", "--seed", "4", "--weights", "0.5,0.5"], {"method": "ga", "seed": 4, "weights": (0.5, 0.5)}),
        (
            ["--method", "threshold", "--compat", "ensemblebench", "--sampling", "exact", "--metric", "KW"],
            {"method": "threshold", "compat": "ensemblebench", "sampling": "exact", "metric": "KW"},
        ),
    ],
)
def test_every_method_gives_the_clis_selection(tmp_path, flags, kwargs):
    inputs = json.loads((VECTORS / "random_6m_500s_10c.json").read_text())["inputs"]
    labels = np.array(inputs["labels"])
    predictions = np.array(inputs["predictions"])
    probabilities = np.array(inputs["probabilities"])
    pool = {
        "labels": inputs["labels"],
        "models": [
            {"name": f"model{m}", "predictions": inputs["predictions"][m], "probabilities": inputs["probabilities"][m]}
            for m in range(len(predictions))
        ],
    }
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool))
    run = subprocess.run(
        [BIN, "ensemble", "select", str(path), "--format", "json", *flags], capture_output=True, text=True, check=True
    )
    result = fuselab.select(labels, predictions, probabilities, **kwargs)
    assert json.loads(result.to_json()) == json.loads(run.stdout)
    assert len(result.teams) == len(result.report["teams"])


def test_bad_options_are_value_errors():
    labels = np.array([0, 1, 1, 0])
    predictions = np.array([[0, 1, 0, 0], [0, 1, 1, 1], [1, 1, 1, 0]])
    with pytest.raises(ValueError, match='method="best"'):
        fuselab.select(labels, predictions, method="best")
    with pytest.raises(ValueError, match="fraction 2"):
        fuselab.select(labels, predictions, method="hq", fraction=2)
    with pytest.raises(ValueError, match="threshold, kmeans and hq"):
        fuselab.select(labels, predictions, method="topk", compat="ensemblebench")
    with pytest.raises(ValueError, match="brute force"):
        fuselab.select(labels, predictions, compat="fusionshot")
