"""Ray job entry point: DP²-VAE training, sampling and (optional) evaluation from a YAML config.

    ray job submit --working-dir . -- python jobs/dpvae_train.py --config jobs/configs/dpvae_smoke.yaml

Writes ``output/model`` (weights, manifest with ε/δ/σ/steps, ``privacy-ledger.jsonl``),
``output/synth`` and ``output/eval``. A job that failed part-way is resubmitted unchanged: the
training resumes from its last checkpoint and its ledger, which has charged every step that
ran, so ε is never exceeded; a run whose planned steps are all charged is refused.
``--set key=value`` overrides a key (``train.epsilon=1``).
"""
from __future__ import annotations

import os
import sys

JOB = "dpvae.pipeline"


def get_args_parser():
    from raypriv.jobs.entry import job_args_parser

    return job_args_parser(__doc__.split("\n")[0], example="train.epsilon=1")


def main(args) -> int:
    from raypriv.jobs.entry import job_main

    return job_main(JOB, args, prog=os.path.splitext(os.path.basename(__file__))[0])


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
