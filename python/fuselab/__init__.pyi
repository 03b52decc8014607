from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Analysis", "Combination", "Selection", "analyze", "combine", "select"]

class Analysis:
    report: dict
    def __init__(self, report_json: str) -> None: ...
    def to_json(self) -> str: ...
    @property
    def teams(self) -> Any: ...
    @property
    def models(self) -> Any: ...
    def _repr_html_(self) -> str: ...

def analyze(
    labels: np.ndarray | Sequence[int],
    predictions: Optional[np.ndarray] = ...,
    probabilities: Optional[np.ndarray] = ...,
    names: Optional[Sequence[str]] = ...,
    sizes: Tuple[int, Optional[int]] = ...,
    top_k: int = ...,
    detail: str = ...,
    all_teams: bool = ...,
    compat: Optional[str] = ...,
    sampling: str = ...,
    progress: Optional[Callable[[int, int], None]] = ...,
) -> Analysis: ...

class Combination:
    report: dict
    def __init__(self, report_json: str) -> None: ...
    def to_json(self) -> str: ...
    @property
    def scores(self) -> Any: ...

def combine(
    labels: np.ndarray | Sequence[int],
    splits: np.ndarray | Sequence[str] | Sequence[int],
    predictions: Optional[np.ndarray] = ...,
    probabilities: Optional[np.ndarray] = ...,
    logits: Optional[np.ndarray] = ...,
    names: Optional[Sequence[str]] = ...,
    team: Optional[Sequence[str]] = ...,
    top_k: Optional[int] = ...,
    method: str = ...,
    compat: Optional[str] = ...,
    epochs: int = ...,
    batch: int = ...,
    lr: float = ...,
    seed: int = ...,
    progress: Optional[Callable[[int, int, int], None]] = ...,
) -> Combination: ...

class Selection:
    report: dict
    def __init__(self, report_json: str) -> None: ...
    def to_json(self) -> str: ...
    @property
    def teams(self) -> Any: ...
    @property
    def warnings(self) -> list: ...

def select(
    labels: np.ndarray | Sequence[int],
    predictions: Optional[np.ndarray] = ...,
    probabilities: Optional[np.ndarray] = ...,
    names: Optional[Sequence[str]] = ...,
    method: str = ...,
    top_k: Optional[int] = ...,
    sizes: Tuple[int, Optional[int]] = ...,
    compat: Optional[str] = ...,
    sampling: str = ...,
    metric: str = ...,
    rule: str = ...,
    std_k: float = ...,
    fraction: float = ...,
    hq_max_size: int = ...,
    weights: Tuple[float, float] = ...,
    size_penalty: bool = ...,
    seed: int = ...,
    progress: Optional[Callable[[int, int], None]] = ...,
) -> Selection: ...
