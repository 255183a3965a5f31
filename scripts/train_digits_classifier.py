"""Regenerate deepgen's shipped digits classifier (the feature space of the sample-quality metrics).

    python scripts/train_digits_classifier.py [--out STEM]

Trains :class:`deepgen.nets.classifier.ImageClassifier` on the ``digits`` train split with the
settings of :data:`deepgen.evaluation.sample_quality.TRAIN_SETTINGS` (seed 0, one thread) and
writes STEM.safetensors and STEM.json (settings, accuracy per split, SHA-256 of the weights);
default STEM: ``src/deepgen/weights/digits-classifier``.  The run is deterministic for a given
torch build; another build or CPU may round differently and give other bytes (then the JSON
records the new hash and accuracy).
"""

from __future__ import annotations

import argparse
import json
import time

from deepgen.evaluation.sample_quality import DIGITS_NET, train_digits_feature_net


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--out", default=str(DIGITS_NET), help="output stem (default: the shipped weights)")
    p.add_argument("--verbose", action="store_true")
    args = p.parse_args()
    t0 = time.perf_counter()
    meta = train_digits_feature_net(args.out, verbose=args.verbose)
    print(json.dumps({"accuracy": meta["accuracy"], "sha256": meta["sha256"],
                      "seconds": round(time.perf_counter() - t0, 1)}, indent=2))


if __name__ == "__main__":
    main()
