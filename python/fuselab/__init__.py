"""Focal-diversity ensemble analysis for numpy arrays: the fuselab engine (Rust) in Python.

>>> import numpy as np, fuselab
>>> labels = np.array([0, 1, 1, 0, 2])
>>> predictions = np.array([[0, 1, 1, 0, 1], [0, 1, 0, 0, 2], [1, 1, 1, 0, 2]])
>>> result = fuselab.analyze(labels, predictions, names=["a", "b", "c"], top_k=3)
>>> result.teams  # a pandas DataFrame when pandas is installed
"""

from __future__ import annotations

import json
from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

from . import _engine
from ._html import report_html

__all__ = ["Analysis", "analyze"]

_INTEGER_KINDS = "iu"


def _labels(labels: Any) -> np.ndarray:
    array = np.asarray(labels)
    if array.ndim != 1:
        raise ValueError(f"labels: expected a 1-dimensional array [n], found shape {array.shape}")
    if array.dtype.kind not in _INTEGER_KINDS:
        raise ValueError(f"labels: expected integer class indices, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _predictions(predictions: Any, n: int) -> np.ndarray:
    array = np.asarray(predictions)
    if array.ndim != 2 or array.shape[1] != n:
        raise ValueError(
            f"predictions: expected shape [models, {n}] (one row of classes per model), found {array.shape}"
        )
    if array.dtype.kind not in _INTEGER_KINDS:
        raise ValueError(f"predictions: expected integer class indices, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _probabilities(probabilities: Any, n: int) -> np.ndarray:
    array = np.asarray(probabilities)
    if array.ndim != 3 or array.shape[1] != n:
        raise ValueError(
            f"probabilities: expected shape [models, {n}, classes], found {array.shape}"
        )
    if array.dtype.kind != "f":
        raise ValueError(f"probabilities: expected floating-point values, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float64)


class Analysis:
    """The result of :func:`analyze`: the CLI's report, as tables."""

    def __init__(self, report_json: str):
        self._json = report_json
        self.report: dict = json.loads(report_json)

    def to_json(self) -> str:
        """The report in the CLI's `fuselab.ensemble.report/v1` schema."""
        return self._json

    def _names(self, members: Sequence[int]) -> list:
        models = self.report["models"]
        return [models[m]["name"] for m in members]

    @property
    def teams(self):
        """One row per described team: members (names), size, focal diversity and the votes'
        accuracies. A pandas DataFrame when pandas is installed, else a list of dicts."""
        rows = [
            {
                "members": self._names(team["members"]),
                "size": len(team["members"]),
                "focal_diversity": team["focal_diversity"],
                "plurality_accuracy": team["plurality_accuracy"],
                "majority_accuracy": team["majority_accuracy"],
                "soft_vote_accuracy": team["soft_vote_accuracy"],
            }
            for team in self.report["teams"]
        ]
        return _frame(rows)

    @property
    def models(self):
        """One row per model: name, accuracy and negatives (samples it gets wrong)."""
        rows = [
            {"name": m["name"], "accuracy": m["accuracy"], "negatives": m["n_negatives"]}
            for m in self.report["models"]
        ]
        return _frame(rows)

    def _repr_html_(self) -> str:
        return report_html(self.report)

    def __repr__(self) -> str:
        r = self.report
        return (
            f"<fuselab.Analysis: {r['n_models']} models, {r['n_samples']} samples, "
            f"{r['n_classes']} classes, {len(r['teams'])} teams described>"
        )


def _frame(rows: list):
    try:
        import pandas
    except ImportError:
        return rows
    return pandas.DataFrame(rows)


def analyze(
    labels: Any,
    predictions: Any = None,
    probabilities: Any = None,
    names: Optional[Sequence[str]] = None,
    sizes: Tuple[int, Optional[int]] = (2, None),
    top_k: int = 10,
    detail: str = "summary",
    all_teams: bool = False,
    compat: Optional[str] = None,
    sampling: str = "bootstrap",
    progress: Optional[Callable[[int, int], None]] = None,
) -> Analysis:
    """Ranks every team of a model pool by focal diversity, as `fuselab ensemble analyze`.

    labels: integer classes ``[n]``. predictions: integer classes ``[models, n]``;
    probabilities: ``[models, n, classes]`` (either or both; predictions default to the
    probabilities' first argmax). names: one per model (default ``model0``, ``model1``, …).
    sizes: the smallest and largest team size (``None``: all models). detail: ``"summary"`` or
    ``"full"`` (the eight diversity metrics per team). compat: ``None``, ``"fusionshot"`` or
    ``"ensemblebench"`` (with ``sampling="bootstrap"`` or ``"exact"``). progress: called with
    (teams done, teams in all); when omitted and tqdm is installed, a tqdm bar shows progress.

    Any integer dtype and float32/float64 are accepted, in any memory layout. Bad input raises
    ``ValueError`` naming the array, model, sample or class. The GIL is released while the
    engine runs.
    """
    labels = _labels(labels)
    n = labels.shape[0]
    if predictions is None and probabilities is None:
        raise ValueError("give predictions [models, n], probabilities [models, n, classes], or both")
    predictions = None if predictions is None else _predictions(predictions, n)
    probabilities = None if probabilities is None else _probabilities(probabilities, n)
    models = (predictions if predictions is not None else probabilities).shape[0]
    if predictions is not None and probabilities is not None and probabilities.shape[0] != models:
        raise ValueError(
            f"predictions has {models} models but probabilities has {probabilities.shape[0]}"
        )
    names = [f"model{m}" for m in range(models)] if names is None else [str(x) for x in names]
    if len(names) != models:
        raise ValueError(f"names: expected {models} names (one per model), found {len(names)}")
    if detail not in ("summary", "full"):
        raise ValueError(f'detail={detail!r}: expected "summary" or "full"')
    min_size, max_size = sizes
    bar = None
    if progress is None:
        try:
            from tqdm.auto import tqdm
        except ImportError:
            tqdm = None
        if tqdm is not None:
            bar = tqdm(total=0, unit="teams", leave=False)

            def progress(done: int, total: int) -> None:
                bar.total = total
                bar.n = done
                bar.refresh()

    try:
        report = _engine.analyze_arrays(
            labels,
            predictions,
            probabilities,
            names,
            int(min_size),
            None if max_size is None else int(max_size),
            int(top_k),
            detail == "full",
            bool(all_teams),
            compat,
            sampling,
            progress,
        )
    finally:
        if bar is not None:
            bar.close()
    return Analysis(report)
