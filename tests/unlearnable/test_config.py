import pytest

from raypriv.errors import ConfigError
from raypriv.unlearnable.job import ProtectJob
from raypriv.unlearnable import UnlearnableConfig


def test_reference_preset_matches_paper_code_defaults():
    c = UnlearnableConfig.preset("reference")
    got = (c.budget_255, round(c.step_size * 255, 6), c.pgd_steps, c.train_steps, c.stop_accuracy)
    assert got == (8, 0.8, 20, 10, 0.99)
    assert (c.lr, c.momentum, c.weight_decay) == (0.1, 0.9, 5e-4)


@pytest.mark.parametrize("field,value", [("epsilon", 8), ("epsilon", 0), ("step_size", 1.0), ("mode", "pixelwise"),
                                         ("pgd_steps", 0), ("stop_accuracy", 1.5), ("lr", -1)])
def test_invalid_settings_name_the_field(field, value):
    with pytest.raises(ConfigError) as e:
        UnlearnableConfig(**{field: value})
    assert e.value.field == field and field in str(e.value)


def test_from_dict_budget_in_levels_and_unknown_keys():
    c = UnlearnableConfig.from_dict({"epsilon_255": 16, "step_size_255": 1.6, "mode": "classwise"})
    assert c.budget_255 == 16 and c.mode == "classwise"
    with pytest.raises(ConfigError, match="epsilonn"):
        UnlearnableConfig.from_dict({"epsilonn": 0.1})
    with pytest.raises(ConfigError, match="preset"):
        UnlearnableConfig.from_dict({"preset": "magic"})


def test_job_spec_requires_output_and_rejects_unknown_keys():
    with pytest.raises(ConfigError, match="output"):
        ProtectJob.from_dict({"source": "digits"})
    with pytest.raises(ConfigError, match="resources.worker"):
        ProtectJob.from_dict({"source": "digits", "output": "/tmp/x", "resources": {"worker": 2}})


def test_preset_scales_step_with_epsilon_unless_given():
    assert UnlearnableConfig.preset("reference", epsilon=16 / 255).step_size == pytest.approx(1.6 / 255)
    assert UnlearnableConfig.preset("reference", epsilon=16 / 255, step_size=1 / 255).step_size == 1 / 255


def test_restart_preset_restarts_and_recalibrates_the_surrogate():
    c = UnlearnableConfig.preset("restart")
    assert c.reinit_surrogate and c.recalibrate_bn and c.budget_255 == 8 and c.stop_accuracy == 0.9


def test_strong_preset_keeps_training_a_small_surrogate_past_the_first_stop():
    c = UnlearnableConfig.preset("strong")
    assert c.surrogate == "tiny_cnn" and not c.reinit_surrogate and c.stop_accuracy == 0.99
    assert c.effective_min_rounds > 1 and c.train_steps > UnlearnableConfig.preset("reference").train_steps


def test_one_default_preset_however_a_run_is_started():
    """The library's defaults, a YAML job without a preset and the CLI without --preset are the same settings."""
    from raypriv.cli import get_args_parser, job_from_args

    for mode in ("samplewise", "classwise"):
        library = UnlearnableConfig(mode=mode)
        yaml_job = ProtectJob.from_dict({"source": "digits", "output": "/tmp/x", "unlearnable": {"mode": mode}})
        cli_job = job_from_args(get_args_parser().parse_args(["protect", "digits", "-o", "/tmp/x",
                                                                       "--mode", mode]))
        assert library == yaml_job.unlearnable == cli_job.unlearnable == UnlearnableConfig.preset("strong", mode=mode)
    assert UnlearnableConfig().effective_min_rounds == 10 and UnlearnableConfig(mode="classwise").effective_min_rounds == 1
    # unset, the floor follows max_rounds without changing the settings a resumed run compares
    short, long = UnlearnableConfig(max_rounds=1), UnlearnableConfig(max_rounds=2)
    assert (short.effective_min_rounds, long.effective_min_rounds) == (1, 2) and short.min_rounds is None


def test_strong_classwise_stops_at_the_first_fit_and_overrides_still_win():
    assert UnlearnableConfig.preset("strong", mode="classwise").effective_min_rounds == 1
    assert UnlearnableConfig.preset("strong", mode="samplewise").effective_min_rounds == 10
    assert UnlearnableConfig.preset("strong", mode="classwise", min_rounds=4).effective_min_rounds == 4
    assert UnlearnableConfig.preset("restart", mode="classwise").effective_min_rounds == 5


def test_shorter_max_rounds_lowers_preset_min_rounds():
    assert UnlearnableConfig.preset("strong", max_rounds=1).effective_min_rounds == 1
    with pytest.raises(ConfigError, match="min_rounds"):
        UnlearnableConfig.preset("strong", max_rounds=1, min_rounds=3)
