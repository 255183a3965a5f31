"""scikit-learn's handwritten digits, shipped with scikit-learn (nothing downloaded).

1,797 grey images of 8x8 pixels with 17 grey levels (integers 0..16), stored as
(N, 1, 8, 8).  Fixed seeded split: 1,257 train / 270 val / 270 test.

``digits-binary`` is the fixed binarization ``b = 1[k >= 8]`` (levels = 2).
Both carry class labels: the digit shown, classes ``("0", ..., "9")``.
"""

from __future__ import annotations

import numpy as np
import torch

from deepgen.data.spec import DataSpec, Splits

_SPLIT_SEED = 20240601
_N_VAL = _N_TEST = 270
CLASSES = tuple(str(d) for d in range(10))
DESCRIPTIONS = {
    "digits": "sklearn handwritten digits; 8x8 grey, 17 levels (0..16); 1257/270/270; 10 classes (digits 0-9)",
    "digits-binary": "sklearn digits binarized at grey level >= 8 of 0..16; 8x8, 2 levels; 1257/270/270; "
                     "10 classes (digits 0-9)",
}


def _digits_arrays() -> tuple[np.ndarray, np.ndarray]:
    """sklearn's (1797, 8, 8) grey images (float32) and digit labels (int64)."""
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.float32), d.target.astype(np.int64)


def _split(x: torch.Tensor, y: torch.Tensor, spec: DataSpec) -> Splits:
    """The fixed seeded 1257/270/270 split of images ``x`` and labels ``y``."""
    perm = torch.randperm(len(x), generator=torch.Generator().manual_seed(_SPLIT_SEED))
    n_train = len(x) - _N_VAL - _N_TEST
    parts = perm[:n_train], perm[n_train : n_train + _N_VAL], perm[n_train + _N_VAL :]
    return Splits(
        spec,
        *(x[p] for p in parts),
        labels={name: y[p] for name, p in zip(("train", "val", "test"), parts)},
        classes=CLASSES,
    )


def load_digits_images(binary: bool = False) -> Splits:
    """The digits as (N, 1, 8, 8) levels (17 grey levels, or 2 if ``binary``) with their digit labels."""
    images, labels = _digits_arrays()
    x = torch.from_numpy(images).unsqueeze(1)
    if binary:
        x = (x >= 8).float()
        spec = DataSpec("digits-binary", (1, 8, 8), 2, DESCRIPTIONS["digits-binary"])
    else:
        spec = DataSpec("digits", (1, 8, 8), 17, DESCRIPTIONS["digits"])
    return _split(x, torch.from_numpy(labels), spec)
