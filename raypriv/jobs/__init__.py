"""Jobs: the one contract between raypriv's techniques and its edges (CLI, ``jobs/``, sweeps).

``Job.from_dict(settings).run(reporter) -> Result``; see :mod:`raypriv.jobs.base`. Jobs are
registered by name (:mod:`raypriv.jobs.registry`); the CLI's flags are generated from their
settings (:mod:`raypriv.jobs.flags`).
"""
from raypriv.jobs.base import Job, Outcome, Reporter, Result, flat_metrics
from raypriv.jobs.registry import get_job, job_names, register_group, register_job

__all__ = ["Job", "Outcome", "Reporter", "Result", "flat_metrics", "get_job", "job_names", "register_group",
           "register_job"]
