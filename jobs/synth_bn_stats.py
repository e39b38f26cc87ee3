"""Ray job entry point: the synthetic-data pipeline (teacher, class-wise BN statistics,
generation, optional evaluation) from a YAML config.

    ray job submit --working-dir . -- python jobs/synth_bn_stats.py --config jobs/configs/synth_smoke.yaml

Each stage writes ``output/<stage>`` (``teacher``, ``stats``, ``synth``, ``eval``); a finished
stage is reused and generation resumes its staged batches, so a failed job is resubmitted
unchanged. ``output`` is a local path (on a cluster: a filesystem every node can write).
``--set key=value`` overrides a top-level or dotted key (``synth.images_per_class=50``).
"""
from __future__ import annotations

import os
import sys

JOB = "synth.pipeline"


def get_args_parser():
    from raypriv.jobs.entry import job_args_parser

    return job_args_parser(__doc__.split("\n")[0], example="synth.iterations=100")


def main(args) -> int:
    from raypriv.jobs.entry import job_main

    return job_main(JOB, args, prog=os.path.splitext(os.path.basename(__file__))[0])


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
