"""Ray job entry point: make a corpus unlearnable from a YAML config.

    ray job submit --working-dir . -- python jobs/protect_unlearnable.py --config jobs/configs/smoke.yaml

The config names the source corpus, the output storage path (a local path or a pyarrow
filesystem URI such as s3://bucket/prefix), the noise settings and the resources; see
jobs/configs/. ``--set key=value`` overrides a top-level or dotted key (``unlearnable.mode=classwise``).
"""
import sys

from raypriv.jobs.entry import job_script

get_args_parser, main = job_script("protect", __doc__, example="unlearnable.max_rounds=3", file=__file__)

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
