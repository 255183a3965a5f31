"""A progress bar over training *steps* (Lightning's default bar counts epochs)."""

from __future__ import annotations

import sys

import lightning.pytorch as pl
from tqdm.auto import tqdm


class StepProgressBar(pl.Callback):
    """One tqdm bar from the first to the last step, showing the loss and the latest validation figure."""

    def __init__(self, total: int, initial: int = 0):
        self.total, self.initial = total, initial
        self.bar = None
        self.postfix: dict[str, str] = {}

    def on_train_start(self, trainer, module):
        if trainer.is_global_zero:
            self.bar = tqdm(total=self.total, initial=self.initial, desc="train", unit="step",
                            dynamic_ncols=True, file=sys.stderr, leave=True)

    def on_train_batch_end(self, trainer, module, outputs, batch, batch_idx):
        if self.bar is None:
            return
        self.bar.n = module.absolute_step
        for key, value in trainer.callback_metrics.items():  # train/loss, or every player's train/<name>_loss
            if key == "train/loss" or (key.startswith("train/") and key.endswith("_loss")):
                self.postfix[key[len("train/"):]] = f"{float(value):.4g}"
        self.bar.set_postfix(self.postfix, refresh=False)
        self.bar.refresh()

    def on_validation_end(self, trainer, module):
        if self.bar is None or trainer.sanity_checking:
            return
        for key, value in trainer.callback_metrics.items():
            if key.startswith("val/"):
                self.postfix[key] = f"{float(value):.4g}"

    def on_train_end(self, trainer, module):
        if self.bar is not None:
            self.bar.close()
            self.bar = None
