"""How much a synthetic CTR page's true driver orders its clicks (docs/ccn.md, "Visits, triggers
from the history, unseen scenarios"): among the candidates in the trigger's category, the AUC of
the driver (1 when the trigger drove the visit) against the clicks, and of the share of the
user's unclicked exposures that are in the trigger's category (a model-free look at what the
negative sequence says about the driver).

    fuselab ctr data synthetic --seed 1 --pages 12000 --trigger-weight 0.2 \
        --pages-per-visit 4 --trigger-from history --out d
    python docs/research/ctr_driver_auc.py d/test.csv      # needs scikit-learn
"""

import csv
import sys

from sklearn.metrics import roc_auc_score


def main(path):
    rows = [r for r in csv.DictReader(open(path, newline="")) if r["item_cat"] == r["trigger_cat"]]
    clicks = [int(r["click"]) for r in rows]
    driver = [int(r["driver"] == "trigger") for r in rows]
    share = []
    for r in rows:
        negatives = r["neg_cat"].split("^") if r["neg_cat"] else []
        share.append(-negatives.count(r["trigger_cat"]) / max(len(negatives), 1))
    print(f"{len(rows)} candidates in the trigger's category, click rate {sum(clicks) / len(rows):.3f}")
    print(f"AUC of the true driver against the clicks: {roc_auc_score(clicks, driver):.4f}")
    print(f"AUC of minus the trigger-category share of the unclicked log: {roc_auc_score(clicks, share):.4f}")


if __name__ == "__main__":
    main(sys.argv[1])
