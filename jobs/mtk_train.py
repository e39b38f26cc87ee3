"""Ray job entry point: MTK keys, training and evaluation (with the key-recovery audit) from a YAML config.

    ray job submit --working-dir . -- python jobs/mtk_train.py --config jobs/configs/mtk_smoke.yaml

Writes the key file ``keys`` (mode 0600; generated when absent; keep it apart from the model),
``output/model`` (weights and manifest: salted key digests, never the keys) and
``output/eval`` (report.json, report.txt). A resubmitted job reuses finished stages.
``--set key=value`` overrides a key (``mtk.decoupling=0.5``).
"""
import sys

from raypriv.jobs.entry import job_script

get_args_parser, main = job_script("mtk.pipeline", __doc__, example="mtk.decoupling=0.5", file=__file__)

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
