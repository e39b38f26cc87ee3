"""Ray job entry point: a privacy/utility sweep of any raypriv job with Ray Tune, from a YAML config.

    ray job submit --working-dir . -- python jobs/sweep.py --config jobs/configs/sweep_smoke.yaml

Writes ``output/results.csv|.parquet`` (a row per trial), ``output/frontier.csv|.png`` (the Pareto
frontier), ``output/manifest.json`` (the sweep's ε: every trial composed, or private selection)
and each trial's outputs under ``output/trials/``. A DP job's trials are charged to the dataset's
budget (``budget``) before they run. A resubmitted job resumes the sweep with ``Tuner.restore``:
finished trials are not run again, and nothing is charged twice.
``--set key=value`` overrides a key (``concurrent=2``).
"""
import sys

from raypriv.jobs.entry import job_script

get_args_parser, main = job_script("sweep", __doc__, example="concurrent=2", file=__file__)

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
