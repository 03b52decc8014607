"""Reference values of fuselab's CTR metrics (shared/src/ctr/metrics.rs) from scikit-learn.

Pinned: Python 3.11.7, numpy 2.4.6, scikit-learn 1.9.1 (the JSON records the versions it was
made with).

AUC is sklearn.metrics.roc_auc_score(y, score). Logloss is sklearn.metrics.log_loss(y, p,
labels=[0, 1]); scikit-learn 1.9.1 turns p into the columns (1 - p, p) and clips both to
[eps, 1 - eps] with eps = numpy.finfo(float64).eps. GAUC is computed here as DIN and RecBole
define it: sum over users with both classes of n_u * roc_auc_score(y_u, score_u), divided by the
sum of their n_u (users in ascending id order); users whose labels are one class are skipped.
A case where scikit-learn raises (labels of one class) records null for AUC, and a case where
no user has both classes records null for GAUC.

    python3 -m venv /tmp/sk && /tmp/sk/bin/pip install numpy==2.4.6 scikit-learn==1.9.1
    /tmp/sk/bin/python shared/tests/vectors/ctr_metrics/make_ctr_metrics.py > shared/tests/vectors/ctr_metrics/ctr_metrics.json
"""
import json
import platform

import numpy as np
import sklearn
from sklearn.metrics import log_loss, roc_auc_score


def gauc(users, labels, scores):
    users, labels, scores = np.asarray(users), np.asarray(labels), np.asarray(scores)
    weighted, counted, skipped, impressions = 0.0, 0, 0, 0
    for user in sorted(set(users.tolist())):
        mask = users == user
        y = labels[mask]
        if y.min() == y.max():
            skipped += 1
            continue
        n = int(mask.sum())
        weighted += n * float(roc_auc_score(y, scores[mask]))
        counted += 1
        impressions += n
    if counted == 0:
        return None
    return {
        "value": weighted / impressions,
        "users_counted": counted,
        "users_skipped": skipped,
        "impressions_counted": impressions,
    }


def case(name, users, labels, scores):
    users = [int(u) for u in users]
    labels = [int(bool(l)) for l in labels]
    scores = [float(s) for s in scores]
    assert len(users) == len(labels) == len(scores)
    y = np.asarray(labels)
    p = np.asarray(scores, dtype=np.float64)
    auc = float(roc_auc_score(y, p)) if y.min() != y.max() else None
    return {
        "name": name,
        "users": users,
        "labels": labels,
        "scores": scores,
        "auc": auc,
        "logloss": float(log_loss(y, p, labels=[0, 1])),
        "gauc": gauc(users, labels, scores),
    }


def main():
    rng = np.random.default_rng(20260515)
    cases = []

    # Ties within and across classes, rows unsorted.
    cases.append(case(
        "ties",
        [1, 2, 1, 2, 1, 2, 3, 3, 1, 2],
        [1, 0, 0, 1, 1, 0, 1, 0, 0, 1],
        [0.5, 0.5, 0.5, 0.25, 0.75, 0.25, 0.5, 0.5, 0.125, 0.5],
    ))
    # Every score equal: AUC 0.5.
    cases.append(case("all_tied", [4, 4, 5, 5, 5, 6], [1, 0, 0, 1, 0, 0], [0.3] * 6))
    # Probabilities exactly 0 and 1, right and wrong, for the clipping.
    cases.append(case(
        "zeros_and_ones",
        [1, 1, 1, 1, 2, 2, 2, 2],
        [1, 0, 1, 0, 1, 0, 0, 1],
        [1.0, 0.0, 0.0, 1.0, 0.5, 0.0, 1.0, 1.0],
    ))
    # Probabilities within eps of 0 and 1 (1 - 1e-20 is 1.0 in float64; 1 - 2**-53 is not).
    cases.append(case(
        "tiny",
        [1, 1, 2, 2, 3, 3, 3, 3, 4, 4],
        [1, 0, 0, 1, 1, 0, 1, 0, 1, 0],
        [1e-20, 1 - 1e-20, 1e-20, 1 - 1e-20, 1e-300, 5e-324, 1 - 2**-53, 2**-52, 3e-16, 1 - 3e-16],
    ))
    # ~200 rows, 14 users, two of them single-class; scores rounded to two decimals for ties.
    n = 203
    users = rng.integers(100, 114, size=n)
    base = rng.uniform(0.05, 0.6, size=n)
    labels = (rng.uniform(size=n) < base).astype(int)
    labels[users == 103] = 1
    labels[users == 110] = 0
    scores = np.clip(np.round(base + rng.normal(0, 0.15, size=n), 2), 0.0, 1.0)
    cases.append(case("users_200", users, labels, scores))
    # 2000 rows, continuous probabilities, few clicks, many users of all sizes.
    n = 2000
    users = rng.zipf(1.6, size=n) % 500
    logits = rng.normal(-2.0, 1.2, size=n)
    probs = 1.0 / (1.0 + np.exp(-logits))
    labels = (rng.uniform(size=n) < probs).astype(int)
    cases.append(case("zipf_2000", users, labels, np.clip(probs + rng.normal(0, 0.05, size=n), 0, 1)))
    # All clicked: scikit-learn's AUC raises, logloss (labels=[0, 1]) is defined, GAUC undefined.
    cases.append(case("one_class", [1, 2, 3], [1, 1, 1], [0.9, 0.4, 0.6]))
    # Two classes overall but every user single-class: AUC defined, GAUC undefined.
    cases.append(case("users_single_class", [1, 1, 2, 2], [1, 1, 0, 0], [0.8, 0.3, 0.6, 0.1]))

    out = {
        "versions": {
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit-learn": sklearn.__version__,
        },
        "logloss_eps": float(np.finfo(np.float64).eps),
        "cases": cases,
    }
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
