"""Ray job entry point: does the protection work? Victims trained on clean vs protected data, from a YAML config.

    ray job submit --working-dir . -- python jobs/evaluate_unlearnable.py --config jobs/configs/evaluate_smoke.yaml

The config names the clean corpus (its test split is the test set), the protected corpus
written by ``jobs/protect_unlearnable.py``, the report directory and the victim recipe;
``output/report.json`` is rewritten after every victim and ``manifest.json`` marks the report
finished. ``--set key=value`` overrides a key (``evaluate.victim.epochs=3``).
"""
from __future__ import annotations

import os
import sys

JOB = "evaluate"


def get_args_parser():
    from raypriv.jobs.entry import job_args_parser

    return job_args_parser(__doc__.split("\n")[0], example="evaluate.victim.epochs=3")


def main(args) -> int:
    from raypriv.jobs.entry import job_main

    return job_main(JOB, args, prog=os.path.splitext(os.path.basename(__file__))[0])


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
