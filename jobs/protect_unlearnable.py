"""Ray job entry point: make a corpus unlearnable from a YAML config.

    ray job submit --working-dir . -- python jobs/protect_unlearnable.py --config jobs/configs/smoke.yaml

The config names the source corpus, the output storage path (a local path or a pyarrow
filesystem URI such as s3://bucket/prefix), the noise settings and the resources; see
jobs/configs/. ``--set key=value`` overrides a top-level or dotted key (``unlearnable.mode=classwise``).
"""
from __future__ import annotations

import os
import sys

JOB = "protect"


def get_args_parser():
    from raypriv.jobs.entry import job_args_parser

    return job_args_parser(__doc__.split("\n")[0], example="unlearnable.max_rounds=3")


def main(args) -> int:
    from raypriv.jobs.entry import job_main

    return job_main(JOB, args, prog=os.path.splitext(os.path.basename(__file__))[0])


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
