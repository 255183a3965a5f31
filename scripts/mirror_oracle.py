"""The supervised ceiling of the mirror OOD sets on digits: how well *any* detector can tell a test digit
from its mirror image, measured by classifiers that are shown the answer.

    OMP_NUM_THREADS=1 python scripts/mirror_oracle.py [--data digits]

For each of ``hflip`` and ``vflip`` it trains scikit-learn classifiers (an RBF SVM, C = 10, and an MLP of
256x2) on the training split's images (label 0) and their mirror images (label 1), pixels scaled to
[0, 1], and prints one JSON line per (set, classifier) with the AUROC on the test split against its
mirror images -- the sets ``deepgen ood`` builds.  No OOD detector sees OOD examples, so these figures
are not detectors: they bound what a detector can reach, since some digits are (nearly) their own
mirror image (0, 1, 8 left-right; 0, 1, 3, 8 upside down).  It also prints how many test images equal
their mirror image exactly.
"""

from __future__ import annotations

import argparse
import json

import numpy as np
from sklearn.neural_network import MLPClassifier
from sklearn.svm import SVC

from deepgen.data import load_data
from deepgen.evaluation.ood_metrics import auroc
from deepgen.ood.scores import transform


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data", default="digits", help="a built-in image dataset or file (default: digits)")
    args = p.parse_args()
    splits = load_data(args.data)
    if not splits.spec.is_image:
        raise SystemExit(f"mirror_oracle: '{args.data}' holds vectors; expected images (C, H, W)")
    scale = float(splits.spec.levels - 1) if splits.spec.levels else 1.0
    train, test = splits.train, splits.test
    for name in ("hflip", "vflip"):
        x = np.concatenate([train.flatten(1).numpy(), transform(train, name).flatten(1).numpy()]) / scale
        y = np.r_[np.zeros(len(train)), np.ones(len(train))]
        x_in, x_out = test.flatten(1).numpy() / scale, transform(test, name).flatten(1).numpy() / scale
        for label, clf in (("svm-rbf", SVC(C=10.0, gamma="scale")),
                           ("mlp-256x2", MLPClassifier((256, 256), max_iter=500, random_state=0))):
            clf.fit(x, y)
            s_in, s_out = (clf.decision_function(v) if hasattr(clf, "decision_function") else clf.predict_proba(v)[:, 1]
                           for v in (x_in, x_out))
            print(json.dumps({"ood": name, "classifier": label, "oracle_auroc": round(auroc(s_in, s_out), 4),
                              "n_in": len(x_in), "n_out": len(x_out)}), flush=True)
        same = int((test - transform(test, name)).abs().flatten(1).sum(1).eq(0).sum())
        print(json.dumps({"ood": name, "test_images_equal_to_their_mirror": same}), flush=True)


if __name__ == "__main__":
    main()
