"""A sweep's trials: their job settings, built and checked before anything runs, and the id
that names the sweep's privacy charges."""
from __future__ import annotations

import dataclasses
import json
import os
import random
import secrets
from typing import Any

from raypriv.errors import ConfigError

__all__ = ["STATE_NAME", "TRIALS_DIR", "TUNE_NAME", "build_jobs", "build_trial", "new_sweep_id", "plan_trials",
           "sweep_settings", "trial_dir", "trial_settings"]

TUNE_NAME = "tune"
TRIALS_DIR = "trials"
STATE_NAME = "sweep.json"
#: The most settings private selection bounds its cost over (each is accounted on its own).
MAX_CANDIDATES = 1000


def sweep_settings(sweep) -> dict[str, Any]:
    """What a sweep's trials and cost depend on (all but where it writes): a resumed sweep must
    have the same, or it is another sweep."""
    keys = ("job", "imports", "base", "space", "samples", "seed", "validation", "data", "selection", "mean_trials",
            "eta", "trial_workers", "trial_cpus", "trial_gpus", "storage")
    return json.loads(json.dumps({k: getattr(sweep, k) for k in keys}, default=str))


def new_sweep_id() -> str:
    """A fresh, random name for a sweep's charge: a sweep run again from nothing is charged again
    (its trials train again, with fresh noise), a resumed one (its ``sweep.json`` kept) is not."""
    return "sweep-" + secrets.token_hex(8)


def trial_dir(sweep, index: int | str) -> str:
    """Where trial ``index`` writes its job's output."""
    return os.path.join(os.path.abspath(sweep.output), TRIALS_DIR, f"{index:03d}" if isinstance(index, int)
                        else str(index))


def trial_settings(sweep, params: dict[str, Any], index: int | str) -> dict[str, Any]:
    """The job settings of one trial: ``base`` + ``params``, its own output directory, the
    sweep's per-trial resources and the validation split (``validation`` > 0)."""
    from raypriv.sweeps.space import apply_settings

    cls = sweep.job_class()
    settings = apply_settings(sweep.base, params)
    settings["output"] = trial_dir(sweep, index)
    settings["resources"] = dataclasses.asdict(sweep.trial_resources())
    if sweep.storage and "checkpoints" in {f.name for f in dataclasses.fields(cls)}:
        from raypriv import storage

        settings["checkpoints"] = storage.join(sweep.tune_storage(), TRIALS_DIR, f"{index:03d}"
                                               if isinstance(index, int) else str(index))
    if sweep.validation:
        from raypriv.data.sources import VALIDATION_SUFFIX, split_validation

        if not {"source", "test_split"} <= {f.name for f in dataclasses.fields(cls)}:
            raise ConfigError("validation", f"job {sweep.job!r} has no source and test_split to cut a validation "
                                            "split from: set validation: 0 (its trials are then scored as the job "
                                            "itself scores, which may be on a test split)")

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


def plan_trials(sweep) -> tuple[list[dict], list[dict]]:
    """``(trial params, candidate params)``; the candidates (every setting a trial could get) only
    for private selection, whose number of trials is drawn here, secretly."""
    from raypriv.sweeps import space as sp

    dims = sp.parse_space(sweep.space)
    if sweep.selection == "private":
        if not all(d.finite for d in dims):
            raise ConfigError("space", "private selection bounds the cost over every setting a trial could get: "
                                       "give grid, choice or randint dimensions only")
        cands = sp.candidates(dims)
        if len(cands) > MAX_CANDIDATES:
            raise ConfigError("space", f"{len(cands)} settings a trial could get; private selection bounds its cost "
                                       f"over each of them: at most {MAX_CANDIDATES}")
        from raypriv.privacy.selection import TruncatedNegativeBinomial

        k = TruncatedNegativeBinomial.with_mean(sweep.mean_trials, eta=sweep.eta).draw()      # secret: never logged
        rng = random.Random(secrets.randbits(64))
        params = [sp.draw(dims, rng) for _ in range(k)]
    else:
        params, cands = sp.expand(dims, samples=sweep.samples, seed=sweep.seed), []
    return params, cands


def build_jobs(sweep, params: list[dict], cands: list[dict]) -> tuple[list[Any], list[Any]]:
    """The trials' jobs and the candidates' (every one built and checked before anything runs)."""
    return ([build_trial(sweep, trial_settings(sweep, p, i), f"trial {i}") for i, p in enumerate(params)],
            [build_trial(sweep, trial_settings(sweep, c, "candidate"), "candidate") for c in cands])


