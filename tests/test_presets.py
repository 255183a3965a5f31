"""The presets shipped in deepgen/configs: each is a valid training config whose model builds on its data."""

import pytest
import yaml

import deepgen
from deepgen.evaluation.modes import known_modes
from deepgen.models.registry import build_model
from deepgen.training.config import TrainConfig, list_presets, resolve_preset


@pytest.mark.parametrize("name", list_presets())
def test_every_shipped_preset_is_a_valid_config_that_builds_its_model(name):
    fields = yaml.safe_load(resolve_preset(name).read_text())
    cfg = TrainConfig.from_dict(fields, source=name)
    cfg.check(source=name)
    model = build_model(cfg.model, deepgen.load_data(cfg.data).spec, cfg.model_params)
    assert model.name == fields["model"]


@pytest.mark.parametrize("name", [p for p in list_presets() if p.startswith("infogan-")])
def test_the_mode_covering_infogan_presets_have_one_category_per_mode_and_no_continuous_code(name):
    # the reason they cover every mode: G(z, c) is one continuous piece per category, so with K = modes
    # categories no piece has to bridge two modes (README "Mode coverage"; 2 x K categories: 24/25, 87.9 %)
    fields = yaml.safe_load(resolve_preset(name).read_text())
    centers, _ = known_modes(fields["data"])
    assert fields["model_params"] == {"categories": len(centers), "continuous": 0}
