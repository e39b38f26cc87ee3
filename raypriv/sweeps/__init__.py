"""Privacy/utility sweeps with Ray Tune over any registered job (``raypriv sweep``).

A sweep tunes one job's settings (:class:`~raypriv.sweeps.job.SweepJob`): the trials are built
from a base config and a search space (:mod:`raypriv.sweeps.space`), scored on a validation split
cut from the training data, run by Ray Tune (:mod:`raypriv.sweeps.tuning`), charged to the
dataset's privacy budget before they run (:mod:`raypriv.sweeps.cost`), and summarized as a
results table, a Pareto frontier and a manifest (:mod:`raypriv.sweeps.report`).
"""
from raypriv.sweeps.job import SweepJob

__all__ = ["SweepJob"]
