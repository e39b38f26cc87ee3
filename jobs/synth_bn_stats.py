"""Ray job entry point: the synthetic-data pipeline (teacher, class-wise BN statistics,
generation, optional evaluation) from a YAML config.

    ray job submit --working-dir . -- python jobs/synth_bn_stats.py --config jobs/configs/synth_smoke.yaml

Each stage writes ``output/<stage>`` (``teacher``, ``stats``, ``synth``, ``eval``); a finished
stage is reused and generation resumes its staged batches, so a failed job is resubmitted
unchanged. ``output`` is a local path (on a cluster: a filesystem every node can write).
``--set key=value`` overrides a top-level or dotted key (``synth.images_per_class=50``).
"""
import sys

from raypriv.jobs.entry import job_script

get_args_parser, main = job_script("synth.pipeline", __doc__, example="synth.iterations=100", file=__file__)

if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
