from typing import Callable, Optional, Sequence

import numpy as np

def analyze_arrays(
    labels: np.ndarray,
    predictions: Optional[np.ndarray],
    probabilities: Optional[np.ndarray],
    names: Sequence[str],
    min_size: int,
    max_size: Optional[int],
    top_k: int,
    full_detail: bool,
    all_teams: bool,
    compat: Optional[str],
    sampling: str,
    progress: Optional[Callable[[int, int], None]],
) -> str: ...

def combine_arrays(
    labels: np.ndarray,
    splits: np.ndarray,
    predictions: Optional[np.ndarray],
    probabilities: Optional[np.ndarray],
    logits: Optional[np.ndarray],
    names: Sequence[str],
    team: Optional[Sequence[str]],
    top_k: Optional[int],
    method: str,
    fusionshot: bool,
    epochs: int,
    batch: int,
    lr: float,
    seed: int,
    progress: Optional[Callable[[int, int, int], None]],
) -> str: ...

def select_arrays(
    labels: np.ndarray,
    predictions: Optional[np.ndarray],
    probabilities: Optional[np.ndarray],
    names: Sequence[str],
    method: str,
    top_k: Optional[int],
    min_size: int,
    max_size: Optional[int],
    ensemblebench: Optional[str],
    metric: str,
    rule: str,
    std_k: float,
    fraction: float,
    hq_max_size: int,
    weights: tuple[float, float],
    size_penalty: bool,
    seed: int,
    progress: Optional[Callable[[int, int], None]],
) -> str: ...
