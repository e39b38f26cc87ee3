"""Ray job entry point: does the protection work? Victims trained on clean vs protected data, from a YAML config.

    ray job submit --working-dir . -- python jobs/evaluate_unlearnable.py --config jobs/configs/evaluate_smoke.yaml

The config names the clean corpus (its test split is the test set), the protected corpus
written by ``jobs/protect_unlearnable.py``, the report directory and the victim recipe;
``output/report.json`` is rewritten after every victim and ``manifest.json`` marks the report
finished. ``--set key=value`` overrides a key (``evaluate.victim.epochs=3``).
"""
import sys

from raypriv.jobs.entry import job_script

get_args_parser, main = job_script("evaluate", __doc__, example="evaluate.victim.epochs=3", file=__file__)

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
