"""Ray job entry point: DP²-VAE training, sampling and (optional) evaluation from a YAML config.

    ray job submit --working-dir . -- python jobs/dpvae_train.py --config jobs/configs/dpvae_smoke.yaml

Writes ``output/model`` (weights, manifest with ε/δ/σ/steps, ``privacy-ledger.jsonl``),
``output/synth`` and ``output/eval``. A job that failed part-way is resubmitted unchanged: the
training resumes from its last checkpoint and its ledger, which has charged every step that
ran, so ε is never exceeded; a run whose planned steps are all charged is refused.
``--set key=value`` overrides a key (``train.epsilon=1``).
"""
import sys

from raypriv.jobs.entry import job_script

get_args_parser, main = job_script("dpvae.pipeline", __doc__, example="train.epsilon=1", file=__file__)

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
