"""Ray job entry point: protect a corpus with unlearnable examples and check the protection,
from a YAML config.

    ray job submit --working-dir . -- python jobs/unlearnable_pipeline.py --config jobs/configs/unlearnable_smoke.yaml

Writes ``output/protected`` (the released corpus; its manifest holds the visual cost, PSNR and
SSIM against the originals) and ``output/eval`` (victims trained on clean vs protected data); a
finished stage is reused, so a failed job is resubmitted unchanged. ``--set key=value``
overrides a top-level or dotted key (``unlearnable.epsilon_255=16``).
"""
import sys

from raypriv.jobs.entry import job_script

get_args_parser, main = job_script("unlearnable.pipeline", __doc__, example="unlearnable.epsilon_255=16",
                                   file=__file__)

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
