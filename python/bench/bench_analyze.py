"""fuselab.analyze on the 10-model x 10,000-sample x 10-class pool of spec `focal.md` §10:
against the CLI on the same pool (.npz), and against EnsembleBench's focal scores called from
this process (a checkout at ENSEMBLEBENCH_DIR, commit cb202c1; scikit-learn and statsmodels
installed), measured on a stratified sample of teams and extrapolated to all 1,013 as the
spec's timings were. Prints the figures; asserts nothing.

    FUSELAB_BIN=<target>/release/fuselab ENSEMBLEBENCH_DIR=<checkout> python bench_analyze.py
"""

import itertools
import os
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

import fuselab

MODELS, SAMPLES, CLASSES = 10, 10_000, 10


def pool(seed=10):
    """Correlated errors: a shared difficulty per sample, each model's skill from 70 % to 95 %."""
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, CLASSES, SAMPLES)
    difficulty = rng.random(SAMPLES)
    skill = np.linspace(0.70, 0.95, MODELS)[:, None]
    right = rng.random((MODELS, SAMPLES)) * 0.5 + difficulty * 0.5 < skill
    wrong = (labels + rng.integers(1, CLASSES, (MODELS, SAMPLES))) % CLASSES
    predictions = np.where(right, labels, wrong)
    logits = rng.normal(0, 1, (MODELS, SAMPLES, CLASSES))
    logits[np.arange(MODELS)[:, None], np.arange(SAMPLES)[None, :], predictions] += 3.0
    probabilities = np.exp(logits) / np.exp(logits).sum(axis=2, keepdims=True)
    return labels, predictions, probabilities


def median_seconds(run, repeats=3):
    run()  # warm-up: first-touch allocations and caches
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        run()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def cpu_seconds(run):
    started = time.process_time()
    run()
    return time.process_time() - started


def main():
    labels, predictions, probabilities = pool()
    from fuselab import _engine

    names = [f"model{m}" for m in range(MODELS)]

    def wrapped():
        fuselab.analyze(labels, predictions, probabilities, top_k=10, progress=lambda d, t: None)

    def bare():
        # The same call without the Python layer (dtype and shape checks, the result's parsing).
        _engine.analyze_arrays(labels, predictions, probabilities, names, 2, None, 10, False, False, None, "bootstrap", None)

    # Alternated, so the allocator's and the CPU's state favour neither.
    pairs = [(median_seconds(wrapped, 1), median_seconds(bare, 1)) for _ in range(21)]
    python = statistics.median(p for p, _ in pairs)
    engine = statistics.median(e for _, e in pairs)
    print(f"fuselab.analyze, all 1,013 teams (focal diversity, plurality, majority, soft vote): {python:.4f} s (median of 21)")
    print(f"  the extension module alone: {engine:.4f} s; the Python layer adds {100 * (python / engine - 1):.1f} %")
    binary = os.environ.get("FUSELAB_BIN")
    if binary:
        with tempfile.TemporaryDirectory() as tmp:
            path = os.path.join(tmp, "pool.npz")
            np.savez(path, labels=labels, predictions=predictions, probabilities=probabilities)
            command = [binary, "ensemble", "analyze", path, "--top-k", "10", "--format", "json"]
            cli = median_seconds(lambda: subprocess.run(command, check=True, capture_output=True))
        print(f"fuselab ensemble analyze (CLI process, .npz read included): {cli:.3f} s; fuselab.analyze / CLI = {python / cli:.2f}")
    checkout = os.environ.get("ENSEMBLEBENCH_DIR")
    if not checkout:
        print("EnsembleBench: skipped (set ENSEMBLEBENCH_DIR to a checkout of git-disl/EnsembleBench)")
        return
    sys.path.insert(0, checkout)
    from EnsembleBench.groupMetrics import calFocalDiversityScores

    negatives = [np.where(predictions[m] != labels)[0] for m in range(MODELS)]
    teams_by_size = {k: list(itertools.combinations(range(MODELS), k)) for k in range(2, MODELS + 1)}
    rng = np.random.default_rng(0)
    for metrics, cross, label in [(["GD"], False, "GD only, exact"), (["CK", "QS", "BD", "FK", "KW", "GD"], False, "six metrics, exact")]:
        total = 0.0
        for size, teams in teams_by_size.items():
            sample = [teams[i] for i in rng.choice(len(teams), min(2, len(teams)), replace=False)]
            per_team = statistics.mean(
                cpu_seconds(
                    lambda team=team: [
                        calFocalDiversityScores(focal, list(team), predictions, labels, negatives, metrics, crossValidation=cross)
                        for focal in team
                    ]
                )
                for team in sample
            )
            total += per_team * len(teams)
        print(f"EnsembleBench calFocalDiversityScores ({label}), all 1,013 teams extrapolated from 2 per size: {total:.1f} CPU-s")
        if metrics == ["GD"]:
            ours = cpu_seconds(lambda: fuselab.analyze(labels, predictions, top_k=10))
            print(f"  fuselab focal diversity of all 1,013 teams (with the votes): {ours:.3f} CPU-s; ratio {total / ours:.0f}x")
        else:
            ours = cpu_seconds(
                lambda: fuselab.analyze(labels, predictions, top_k=10, compat="ensemblebench", sampling="exact")
            )
            print(f"  fuselab compat=\"ensemblebench\" (exact), all teams: {ours:.3f} CPU-s; ratio {total / ours:.0f}x")


if __name__ == "__main__":
    main()
