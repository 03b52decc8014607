"""Golden COCO keypoint AP for shared/tests/pose_eval.rs, from pycocotools' own COCOeval.

Fixed, seeded ground truth and predictions (17 COCO keypoints; several people per image, some
unlabelled joints, people with no labelled joint, missed and extra detections, tied scores) are
written with the numbers pycocotools computes for them. Run once, by hand; the output
(coco_keypoints.json) is committed beside this script:

    python3 -m venv env && env/bin/pip install pycocotools==2.0.10 numpy==2.4.6
    env/bin/python make_coco_keypoints_golden.py
"""
import contextlib
import io
import json
import os

import numpy as np
import pycocotools
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval

rng = np.random.RandomState(2024)
images, annotations, results = [], [], []
ann_id = 1
for image_id in range(1, 41):
    images.append({"id": image_id, "width": 128, "height": 96})
    for _ in range(rng.randint(0, 4)):
        centre = rng.uniform([20, 20], [108, 76])
        spread = rng.uniform(5, 25)
        xy = centre + rng.normal(0, spread, size=(17, 2))
        v = rng.choice([0, 1, 2], size=17, p=[0.15, 0.15, 0.7])
        if rng.rand() < 0.08:
            v[:] = 0
        x0, y0 = xy.min(0)
        x1, y1 = xy.max(0)
        kp = []
        for (x, y), vis in zip(xy, v):
            kp += [float(x), float(y), int(vis)] if vis else [0.0, 0.0, 0]
        annotations.append({
            "id": ann_id, "image_id": image_id, "category_id": 1, "iscrowd": 0,
            "keypoints": kp, "num_keypoints": int((v > 0).sum()),
            "area": float((x1 - x0) * (y1 - y0) * rng.uniform(0.4, 0.8)),
            "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
        })
        ann_id += 1
        if rng.rand() < 0.85:  # detected, with noise growing with a per-person error scale
            noise = rng.uniform(0.2, 5)
            dxy = xy + rng.normal(0, noise, size=(17, 2))
            score = float(np.round(rng.uniform(0.1, 1.0), 1))  # rounded: ties happen
            results.append({"image_id": image_id, "category_id": 1, "score": score,
                            "keypoints": [float(c) for p in dxy for c in (p[0], p[1], 1.0)]})
    for _ in range(rng.randint(0, 2)):  # false positives
        dxy = rng.uniform([0, 0], [128, 96], size=(17, 2))
        results.append({"image_id": image_id, "category_id": 1,
                        "score": float(np.round(rng.uniform(0.05, 0.9), 1)),
                        "keypoints": [float(c) for p in dxy for c in (p[0], p[1], 1.0)]})

dataset = {"info": {}, "licenses": [], "images": images, "annotations": annotations,
           "categories": [{"id": 1, "name": "person", "keypoints": [str(k) for k in range(17)],
                           "skeleton": []}]}
with contextlib.redirect_stdout(io.StringIO()):
    gt = COCO()
    gt.dataset = dataset
    gt.createIndex()
    dt = gt.loadRes(results)
    ev = COCOeval(gt, dt, "keypoints")
    ev.evaluate()
    ev.accumulate()
    ev.summarize()
names = ["AP", "AP50", "AP75", "APm", "APl", "AR", "AR50", "AR75", "ARm", "ARl"]
here = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(here, "coco_keypoints.json"), "w") as f:
    json.dump({
        "generator": "shared/tests/golden/make_coco_keypoints_golden.py",
        "pycocotools": pycocotools.__version__ if hasattr(pycocotools, "__version__") else "2.0.10",
        "numpy": np.__version__,
        "annotations": annotations, "results": results,
        "stats": dict(zip(names, [float(s) for s in ev.stats])),
    }, f)
print(dict(zip(names, ev.stats)))
