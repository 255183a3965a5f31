"""Training progress: a tqdm bar on a terminal, plain log lines elsewhere, nothing when off."""

from __future__ import annotations

import io
import re
from types import SimpleNamespace

import torch

from deepgen.training import progress as progress_mod
from deepgen.training.config import TrainConfig
from deepgen.training.progress import StepProgress, format_duration
from deepgen.workflows.train import train

TINY = dict(model="realnvp", data="moons", batch_size=64, lr=5e-3, warmup_steps=2, log_every=3, progress=False,
            model_params={"couplings": 2, "hidden": 8})
NUMBER = r"-?[\d.]+(e[-+]\d+)?"


def fake_trainer(**metrics):
    values = {k: torch.tensor(v) for k, v in metrics.items()}
    return SimpleNamespace(is_global_zero=True, sanity_checking=False, callback_metrics=values,
                           progress_bar_metrics=values)


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_format_duration():
    assert [format_duration(s) for s in (0.4, 45, 146, 3720)] == ["0s", "45s", "2m26s", "1h02m"]


def test_log_line_has_step_share_figures_speed_and_eta():
    stream = io.StringIO()
    bar = StepProgress(total=10, initial=0, interval=0.0, stream=stream)
    trainer = fake_trainer(**{"val/nll_nats": 2.4})
    terms = {"train/loss": torch.tensor(2.3456), "train/nll": torch.tensor(2.3)}  # the module's last step
    bar.on_train_start(trainer, None)
    bar.on_validation_end(trainer, None)
    for step in (1, 2):
        bar.on_train_batch_end(trainer, SimpleNamespace(absolute_step=step, train_terms=terms), None, None, step - 1)
    lines = stream.getvalue().splitlines()
    assert lines[0] == "step 0/10 (0%)  start"
    assert re.fullmatch(rf"step 2/10 \(20%\)  loss 2\.346  val/nll_nats 2\.4  {NUMBER} steps/s  ETA \S+", lines[-1])


def test_bar_on_a_terminal():
    stream = Terminal()
    bar = StepProgress(total=10, initial=4, stream=stream)
    trainer = fake_trainer()
    module = SimpleNamespace(train_terms={"train/generator_loss": torch.tensor(0.7),
                                          "train/discriminator_loss": torch.tensor(1.3)})
    bar.on_train_start(trainer, module)
    for step in (5, 6):
        module.absolute_step = step
        bar.on_train_batch_end(trainer, module, None, None, 0)
    bar.on_train_end(trainer, module)
    text = stream.getvalue()
    assert "\r" in text and "6/10" in text and "generator_loss=0.7" in text and "step 0/" not in text


def test_log_lines_when_stderr_is_not_a_terminal(tmp_path, monkeypatch, capfd):
    monkeypatch.setattr(progress_mod, "LOG_INTERVAL_S", 0.0)  # a line after every step
    cfg = TrainConfig.from_dict({**TINY, "steps": 8, "eval_every": 4})
    train(cfg, tmp_path, progress=True)  # the keyword overrides cfg.progress
    err = capfd.readouterr().err
    assert "\r" not in err
    lines = [line for line in err.splitlines() if line.startswith("step ")]
    assert lines[0] == "step 0/8 (0%)  start"
    for k, line in enumerate(lines[1:-1], start=1):
        assert re.fullmatch(rf"step {k}/8 \({100 * k / 8:.0f}%\)  loss {NUMBER}(  val/nll_nats {NUMBER})?  "
                            rf"{NUMBER} steps/s  ETA \S+", line), line
    assert "val/nll_nats" in lines[5] and "val/nll_nats" not in lines[4]  # the figure of step 4's validation
    assert re.fullmatch(rf"step 8/8 \(100%\)  loss {NUMBER}  val/nll_nats {NUMBER}  {NUMBER} steps/s  done in \S+",
                        lines[-1]), lines[-1]


def test_quiet_by_default(tmp_path, capfd):
    train(TrainConfig.from_dict({**TINY, "steps": 3, "eval_every": 100}), tmp_path)
    captured = capfd.readouterr()
    assert captured.err == "" and captured.out == ""
    assert (tmp_path / "scores.json").is_file()
