"""fuselab.combine against `fuselab ensemble combine`: the same report for the same seed, with
splits given as names or codes; errors named as the CLI names them."""

import json
import os
import subprocess

import numpy as np
import pytest

import fuselab

BIN = os.environ.get("FUSELAB_BIN")


def specialists(samples=300, seed=5):
    """Three members over four classes, each reliable on its own classes."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 4, samples)
    probabilities = np.full((3, samples, 4), 0.1)
    for m in range(3):
        knows = labels % 3 == m
        said = np.where(knows, labels, rng.integers(0, 4, samples))
        probabilities[m, np.arange(samples), said] = 0.7
    splits = np.array(["train", "train", "val", "test", "test"] * (samples // 5))
    return labels, splits, probabilities


@pytest.mark.skipif(BIN is None, reason="set FUSELAB_BIN to the fuselab binary")
@pytest.mark.parametrize("method", ["mlp", "stacking", "weighted-vote"])
def test_the_same_report_as_the_cli(tmp_path, method):
    labels, splits, probabilities = specialists()
    names = ["north", "south", "east"]
    pool = {
        "labels": labels.tolist(),
        "splits": splits.tolist(),
        "models": [{"name": names[m], "probabilities": probabilities[m].tolist()} for m in range(3)],
    }
    path = tmp_path / "pool.json"
    path.write_text(json.dumps(pool))
    for flags, kwargs in [
        (["--team", "north,east"], {"team": ["north", "east"]}),
        (["--top-k", "2"], {"top_k": 2}),
    ]:
        run = subprocess.run(
            [BIN, "ensemble", "combine", str(path), "--method", method, "--epochs", "40", "--seed", "3",
             "--format", "json", *flags],
            capture_output=True, text=True, check=True,
        )
        codes = np.array([{"train": 0, "val": 1, "test": 2}[s] for s in splits], dtype=np.int8)
        result = fuselab.combine(
            labels, codes, probabilities=probabilities.astype(np.float64), names=names, method=method,
            epochs=40, seed=3, **kwargs,
        )
        assert json.loads(result.to_json()) == json.loads(run.stdout)
    scores = result.scores
    assert set(scores["kind"]) == {"combiner", "vote", "member"}
    # Per team: the combiner, plurality, majority, soft vote and each member.
    assert len(scores) == sum(4 + len(t["names"]) for t in result.report["teams"])


def test_errors_name_what_is_missing():
    labels, splits, probabilities = specialists()
    with pytest.raises(ValueError, match=r'splits\[3\] is "tset"'):
        bad = splits.copy()
        bad[3] = "tset"
        fuselab.combine(labels, bad, probabilities=probabilities, top_k=1)
    with pytest.raises(ValueError, match="no sample is in the val split"):
        fuselab.combine(labels, np.where(splits == "val", "test", splits), probabilities=probabilities, top_k=1)
    with pytest.raises(ValueError, match="give either team"):
        fuselab.combine(labels, splits, probabilities=probabilities)
    with pytest.raises(ValueError, match=r"unknown|not a model|`nobody`"):
        fuselab.combine(labels, splits, probabilities=probabilities, team=["model0", "nobody"])
    with pytest.raises(ValueError, match='method="boost"'):
        fuselab.combine(labels, splits, probabilities=probabilities, team=["model0"], method="boost")
