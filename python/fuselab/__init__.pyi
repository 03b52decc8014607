from typing import Any, Callable, Optional, Sequence, Tuple

import numpy as np

__all__ = ["Analysis", "analyze"]

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
