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

__all__ = ["Analysis", "Combination", "Selection", "analyze", "combine", "select"]

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


def _scores(scores: Any, n: int, what: str = "probabilities") -> np.ndarray:
    array = np.asarray(scores)
    if array.ndim != 3 or array.shape[1] != n:
        raise ValueError(f"{what}: expected shape [models, {n}, classes], found {array.shape}")
    if array.dtype.kind != "f":
        raise ValueError(f"{what}: expected floating-point values, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.float64)


_SPLIT_CODES = {"train": 0, "val": 1, "validation": 1, "valid": 1, "dev": 1, "test": 2}


def _splits(splits: Any, n: int) -> np.ndarray:
    array = np.asarray(splits)
    if array.ndim != 1 or array.shape[0] != n:
        raise ValueError(f"splits: expected one split per sample, shape [{n}], found {array.shape}")
    if array.dtype.kind in "US":
        codes = []
        for i, name in enumerate(array.astype(str)):
            code = _SPLIT_CODES.get(name.strip().lower())
            if code is None:
                raise ValueError(f'splits[{i}] is "{name}": expected "train", "val" or "test"')
            codes.append(code)
        return np.array(codes, dtype=np.int64)
    if array.dtype.kind not in _INTEGER_KINDS:
        raise ValueError(f"splits: expected names or codes 0/1/2, found dtype {array.dtype}")
    return np.ascontiguousarray(array, dtype=np.int64)


def _members(predictions, scores: list, n: int):
    """The number of models, checking every array agrees."""
    counts = {a.shape[0] for a in [predictions, *scores] if a is not None}
    if not counts:
        raise ValueError("give predictions [models, n], probabilities [models, n, classes], or both")
    if len(counts) > 1:
        raise ValueError(f"the arrays disagree on the number of models: {sorted(counts)}")
    return counts.pop()


def _names_of(names, models: int) -> list:
    names = [f"model{m}" for m in range(models)] if names is None else [str(x) for x in names]
    if len(names) != models:
        raise ValueError(f"names: expected {models} names (one per model), found {len(names)}")
    return names


class _Document:
    """A CLI document: its JSON as the engine wrote it, and parsed."""

    def __init__(self, report_json: str):
        self._json = report_json
        self.report: dict = json.loads(report_json)

    def to_json(self) -> str:
        """The document in the CLI's schema (``report["schema"]``), as the CLI prints it."""
        return self._json


class Analysis(_Document):
    """The result of :func:`analyze`: the CLI's `fuselab.ensemble.report/v1`, as tables."""

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
    predictions = None if predictions is None else _predictions(predictions, n)
    probabilities = None if probabilities is None else _scores(probabilities, n)
    names = _names_of(names, _members(predictions, [probabilities], n))
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


class Combination(_Document):
    """The result of :func:`combine`: the CLI's `fuselab.ensemble.combine/v1` report."""

    @property
    def scores(self):
        """One row per team and contender (the combiner, the votes, each member), scored on
        test: accuracy, its 95 % interval, NLL and ECE. A DataFrame when pandas is installed."""
        rows = []
        method = self.report["options"]["method"]
        for team in self.report["teams"]:
            members = team["names"]
            contenders = [(method, "combiner", team["combined"])] + [
                (b["name"], "member" if b["member"] else "vote", b["scores"]) for b in team["baselines"]
            ]
            for name, kind, scores in contenders:
                rows.append(
                    {
                        "team": members,
                        "focal_diversity": team["focal_diversity"],
                        "name": name,
                        "kind": kind,
                        "accuracy": scores["accuracy"],
                        "interval_low": scores["interval"][0],
                        "interval_high": scores["interval"][1],
                        "nll": scores["nll"],
                        "ece": scores["ece"],
                    }
                )
        return _frame(rows)

    def __repr__(self) -> str:
        teams = self.report["teams"]
        best = max(t["combined"]["accuracy"] for t in teams)
        return (
            f"<fuselab.Combination: {self.report['options']['method']} on {len(teams)} team(s), "
            f"best test accuracy {best:.4f}>"
        )


def combine(
    labels: Any,
    splits: Any,
    predictions: Any = None,
    probabilities: Any = None,
    logits: Any = None,
    names: Optional[Sequence[str]] = None,
    team: Optional[Sequence[str]] = None,
    top_k: Optional[int] = None,
    method: str = "mlp",
    compat: Optional[str] = None,
    epochs: int = 300,
    batch: int = 64,
    lr: float = 1e-3,
    seed: int = 0,
    progress: Optional[Callable[[int, int, int], None]] = None,
) -> Combination:
    """Learns to combine a team's outputs, as `fuselab ensemble combine`: trains on the train
    split, keeps what does best on val, reports on test beside every member and the votes.

    splits: per sample ``"train"``, ``"val"`` or ``"test"`` (or codes 0, 1, 2). Give
    probabilities and/or logits ``[models, n, classes]``. team: model names, or top_k: the K
    most focal-diverse teams ranked on val. method: ``"mlp"`` (FusionShot's network),
    ``"stacking"`` or ``"weighted-vote"``; compat: ``"fusionshot"`` for FusionShot's own head
    and batch-mean accuracy. progress: called with (team, epoch, epochs).

    >>> result = fuselab.combine(labels, splits, probabilities=p, team=["cnn", "knn"])
    >>> result.scores
    """
    labels = _labels(labels)
    n = labels.shape[0]
    splits = _splits(splits, n)
    predictions = None if predictions is None else _predictions(predictions, n)
    probabilities = None if probabilities is None else _scores(probabilities, n)
    logits = None if logits is None else _scores(logits, n, "logits")
    names = _names_of(names, _members(predictions, [probabilities, logits], n))
    if (team is None) == (top_k is None):
        raise ValueError("give either team (model names) or top_k")
    if compat not in (None, "fusionshot"):
        raise ValueError(f'compat={compat!r}: expected None or "fusionshot"')
    report = _engine.combine_arrays(
        labels,
        splits,
        predictions,
        probabilities,
        logits,
        names,
        None if team is None else [str(x) for x in team],
        None if top_k is None else int(top_k),
        method,
        compat == "fusionshot",
        int(epochs),
        int(batch),
        float(lr),
        int(seed),
        progress,
    )
    return Combination(report)


class Selection(_Document):
    """The result of :func:`select`: the CLI's `fuselab.ensemble.selection/v1` document."""

    @property
    def teams(self):
        """One row per listed team: members (names), size, focal diversity, plurality accuracy,
        and the method's score or GA fitness. A DataFrame when pandas is installed."""
        return _frame(
            [
                {
                    "members": t["names"],
                    "size": len(t["members"]),
                    "focal_diversity": t["focal_diversity"],
                    "plurality_accuracy": t["plurality_accuracy"],
                    "score": t.get("score"),
                    "fitness": t.get("fitness"),
                }
                for t in self.report["teams"]
            ]
        )

    @property
    def warnings(self) -> list:
        return self.report["warnings"]

    def __repr__(self) -> str:
        r = self.report
        return f"<fuselab.Selection: {r['method']}, {len(r['teams'])} of {r['n_selected']} selected teams listed>"


def select(
    labels: Any,
    predictions: Any = None,
    probabilities: Any = None,
    names: Optional[Sequence[str]] = None,
    method: str = "topk",
    top_k: Optional[int] = None,
    sizes: Tuple[int, Optional[int]] = (2, None),
    compat: Optional[str] = None,
    sampling: str = "bootstrap",
    metric: str = "GD",
    rule: str = "mean",
    std_k: float = 1.0,
    fraction: float = 0.1,
    hq_max_size: int = 5,
    weights: Tuple[float, float] = (0.6, 0.4),
    size_penalty: bool = False,
    seed: int = 0,
    progress: Optional[Callable[[int, int], None]] = None,
) -> Selection:
    """Selects teams to deploy, as `fuselab ensemble select`: ``method`` is ``"topk"`` (by focal
    diversity), ``"threshold"`` (``rule="mean"`` or ``"std"`` with ``std_k``), ``"kmeans"``
    (strategic 2-means; with ``compat="ensemblebench"`` the EnsembleBench demo's pipeline),
    ``"hq"`` (``fraction``, ``hq_max_size``) or ``"ga"`` (``weights``, ``size_penalty``,
    ``seed``). ``compat="ensemblebench"`` scores teams by EnsembleBench's team FQ of
    ``metric`` with ``sampling``.
    """
    labels = _labels(labels)
    n = labels.shape[0]
    predictions = None if predictions is None else _predictions(predictions, n)
    probabilities = None if probabilities is None else _scores(probabilities, n)
    names = _names_of(names, _members(predictions, [probabilities], n))
    if compat not in (None, "ensemblebench"):
        raise ValueError(
            f'compat={compat!r}: expected None or "ensemblebench" (FusionShot selects by brute force: use method="topk")'
        )
    min_size, max_size = sizes
    report = _engine.select_arrays(
        labels,
        predictions,
        probabilities,
        names,
        method,
        None if top_k is None else int(top_k),
        int(min_size),
        None if max_size is None else int(max_size),
        sampling if compat == "ensemblebench" else None,
        metric,
        rule,
        float(std_k),
        float(fraction),
        int(hq_max_size),
        (float(weights[0]), float(weights[1])),
        bool(size_penalty),
        int(seed),
        progress,
    )
    return Selection(report)
