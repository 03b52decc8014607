"""Every mode of `fuselab ensemble analyze` against the reference Python it reproduces, side by
side in one run on the same pool (issue 22, item 5): 10 models x 10,000 samples x 10 classes
with correlated errors, all 1,013 teams of sizes 2 to 10.

- canonical and `--compat fusionshot`, each with `--all-teams` (focal diversity, plurality and
  majority vote of every team, written as JSON) against FusionShot's `get_comb_stats` (focal GD
  and plurality vote of every team; `ens_pruning_src/run_bruteforce.py`, commit 6b44eaf), run
  in full in this process on one core;
- `--compat ensemblebench --sampling exact` and `--compat ensemblebench` (bootstrap) against
  EnsembleBench's `calFocalDiversityScores` with its six metrics (commit cb202c1), measured on a
  stratified sample of teams (3 per size) and extrapolated to all 1,013, as spec focal.md §10
  did.

Last, `--all-teams` on a 20-model pool of the same kind (1,048,555 teams) written to a file as
JSON and as CSV: wall and CPU time and peak memory (no reference does this).

fuselab's figure is the wall time of the whole CLI process (reading the .npz included, median
of 5), using every core; the reference's is CPU time (it is single-threaded). The labels follow
FusionShot's episode layout (10-way, 10 queries per class), so its accuracy formula applies,
and the pool carries predictions only, as both references read. The script also checks that
fuselab's focal diversity and plurality accuracy equal FusionShot's for every team (exit 1 if
not).

    FUSELAB_BIN=<target>/release/fuselab FUSIONSHOT_DIR=<checkout of sftekin/fusionshot> \
    ENSEMBLEBENCH_DIR=<checkout of git-disl/EnsembleBench> python tests/bench/ensemble_modes.py

Needs numpy, pandas, scikit-learn, statsmodels, tqdm and matplotlib (the references' imports).
"""

import itertools
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

MODELS, SAMPLES, CLASSES, QUERIES = 10, 10_000, 10, 10


def pool(seed=10, models=None):
    """Correlated errors as in spec focal.md §10 and the engine's own bench: a per-sample
    difficulty u³ shared by all models and a per-sample "confusing" class that 60 % of the
    errors choose; model m errs with probability 4·r_m·u³, r_m from 5 % to 27.5 %, so the models
    have about 500 to 2,750 negatives."""
    rng = np.random.default_rng(seed)
    labels = np.tile(np.repeat(np.arange(CLASSES), QUERIES), SAMPLES // (CLASSES * QUERIES))
    difficulty = rng.random(SAMPLES) ** 3
    confuser = (labels + 1 + rng.integers(0, CLASSES - 1, SAMPLES)) % CLASSES
    models = models or MODELS
    predictions = []
    for m in range(models):
        rate = 0.05 + 0.25 * m / models
        wrong = rng.random(SAMPLES) < 4 * rate * difficulty
        other = (labels + 1 + rng.integers(0, CLASSES - 1, SAMPLES)) % CLASSES
        confused = rng.integers(0, 10, SAMPLES) < 6
        predictions.append(np.where(wrong, np.where(confused, confuser, other), labels))
    return labels, np.array(predictions)


def teams():
    return [t for k in range(2, MODELS + 1) for t in itertools.combinations(range(MODELS), k)]


def fusionshot(labels, predictions):
    """get_comb_stats on every team, one size at a time as run_bruteforce does, one process."""
    os.environ["TQDM_DISABLE"] = "1"
    sys.path.insert(0, os.path.join(os.environ["FUSIONSHOT_DIR"], "ens_pruning_src"))
    from run_bruteforce import get_comb_stats

    pred_arr = predictions.T.astype(float)
    errors = (pred_arr == labels[:, None]).astype(int)
    names = [f"model{m}" for m in range(MODELS)]
    error_dict = {names[m]: errors[:, m] for m in range(MODELS)}
    stats = {}
    started = time.process_time()
    for team in teams():
        # One team per call: its IndexError (divergence 1) must not end the run; such a team
        # is unscored (None), as fuselab's compatibility mode reports it.
        try:
            get_comb_stats(stats, [team], errors, pred_arr, error_dict, len(team), names, CLASSES, QUERIES)
        except IndexError:
            stats[team] = None
    return time.process_time() - started, stats


def ensemblebench(labels, predictions, cross_validation):
    """calFocalDiversityScores, six metrics, on 3 teams per size, extrapolated to every team."""
    sys.path.insert(0, os.environ["ENSEMBLEBENCH_DIR"])
    from EnsembleBench.groupMetrics import calFocalDiversityScores

    negatives = [np.where(predictions[m] != labels)[0] for m in range(MODELS)]
    rng = np.random.default_rng(0)
    total = 0.0
    for size in range(2, MODELS + 1):
        all_of_size = list(itertools.combinations(range(MODELS), size))
        sample = [all_of_size[i] for i in rng.choice(len(all_of_size), min(3, len(all_of_size)), replace=False)]
        spent = []
        for team in sample:
            started = time.process_time()
            for focal in team:
                calFocalDiversityScores(
                    focal, list(team), predictions, labels, negatives,
                    ["CK", "QS", "BD", "FK", "KW", "GD"], crossValidation=cross_validation,
                )
            spent.append(time.process_time() - started)
        total += statistics.mean(spent) * len(all_of_size)
    return total


def fuselab(binary, path, flags):
    command = [binary, "ensemble", "analyze", path, "--format", "json", *flags]
    output = subprocess.run(command, check=True, capture_output=True).stdout
    times = []
    for _ in range(5):
        started = time.perf_counter()
        subprocess.run(command, check=True, capture_output=True)
        times.append(time.perf_counter() - started)
    return statistics.median(times), json.loads(output)


def main():
    binary = os.environ["FUSELAB_BIN"]
    labels, predictions = pool()
    print(f"pool: {MODELS} models x {SAMPLES:,} samples x {CLASSES} classes, {len(teams()):,} teams; "
          f"{os.cpu_count()} cores; numpy {np.__version__}")
    failures = 0
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "pool.npz")
        np.savez(path, labels=labels, predictions=predictions)

        reference, stats = fusionshot(labels, predictions)
        crashed = sum(v is None for v in stats.values())
        print(f"\nFusionShot get_comb_stats, all {len(stats):,} teams (focal GD + plurality), full run: {reference:.1f} CPU-s "
              f"({crashed} teams raise IndexError, divergence 1)")
        for name, flags in [("canonical", []), ("--compat fusionshot", ["--compat", "fusionshot"])]:
            seconds, report = fuselab(binary, path, ["--all-teams", *flags])
            worst, mismatched = 0.0, 0
            for team in report["teams"]:
                scored = stats[tuple(team["members"])]
                if scored is None:
                    # FusionShot raised: only its compatibility mode must leave the team unscored.
                    mismatched += name != "canonical" and team["focal_diversity"] is not None
                    continue
                focal, accuracy = scored
                worst = max(worst, abs(team["focal_diversity"] - focal), abs(100 * team["plurality_accuracy"] - accuracy))
            agree = worst < 1e-9 and mismatched == 0 and len(report["teams"]) == len(stats)
            failures += not agree
            print(f"  fuselab {name} --all-teams: {seconds:.3f} s wall; {reference / seconds:,.0f}x; "
                  f"largest difference from FusionShot {worst:.1e} ({'agree' if agree else 'DISAGREE'})")

        for name, flags, cross in [
            ("exact", ["--sampling", "exact"], False),
            ("bootstrap 3 x 100", ["--sampling", "bootstrap"], True),
        ]:
            reference = ensemblebench(labels, predictions, cross)
            seconds, report = fuselab(binary, path, ["--compat", "ensemblebench", *flags])
            print(f"\nEnsembleBench calFocalDiversityScores, six metrics, {name}, all 1,013 teams "
                  f"(extrapolated from 3 per size): {reference:.1f} CPU-s")
            print(f"  fuselab --compat ensemblebench --sampling {flags[1]}: {seconds:.3f} s wall; {reference / seconds:,.0f}x")

        # No reference does this; issue 22's figure before streaming: 34 s and 1.36 GB.
        labels, predictions = pool(models=20)
        path = os.path.join(tmp, "pool20.npz")
        np.savez(path, labels=labels, predictions=predictions)
        for fmt in ["json", "csv"]:
            out = os.path.join(tmp, f"teams.{fmt}")
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            child = subprocess.Popen([binary, "ensemble", "analyze", path, "--all-teams", "--format", fmt, "--out", out])
            # The child's own high-water mark: its ru_maxrss would include this process's
            # memory, which a forked child carries until exec.
            peak = 0
            while child.poll() is None:
                try:
                    with open(f"/proc/{child.pid}/status") as status:
                        peak = max(peak, int(re.search(r"VmHWM:\s+(\d+)", status.read()).group(1)))
                except (OSError, AttributeError):
                    pass
                time.sleep(0.01)
            seconds = time.perf_counter() - started
            assert child.returncode == 0, f"fuselab exited with {child.returncode}"
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
            print(f"\nfuselab --all-teams on 20 models (1,048,555 teams), {fmt} to a file ({os.path.getsize(out) / 1e6:,.0f} MB): "
                  f"{seconds:.2f} s wall, {cpu:.2f} CPU-s, peak memory {peak / 1024:,.0f} MiB")
            os.remove(out)
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
