"""Ray job entry point: make a corpus unlearnable from a YAML config.

    ray job submit --working-dir . -- python jobs/protect_unlearnable.py --config jobs/configs/smoke.yaml

The config names the source corpus, the output storage path (a local path or a pyarrow
filesystem URI such as s3://bucket/prefix), the noise settings and the resources; see
jobs/configs/. ``--set key=value`` overrides a top-level or dotted key (``unlearnable.mode=classwise``).
"""
from __future__ import annotations

import argparse
import sys


def get_args_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--config", required=True, help="YAML job config (see jobs/configs/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config key, e.g. output=/tmp/x or unlearnable.max_rounds=3")
    return p


def load_config(path: str, overrides: list[str]) -> dict:
    import yaml

    with open(path) as f:
        cfg = yaml.safe_load(f) or {}
    for item in overrides:
        key, _, value = item.partition("=")
        node = cfg
        *parents, leaf = key.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = yaml.safe_load(value)
    return cfg


def main(args: argparse.Namespace) -> int:
    from raypriv.errors import RayprivError
    from raypriv.jobspec import ProtectJob
    from raypriv.runtime import init_ray

    try:
        job = ProtectJob.from_dict(load_config(args.config, args.set))
        init_ray()  # inside `ray job submit` this joins the cluster that runs the job
        result = job.run(progress=lambda m: print(m, flush=True))
    except RayprivError as e:
        print(f"protect_unlearnable: error: {e}", file=sys.stderr)
        return 2
    print(f"manifest: {result.output}/manifest.json", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(get_args_parser().parse_args()))
