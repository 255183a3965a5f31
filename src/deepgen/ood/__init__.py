"""Out-of-distribution detection with generative models: likelihood is not probability.

:class:`Detector` turns a trained run into a detector with PyOD's / scikit-learn's interface
(:mod:`deepgen.ood.detector`); the scores are in :mod:`deepgen.ood.scores`, the built-in OOD
sets in :mod:`deepgen.ood.sets`, and ``deepgen ood`` (the suite: every score against every set)
in :mod:`deepgen.ood.suite`.  Training the background model of the likelihood-ratio score is a
training workflow: :func:`deepgen.workflows.ood_background.train_background`.
"""

from deepgen.ood.detector import SCORES, Detector, applicable_scores

__all__ = ["Detector", "SCORES", "applicable_scores"]
