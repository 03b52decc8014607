"""The Python package against the CLI and the reference vectors: the same engine, the same
numbers; numpy inputs of every supported dtype and layout; clear errors; the tables, the HTML
view, and the GIL released while the engine runs."""

import json
import os
import pathlib
import subprocess
import threading
import time

import numpy as np
import pandas
import pytest

import fuselab

ROOT = pathlib.Path(__file__).resolve().parents[2]
VECTORS = ROOT / "shared" / "tests" / "vectors" / "focal"
CASES = ["hand_3m_3c", "hand_4m_ties", "hand_3m_gaps", "random_6m_500s_10c", "binary_5m_2c"]
BIN = os.environ.get("FUSELAB_BIN")


def vector(case):
    inputs = json.loads((VECTORS / f"{case}.json").read_text())["inputs"]
    labels = np.array(inputs["labels"])
    predictions = np.array(inputs["predictions"])
    probabilities = np.array(inputs["probabilities"])
    return labels, predictions, probabilities


def cli_report(tmp_path, case, labels, predictions, probabilities, *flags):
    pool = {
        "labels": labels.tolist(),
        "models": [
            {"name": f"model{m}", "predictions": predictions[m].tolist(), "probabilities": probabilities[m].tolist()}
            for m in range(len(predictions))
        ],
    }
    path = tmp_path / f"{case}.json"
    path.write_text(json.dumps(pool))
    run = subprocess.run(
        [BIN, "ensemble", "analyze", str(path), "--format", "json", *flags],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(run.stdout)


@pytest.mark.skipif(BIN is None, reason="set FUSELAB_BIN to the fuselab binary")
@pytest.mark.parametrize("case", CASES)
def test_reference_vectors_give_the_clis_report(tmp_path, case):
    labels, predictions, probabilities = vector(case)
    result = fuselab.analyze(labels, predictions, probabilities, top_k=10)
    expected = cli_report(tmp_path, case, labels, predictions, probabilities, "--top-k", "10")
    assert json.loads(result.to_json()) == expected
    full = fuselab.analyze(labels, predictions, probabilities, detail="full", all_teams=True, compat="fusionshot")
    expected = cli_report(
        tmp_path, case, labels, predictions, probabilities, "--detail", "full", "--all-teams", "--compat", "fusionshot"
    )
    assert json.loads(full.to_json()) == expected


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32, np.uint64])
def test_every_integer_dtype_gives_the_same_report(dtype):
    labels, predictions, _ = vector("hand_4m_ties")
    expected = fuselab.analyze(labels, predictions).to_json()
    assert fuselab.analyze(labels.astype(dtype), predictions.astype(dtype)).to_json() == expected


def test_float32_probabilities_are_read_as_their_float64_values():
    labels, predictions, probabilities = vector("random_6m_500s_10c")
    single = probabilities.astype(np.float32)
    assert (
        fuselab.analyze(labels, probabilities=single).to_json()
        == fuselab.analyze(labels, probabilities=single.astype(np.float64)).to_json()
    )


def test_non_contiguous_and_fortran_arrays_give_the_same_report():
    labels, predictions, probabilities = vector("random_6m_500s_10c")
    expected = fuselab.analyze(labels, predictions, probabilities).to_json()
    wide = np.zeros((predictions.shape[0], predictions.shape[1] * 2), dtype=np.int64)
    wide[:, ::2] = predictions
    strided = wide[:, ::2]
    assert not strided.flags.c_contiguous
    fortran = np.asfortranarray(probabilities)
    assert fuselab.analyze(labels, strided, fortran).to_json() == expected


def test_wrong_shapes_and_values_raise_value_errors_naming_the_input():
    labels, predictions, probabilities = vector("hand_3m_3c")
    cases = [
        (lambda: fuselab.analyze(labels.reshape(3, 5), predictions), r"labels: expected a 1-dimensional array"),
        (lambda: fuselab.analyze(labels, predictions[:, :-1]), r"predictions: expected shape \[models, 15\]"),
        (lambda: fuselab.analyze(labels, predictions.astype(float)), r"predictions: expected integer class indices"),
        (lambda: fuselab.analyze(labels, probabilities=probabilities[:, :, 0]), r"probabilities: expected shape"),
        (lambda: fuselab.analyze(labels), r"give predictions"),
        (lambda: fuselab.analyze(labels, predictions, names=["a"]), r"names: expected 3 names"),
        (lambda: fuselab.analyze(labels, predictions, detail="all"), r"detail='all'"),
        (lambda: fuselab.analyze(labels, predictions, compat="deslib"), r'compat="deslib"'),
    ]
    for call, message in cases:
        with pytest.raises(ValueError, match=message):
            call()
    negative = predictions.copy()
    negative[1, 4] = -2
    with pytest.raises(ValueError, match=r"predictions\[1\]\[4\] is -2"):
        fuselab.analyze(labels, negative)
    # The engine's own checks, with the CLI's messages.
    too_big = probabilities.copy()
    too_big[2, 3, 0] += 0.5
    with pytest.raises(ValueError, match=r"model `model2`.*sample 3"):
        fuselab.analyze(labels, predictions, too_big)


def test_tables_and_the_html_view():
    labels, predictions, probabilities = vector("random_6m_500s_10c")
    names = [f"net{m}" for m in range(6)]
    result = fuselab.analyze(labels, predictions, probabilities, names=names, top_k=5, sizes=(2, 3))
    teams = result.teams
    assert isinstance(teams, pandas.DataFrame)
    assert list(teams.columns) == [
        "members", "size", "focal_diversity", "plurality_accuracy", "majority_accuracy", "soft_vote_accuracy",
    ]
    assert len(teams) == 5 and set(teams["size"]) <= {2, 3}
    assert teams["focal_diversity"].is_monotonic_decreasing
    assert all(set(m) <= set(names) for m in teams["members"])
    assert list(result.models["name"]) == names
    html = result._repr_html_()
    assert html.count("<tr>") == 1 + 5 and "<svg" in html and html.count("<circle") == 5


def test_the_gil_is_released_while_the_engine_runs():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 10, 2000)
    predictions = np.where(rng.random((20, 2000)) < 0.7, labels, rng.integers(0, 10, (20, 2000)))
    done = threading.Event()
    calls = []

    def run():
        fuselab.analyze(labels, predictions, top_k=5, progress=lambda d, t: calls.append((d, t)))
        done.set()

    worker = threading.Thread(target=run)
    started = time.perf_counter()
    worker.start()
    ticks = 0
    while not done.is_set():
        ticks += 1
        time.sleep(0.001)
    worker.join()
    elapsed = time.perf_counter() - started
    # 1,048,555 teams take seconds; this thread ran all along (a held GIL would starve it).
    assert elapsed > 0.2 and ticks > 100, (elapsed, ticks)
    assert calls and calls[-1][0] == calls[-1][1] == 1048555
