"""A small convolutional image classifier whose penultimate layer is a feature space.

    x' = (x - loc) / scale                           (per channel; statistics of the training images)
    h  = ReLU(conv3x3(x'))                           C -> c1 channels, H x W
    h  = ReLU(conv3x3, stride 2 (h))                 c1 -> c2 channels, ceil(H/2) x ceil(W/2)
    h  = AdaptiveAvgPool(h) to (4, 4), flatten       c2 * 16 values
    f  = ReLU(W_f h + b_f)                           the features (``features`` values)
    logits = W_o f + b_o                             one per class

Sample-quality metrics (Fréchet distance, precision / recall, density / coverage) are
computed on ``f`` (:mod:`deepgen.evaluation.sample_quality`), the class histogram of
samples on ``argmax logits``.  ``loc`` and ``scale`` are buffers, saved with the weights,
so the net takes images on their data's own scale.
"""

from __future__ import annotations

import torch
from torch import nn

from deepgen.errors import ConfigError

POOLED = 4  # side of the pooled map before the feature layer


class ImageClassifier(nn.Module):
    """(B, C, H, W) on the data's scale -> logits (B, num_classes); :meth:`features` -> (B, features).

    Args:
        shape: per-example image shape (C, H, W).
        num_classes: number of classes K (>= 2).
        channels: channels of the two conv layers (c1, c2).
        features: width of the penultimate (feature) layer.
    """

    def __init__(self, shape, num_classes: int, channels: tuple[int, int] = (16, 32), features: int = 64):
        super().__init__()
        shape = tuple(int(s) for s in shape)
        if len(shape) != 3:
            raise ConfigError(f"image classifier: expected images of shape (C, H, W), got {shape}")
        if num_classes < 2:
            raise ConfigError(f"image classifier: expected at least 2 classes, got {num_classes}")
        c1, c2 = (int(c) for c in channels)
        self.shape, self.num_classes, self.channels, self.num_features = shape, int(num_classes), (c1, c2), int(features)
        self.register_buffer("input_loc", torch.zeros(shape[0], 1, 1))
        self.register_buffer("input_scale", torch.ones(shape[0], 1, 1))
        self.body = nn.Sequential(
            nn.Conv2d(shape[0], c1, 3, padding=1), nn.ReLU(),
            nn.Conv2d(c1, c2, 3, stride=2, padding=1), nn.ReLU(),
            nn.AdaptiveAvgPool2d(POOLED), nn.Flatten(),
            nn.Linear(c2 * POOLED * POOLED, self.num_features), nn.ReLU(),
        )
        self.head = nn.Linear(self.num_features, self.num_classes)

    def architecture(self) -> dict:
        """The constructor's arguments (enough to rebuild the net before loading its weights)."""
        return {"shape": list(self.shape), "num_classes": self.num_classes, "channels": list(self.channels),
                "features": self.num_features}

    @torch.no_grad()
    def fit_input(self, x: torch.Tensor) -> None:
        """Set loc, scale to the per-channel mean and standard deviation of training images ``x``."""
        x = x.to(self.input_loc.dtype)
        loc = x.mean((0, 2, 3)).reshape(self.input_loc.shape)
        scale = x.std((0, 2, 3)).reshape(self.input_scale.shape)
        self.input_loc.copy_(loc)
        self.input_scale.copy_(torch.where(scale > 1e-8, scale, torch.ones_like(scale)))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The penultimate layer f (B, features) of images ``x`` on the data's scale."""
        if tuple(x.shape[1:]) != self.shape:
            raise ConfigError(f"image classifier: images of shape {tuple(x.shape[1:])}, expected {self.shape}")
        return self.body((x.to(self.input_loc.dtype) - self.input_loc) / self.input_scale)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.features(x))


__all__ = ["ImageClassifier"]
