"""A sweep's trials: their job settings, built and checked before anything runs, and the id
that names the sweep's privacy charges."""
from __future__ import annotations

import hashlib
import json
import os
import random
import secrets
from typing import Any

from raypriv.errors import ConfigError

__all__ = ["TRIALS_DIR", "TUNE_NAME", "build_trial", "plan_trials", "sweep_id", "trial_dir", "trial_settings"]

TUNE_NAME = "tune"
TRIALS_DIR = "trials"


def sweep_id(sweep) -> str:
    """What names the sweep's charges: its job, settings, space and output (a re-run of the same
    sweep in the same place is the same sweep and pays once)."""
    text = json.dumps({"job": sweep.job, "base": sweep.base, "space": sweep.space, "samples": sweep.samples,
                       "seed": sweep.seed, "selection": sweep.selection, "validation": sweep.validation,
                       "output": os.path.abspath(sweep.output)}, sort_keys=True, default=str)
    return "sweep-" + hashlib.sha256(text.encode()).hexdigest()[:16]


def trial_dir(sweep, index: int | str) -> str:
    """Where trial ``index`` writes its job's output."""
    return os.path.join(os.path.abspath(sweep.output), TRIALS_DIR, f"{index:03d}" if isinstance(index, int)
                        else str(index))


def trial_settings(sweep, params: dict[str, Any], index: int | str) -> dict[str, Any]:
    """The job settings of one trial: ``base`` + ``params``, its own output directory, the
    sweep's per-trial resources and (for a job with a test split) the validation split."""
    import dataclasses

    from raypriv.sweeps.space import apply_settings

    cls = sweep.job_class()
    fields = {f.name for f in dataclasses.fields(cls)}
    settings = apply_settings(sweep.base, params)
    settings["output"] = trial_dir(sweep, index)
    settings["resources"] = dataclasses.asdict(sweep.trial_resources())
    if sweep.validation and {"source", "test_split"} <= fields:
        from raypriv.data.sources import VALIDATION_SUFFIX, split_validation

        source, given = split_validation(settings.get("source", ""))
        settings["source"] = f"{source}{VALIDATION_SUFFIX}{given or sweep.validation:g}"
        settings["test_split"] = "validation"
    return settings


def build_trial(sweep, settings: dict[str, Any], label: str):
    try:
        return sweep.job_class().from_dict(settings)
    except ConfigError as e:
        reason = str(e).split(": ", 1)[1] if ": " in str(e) else str(e)
        raise ConfigError(f"{label} {e.field}", reason) from None


def plan_trials(sweep) -> tuple[list[dict], list[Any], list[Any]]:
    """``(trial params, trial jobs, candidate jobs)``; the candidates (every setting a trial
    could get) only for private selection, whose number of trials is drawn here, secretly."""
    from raypriv.sweeps import space as sp

    dims = sp.parse_space(sweep.space)
    if sweep.selection == "private":
        if not all(d.finite for d in dims):
            raise ConfigError("space", "private selection bounds the cost over every setting a trial could get: "
                                       "give grid, choice or randint dimensions only")
        cands = [build_trial(sweep, trial_settings(sweep, c, "candidate"), "candidate") for c in sp.candidates(dims)]
        from raypriv.privacy.selection import TruncatedNegativeBinomial

        k = TruncatedNegativeBinomial.with_mean(sweep.mean_trials, eta=sweep.eta).draw()      # secret: never logged
        rng = random.Random(secrets.randbits(64))
        params = [sp.draw(dims, rng) for _ in range(k)]
    else:
        params, cands = sp.expand(dims, samples=sweep.samples, seed=sweep.seed), []
    jobs = [build_trial(sweep, trial_settings(sweep, p, i), f"trial {i}") for i, p in enumerate(params)]
    return params, jobs, cands


