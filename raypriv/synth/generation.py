"""``generate``: a labeled synthetic corpus from a teacher and its class-wise BN statistics.

Work is a Ray Data job over a small dataset of *generation tasks* (one batch of one class:
``label``, ``batch_index``, image count, seed), run on an actor pool (GPU actors when the
resources ask for GPUs). The teacher and the statistics reach each actor once through the
object store. Each actor writes its finished batch straight to a staging directory
(``OUTPUT.tasks/``, a Parquet file per task, renamed into place when complete) and returns
only a one-line status, so the driver never holds images. Re-running the same call skips
tasks whose file exists (resume after a crash); the staging directory remembers the
settings and refuses to mix batches made with different ones. At the end the staged
batches are written as a raypriv corpus (Parquet + ``manifest.json``, atomically) and the
staging directory is removed.

Row ids are ``synth/c{label:03d}/{index:05d}``, ``index`` running over the class's images,
so ``index < k`` selects the first ``k`` images per class of any run.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import time
from typing import TYPE_CHECKING, Callable

import numpy as np

from raypriv.errors import ArtifactError
from raypriv.hashing import task_seed
from raypriv.runtime.pool import PoolWorker
from raypriv.synth.config import SynthConfig

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.runtime import ResourceSpec
    from raypriv.synth.stats import ClassBNStats
    from raypriv.synth.teacher import Teacher

GENERATE_METHOD = "synth-bn-stats-generate"
PLAN_NAME = "plan.json"


def task_name(label: int, batch_index: int) -> str:
    return f"c{label:03d}-b{batch_index:05d}"


def generation_tasks(num_classes: int, config: SynthConfig) -> list[dict]:
    """Every task of a run: ``images_per_class`` per class in batches of ``batch_size``."""
    tasks = []
    for label in range(num_classes):
        for b in range(config.tasks_per_class):
            start = b * config.batch_size
            n = min(config.batch_size, config.images_per_class - start)
            tasks.append({"task": task_name(label, b), "label": label, "batch_index": b, "start": start, "n": n,
                          "seed": task_seed(config.seed, label, b)})
    return tasks


def synth_id(label: int, index: int) -> str:
    return f"synth/c{label:03d}/{index:05d}"


class SynthWorker(PoolWorker):
    """Actor-pool worker: runs generation tasks (one per call) and stages their images."""

    def setup(self, payload: dict, *, config: dict, staging: str) -> None:
        from raypriv.models import build_from_payload
        from raypriv.synth.inversion import BNStatLoss

        self.model = build_from_payload(payload["teacher"], self.device).eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.config = SynthConfig(**config)
        self.bn_loss = BNStatLoss(self.model, first_bn_weight=self.config.first_bn_weight)
        self.targets = payload["targets"]
        k = payload["teacher"].model_kwargs
        self.image_shape = (k["image_size"], k["image_size"], k["in_channels"])
        self.staging = staging

    def __call__(self, batch: dict) -> dict:
        from raypriv.synth.inversion import synthesize_batch

        out = {k: [] for k in ("task", "label", "n", "loss", "bn", "ce", "acc", "seconds")}
        for i in range(len(batch["task"])):
            t0 = time.time()
            label, n = int(batch["label"][i]), int(batch["n"][i])
            images, stats = synthesize_batch(self.model, self.bn_loss, label=label, n=n,
                                             image_shape=self.image_shape, targets=self.targets[label],
                                             config=self.config, seed=int(batch["seed"][i]), device=self.device)
            ids = [synth_id(label, int(batch["start"][i]) + j) for j in range(n)]
            stage_task(self.staging, str(batch["task"][i]), ids=ids, label=label, images=images)
            for key, value in (("task", str(batch["task"][i])), ("label", label), ("n", n),
                               ("seconds", time.time() - t0), *((k, stats[k]) for k in ("loss", "bn", "ce", "acc"))):
                out[key].append(value)
        return {k: np.asarray(v) for k, v in out.items()}


def stage_task(staging: str, task: str, *, ids: list[str], label: int, images: np.ndarray) -> str:
    """Write one finished task as ``staging/TASK.parquet`` (id, label, PNG image) atomically."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    from raypriv.data._images import encode_png

    table = pa.table({"id": pa.array(ids, pa.string()), "label": pa.array([label] * len(ids), pa.int64()),
                      "image": pa.array([encode_png(img) for img in images], pa.binary())})
    final = os.path.join(staging, f"{task}.parquet")
    tmp = os.path.join(staging, f".{task}.parquet.tmp-{os.getpid()}")
    pq.write_table(table, tmp)
    os.replace(tmp, final)
    return final


def _plan(teacher: "Teacher", stats: "ClassBNStats", config: SynthConfig) -> dict:
    return {"config": config.to_dict(), "teacher_fingerprint": teacher.manifest.get("input_fingerprint"),
            "teacher_weights": teacher.weights_digest(), "stats_fingerprint": stats.manifest.get("input_fingerprint"),
            "stats_created_at": stats.manifest.get("created_at")}


def _open_staging(staging: str, plan: dict) -> set[str]:
    """Create or reopen the staging directory; return the tasks already finished there."""
    path = os.path.join(staging, PLAN_NAME)
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            old = json.load(f)
        if old != json.loads(json.dumps(plan)):
            raise ArtifactError(f"{staging} holds batches generated with other settings, teacher or statistics; "
                                "delete it (or pass overwrite=True / --overwrite) to start over")
    else:
        os.makedirs(staging, exist_ok=True)
        with open(path + ".tmp", "w", encoding="utf-8") as f:
            json.dump(plan, f, indent=1, sort_keys=True)
        os.replace(path + ".tmp", path)
    return {f[:-len(".parquet")] for f in os.listdir(staging) if f.endswith(".parquet") and not f.startswith(".")}


def generate(teacher: "Teacher", stats: "ClassBNStats", *, output: str, config: SynthConfig | None = None,
             resources: "ResourceSpec | None" = None, overwrite: bool = False,
             progress: Callable[[str], None] = print) -> str:
    """Generate ``config.images_per_class`` images per class and write them to ``output``.

    Example::

        from raypriv.synth import SynthConfig, ClassBNStats, generate, load_teacher
        generate(load_teacher("out/teacher"), ClassBNStats.load("out/stats"), output="out/synth",
                 config=SynthConfig(images_per_class=20, iterations=200))
    """
    from raypriv.data import Corpus, CorpusInfo, write_corpus
    from raypriv.runtime.execute import run
    from raypriv.manifest import build_manifest
    from raypriv.runtime import ResourceSpec
    from raypriv.files import local_dir

    config = config or SynthConfig()
    resources = resources or ResourceSpec.auto()
    _check_compatible(teacher, stats)
    output = local_dir(output)
    if os.path.exists(os.path.join(output, "manifest.json")) and not overwrite:
        raise ArtifactError(f"{output} already holds a finished corpus; pass overwrite=True (--overwrite) to replace it")
    staging = output.rstrip("/") + ".tasks"
    if overwrite and os.path.isdir(staging):
        shutil.rmtree(staging)
    t0 = time.time()
    num_classes = stats.num_classes
    tasks = generation_tasks(num_classes, config)
    done = _open_staging(staging, _plan(teacher, stats, config))
    todo = [t for t in tasks if t["task"] not in done]
    progress(f"generating {config.images_per_class} images per class x {num_classes} classes "
             f"({config.statistics} BN statistics, {config.iterations} iterations per batch): {len(todo)} of "
             f"{len(tasks)} batch tasks to run, {resources.workers} worker(s)")
    if todo:
        _run_tasks(todo, teacher=teacher, stats=stats, config=config, staging=staging, resources=resources,
                   progress=progress, total=len(tasks), already=len(tasks) - len(todo))
    from raypriv.data.parquet import _decode_batch, _read_parquet

    files = [os.path.join(staging, f"{t['task']}.parquet") for t in tasks]
    ds = _read_parquet(files).map_batches(_decode_batch, batch_size=256, batch_format="numpy")
    names = tuple(stats.manifest.get("class_names") or ())
    info = CorpusInfo(source=f"synth:{output}", split="train", num_classes=num_classes,
                      image_shape=tuple(teacher.image_shape), class_names=names,
                      num_rows=num_classes * config.images_per_class, classes_declared=True)
    manifest = build_manifest(
        method=GENERATE_METHOD, params=config.to_dict(), seed=config.seed,
        input_fingerprint=stats.manifest.get("input_fingerprint"),
        extra={"teacher": teacher.path, "teacher_model": teacher.model, "statistics": stats.path,
               "statistics_layers": list(stats.layers), "tasks": len(tasks), "resources": dataclasses.asdict(resources),
               "generation_wall_time_s": time.time() - t0})
    path = run(ds, lambda d: write_corpus(Corpus(ds=d, info=info), output, manifest=manifest, overwrite=overwrite))
    shutil.rmtree(staging, ignore_errors=True)
    progress(f"wrote {info.num_rows:,} synthetic images to {path} ({time.time() - t0:.0f}s)")
    return path


def _run_tasks(todo: list[dict], *, teacher, stats, config: SynthConfig, staging: str, resources, progress,
               total: int, already: int) -> None:
    import ray

    from raypriv.runtime.execute import run
    from raypriv.runtime.pool import pool_map

    payload = {"teacher": teacher.payload(),
               "targets": [stats.targets(c, kind=config.statistics) for c in range(stats.num_classes)]}
    ds = pool_map(ray.data.from_items(todo, override_num_blocks=len(todo)), SynthWorker, resources=resources,
                  batch_size=1, shared=payload, options={"config": config.to_dict(), "staging": staging})

    def consume(d):
        finished = already
        for row in d.iter_rows():
            finished += 1
            progress(f"  batch {row['task']} ({finished}/{total}): loss {row['loss']:.3f} "
                     f"(BN {row['bn']:.3f}, CE {row['ce']:.3f}), teacher accuracy {row['acc']:.0%}, "
                     f"{row['seconds']:.1f}s")

    run(ds, consume)


def _check_compatible(teacher: "Teacher", stats: "ClassBNStats") -> None:
    """The statistics must come from exactly this teacher (same weights), or matching them is meaningless."""
    recorded = stats.manifest.get("teacher_weights")
    if recorded != teacher.weights_digest():
        raise ArtifactError(f"the statistics{' at ' + stats.path if stats.path else ''} were not recorded from this "
                            f"teacher{' (' + teacher.path + ')' if teacher.path else ''}: weights digest "
                            f"{recorded} != {teacher.weights_digest()}; run `raypriv synth stats` with this teacher")
