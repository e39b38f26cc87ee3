"""``raypriv dpvae train``: DP²-VAE (or a baseline) as a Ray Train job.

The driver plans the stages (steps from epochs, q = B/N with N the training set's *declared*
size, ``DPVAEConfig.dataset_size``), solves σ for the target ε, takes the output directory's
run lock, opens the privacy ledger and starts a ``TorchTrainer`` whose workers each hold one
shard of the training set in memory (split by a secret keyed hash of the row ids, no row
dropped). Rank 0 charges every step on
the ledger (through a small actor that lives on the driver's node and writes to the output
directory) before the step is taken. Checkpoints go through Ray Train every
``checkpoint_every`` steps; a restarted worker group (``max_failures``) or a re-run with
``resume=True`` continues from the last checkpoint *and* from the number of steps the
ledger has charged, so a step lost after the checkpoint is paid for but never re-run.

Output directory: what stays with the private data, and the release beside it::

    privacy-ledger.jsonl   every charged step (with its time; private)
    ray-train/             Ray Train's run directory: checkpoints, per-step results (private)
    .raypriv.lock          held by the run while it trains
    release/               what the data owner may publish (covered by ε):
        model.pt               final VAE weights (written first) …
        manifest.json          … then the manifest, which marks the run finished: method,
                               config, ε/δ/accountant, σ, q and steps per stage, the keyed
                               input fingerprint, raypriv version. Nothing in it is computed
                               from the private rows but through the DP mechanism.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import secrets
from typing import TYPE_CHECKING, Any, Callable

from raypriv.dpvae.config import DPVAEConfig
from raypriv.privacy.dpsgd import StagePlan
from raypriv.privacy.ledger import LEDGER_NAME, BudgetExhaustedError, PrivacyLedger
from raypriv import storage
from raypriv.errors import ArtifactError, ConfigError, DataError

if TYPE_CHECKING:  # pragma: no cover
    from raypriv.data.corpus import Corpus
    from raypriv.runtime import ResourceSpec

WEIGHTS_NAME = "model.pt"
METHOD_NAME = "dpvae"
RUN_NAME = "ray-train"
#: In the run directory: where the run's Ray Train checkpoints are when not inside it.
CHECKPOINTS_RECORD = "checkpoints.json"
#: The sub-directory of a private run's output that holds what may be published.
RELEASE_NAME = "release"
#: Where a non-private reference run (``method="none"``) puts its model: never a release.
NONPRIVATE_NAME = "nonprivate"
#: The trained weights as the driver got them, kept (privately) until the release is written,
#: so a crash in between does not lose a model whose every step is already charged.
FINAL_STATE_NAME = "final-state.pt"
#: The neighbouring relation the run's (ε, δ) holds for.
NEIGHBOURING = "add or remove one record"
#: How often the driver prints the workers' queued progress lines.
RELAY_SECONDS = 2.0


def plan_stages(config: DPVAEConfig, *, train_rows: int, public_rows: int | None = None) -> list[StagePlan]:
    """Stages with their steps and sample rates, σ solved for the private ones. For a private
    run nothing here depends on ``train_rows`` but the checks: q and the steps come from the
    declared ``config.dataset_size``."""
    from raypriv.privacy.accounting import solve_sigmas

    config.check_data(train_rows=train_rows)
    stages = []
    for name in config.stage_names:
        public = name == "pretrain" and config.pretrain_on == "public"
        rows = public_rows if public else config.planning_rows(train_rows=train_rows)
        if public and not rows:
            raise ConfigError("pretrain_on", "public pre-training needs a public corpus")
        q = min(1.0, config.batch_size / rows)
        steps = max(1, math.ceil(config.stage_epochs(name) / q))
        stages.append(dict(name=name, steps=steps, sample_rate=q, private=name in config.private_stage_names))
    private = [s for s in stages if s["private"]]
    sigmas = solve_sigmas(sample_rates=[s["sample_rate"] for s in private], steps=[s["steps"] for s in private],
                          epsilon_target=config.epsilon, delta=config.delta, accountant=config.accountant,
                          budget_split=config.budget_split if len(private) == 2 else None) if private else []
    it = iter(sigmas)
    return [StagePlan(name=s["name"], steps=s["steps"], sample_rate=s["sample_rate"],
                      sigma=next(it) if s["private"] else None, max_grad_norm=config.max_grad_norm, lr=config.lr,
                      freeze=config.stage_freeze(s["name"]), private=s["private"])
            for s in stages]


def _ledger_stages(plans: list[StagePlan]) -> list[dict]:
    return [{"name": p.name, "sigma": p.sigma, "sample_rate": p.sample_rate, "steps": p.steps} for p in plans
            if p.private]


class RunMonitor:
    """A small actor on the driver's node: holds the :class:`PrivacyLedger` (rank 0 calls
    :meth:`charge` before every private step) and collects progress lines for the driver."""

    def __init__(self, ledger_path: str | None):
        self.ledger = PrivacyLedger.open(ledger_path) if ledger_path else None
        self.lines: list[str] = []

    def charge(self, stage: str) -> int:
        return self.ledger.charge(stage)

    def charged(self) -> dict[str, int]:
        if self.ledger is None:
            return {}
        return {s["name"]: self.ledger.charged(s["name"]) for s in self.ledger.header["stages"]}

    def report(self, stage: str, step: int, steps: int, loss: float | None, private: bool) -> None:
        """Queue a progress line with the charged mechanisms so far; the driver computes its ε.
        (Computing ε here would block the next :meth:`charge`, i.e. the workers' next step, for
        the accountant's ~0.1–1 s.) A private stage reports no loss: it would be an unnoised
        statistic of private rows."""
        spent = self.ledger.mechanisms() if private and self.ledger else None
        text = f"[{stage}] step {step}/{steps}" + ("" if loss is None else f": loss {loss:.2f}")
        self.lines.append((text, spent))

    def take_lines(self) -> list[tuple[str, list | None]]:
        lines, self.lines = self.lines, []
        return lines


def _start_monitor(ledger_path: str | None):
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    node = ray.get_runtime_context().get_node_id()
    return ray.remote(num_cpus=0)(RunMonitor).options(
        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id=node, soft=False)).remote(ledger_path)


def _relay_progress(monitor, progress: Callable[[str], None], stop, *, delta: float, accountant: str) -> None:
    """Driver thread: print the workers' progress lines as they arrive, with ε spent so far on
    the newest private line of each batch. One accountant call per batch, not per line: PRV
    takes ~0.3 s of a core, and on a small machine the driver shares its cores with the
    workers (computing ε for every line cost 2 workers their speed-up over 1)."""
    import ray

    from raypriv.privacy.accounting import epsilon

    while True:
        finished = stop.wait(RELAY_SECONDS)
        try:
            lines = ray.get(monitor.take_lines.remote())
            newest = max((i for i, (_, spent) in enumerate(lines) if spent), default=None)
            for i, (text, spent) in enumerate(lines):
                if i == newest:
                    eps = epsilon(spent, delta=delta, accountant=accountant)
                    text += f"{',' if ':' in text else ':'} ε spent {eps:.3f}"
                progress(text)
        except Exception:  # noqa: BLE001 - the monitor is gone: nothing more to relay
            return
        if finished:
            return


def _check_output(out: str, *, resume: bool) -> None:
    """Every method: a finished run is never overwritten, a non-empty directory only resumed."""
    from raypriv.locks import LOCK_NAME

    finished = model_dir(out)
    if finished:
        raise ArtifactError(f"{out}: this run has finished ({os.path.relpath(finished, out)}/manifest.json exists) "
                            "and its budget is spent. Another run on the same data is another release: its ε "
                            "composes with this one's, and raypriv does not yet track a budget per dataset across "
                            "directories")
    if not resume and os.path.exists(out) and set(os.listdir(out)) - {LOCK_NAME}:
        raise ArtifactError(f"{out}: not empty; pass resume=True (--resume) to continue the run there, or "
                            "choose a new directory (a new run on the same data spends a new budget, which "
                            "composes with this one's)")


def _run_storage(out: str, checkpoints: str | None, *, resume: bool) -> str:
    """Where Ray Train keeps this run: ``out`` by default; with ``checkpoints``, a fresh location
    of its own under it (``checkpoints/run-<random>``), recorded in ``out`` and read back on resume.
    A run never starts from checkpoints it finds: Ray Train would continue another run's weights,
    whose steps that run's ledger charged, not this one's."""
    from raypriv.files import write_json_atomic

    record = os.path.join(out, CHECKPOINTS_RECORD)
    base = storage.location(checkpoints, what="checkpoints") if checkpoints else None
    kept = None
    if resume and os.path.exists(record):
        with open(record, encoding="utf-8") as f:
            kept = json.load(f)
    if resume and (kept["base"] if kept else None) != base:
        raise ArtifactError(f"{out}: the run keeps its checkpoints in {kept['base'] if kept else out}, not "
                            f"{base or out}; resume with the same checkpoints setting")
    if kept:
        return kept["location"]
    if base is None:
        return out
    location = storage.join(base, f"run-{secrets.token_hex(8)}")
    write_json_atomic(record, {"base": base, "location": location})
    return location


def _open_ledger(out: str, config: DPVAEConfig, plans: list[StagePlan], *, resume: bool,
                 fingerprint: str) -> PrivacyLedger:
    path = os.path.join(out, LEDGER_NAME)
    plan = [dataclasses.asdict(p) for p in plans]
    if not resume:
        return PrivacyLedger.create(path, epsilon=config.epsilon, delta=config.delta, accountant=config.accountant,
                                    stages=_ledger_stages(plans),
                                    extra={"config": config.to_dict(), "input_fingerprint": fingerprint,
                                           "plan": plan})
    ledger = PrivacyLedger.open(path)
    started_key, key_now = (str(f).split(":")[1:2] for f in (ledger.header.get("input_fingerprint"), fingerprint))
    if started_key != key_now:
        from raypriv.privacy.keys import KEY_FILE_ENV, key_path

        raise ArtifactError(f"{out}: the run was started under owner key {started_key[0] if started_key else '?'}, "
                            f"this process has key {key_now[0]} ({key_path()}); set {KEY_FILE_ENV} to the key file "
                            "that started the run")
    if ledger.header.get("config") != _json(config.to_dict()) or ledger.header.get("input_fingerprint") != fingerprint:
        raise ArtifactError(f"{out}: the ledger was opened for a different config or dataset; resume with the "
                            "same settings and data, or start a new run")
    if ledger.header.get("plan") != _json(plan):
        raise ArtifactError(f"{out}: the stages planned now (σ {[p.sigma for p in plans]}) differ from those the "
                            f"ledger charges (σ {[p.get('sigma') for p in ledger.header.get('plan') or []]}); a "
                            "resumed run must take its steps with the noise it is charged for: resume with the "
                            "raypriv version that started it")
    trained = os.path.exists(os.path.join(out, FINAL_STATE_NAME))
    if not trained and all(ledger.remaining(s["name"]) <= 0 for s in ledger.header["stages"]):
        raise BudgetExhaustedError(
            f"{out}: all planned steps are already charged (ε = {ledger.epsilon_spent():.3g} of "
            f"{config.epsilon:g} spent); the budget is exhausted, so the run cannot resume")
    return ledger


def _json(obj):
    """``obj`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(obj))


def release_dir(out: str) -> str:
    """Where a private run in ``out`` puts what may be published."""
    return os.path.join(out, RELEASE_NAME)


def model_dir(out: str) -> str | None:
    """The finished model directory of the run in ``out`` (``release/``, or ``nonprivate/`` for a
    non-private reference), or None while the run is unfinished. A model directory is finished
    when its manifest exists: the whole directory is renamed into place at once."""
    from raypriv.manifest import is_finished

    for name in (RELEASE_NAME, NONPRIVATE_NAME):
        if is_finished(os.path.join(out, name)):
            return os.path.join(out, name)
    return None


def is_finished(out: str) -> bool:
    """The "finished?" rule of a DP-VAE run: it has a finished model directory (:func:`model_dir`)."""
    return model_dir(out) is not None


def train_dpvae(train: "Corpus", *, config: DPVAEConfig, output: str, resources: "ResourceSpec | None" = None,
                public: "Corpus | None" = None, resume: bool = False, max_failures: int = 0,
                checkpoints: str | None = None, progress: Callable[[str], None] = print,
                step_hook: Callable | None = None) -> str:
    """Train a DP²-VAE (or ``config.method``'s baseline) on ``train``; return ``output``, whose
    ``release/`` sub-directory holds what may be published (see the module docstring).

    ``output`` is a local (or mounted, shared) directory, a URI is refused: it holds the privacy
    ledger, which is charged (appended and fsynced under a lock) before every step, and an object
    store offers neither. Ray Train's checkpoints go inside ``output``, or under ``checkpoints``
    (a directory or a pyarrow URI such as ``s3://bucket/dpvae``: each run in a location of its
    own there, named in ``output/checkpoints.json``). They are as private as the ledger. ``step_hook``, a
    picklable ``hook(*, stage, step, output)``, runs on every worker inside every step, once its
    batch is drawn (and, in a private stage, charged) and before its update: a place to watch
    or interrupt training (the crash tests raise there)."""
    from raypriv.runtime import ResourceSpec

    resources = resources or ResourceSpec.auto()
    _check_corpus(train, config)
    if public is not None:
        if not (config.method == "dp2" and config.pretrain_on == "public"):
            raise ConfigError("public", "a public corpus is only used by method='dp2' with pretrain_on='public' "
                                        f"(got method={config.method!r}, pretrain_on={config.pretrain_on!r})")
        _check_public(public, train)
    if config.private_stage_names and not train.info.classes_declared:
        raise DataError(f"the source declares no class list, so the class count ({train.info.num_classes}) would "
                        "be max(label) + 1 of the private rows, published through the model's shape; declare the "
                        "classes (a manifest.json with class_names beside Parquet files, or one folder per class)",
                        item=train.info.source)
    n = train.info.num_rows
    plans = plan_stages(config, train_rows=n, public_rows=public.info.num_rows if public is not None else None)
    for p in plans:
        noise = f"σ = {p.sigma:.4f}" if p.private else "no noise (not charged)"
        progress(f"stage {p.name}: {p.steps} steps, q = {p.sample_rate:.4g}, {noise}")
    from raypriv.files import local_dir

    out = local_dir(output)
    fingerprint = train.keyed_fingerprint()
    from raypriv.locks import exclusive_run

    with exclusive_run(out):
        _check_output(out, resume=resume)
        run_storage = _run_storage(out, checkpoints, resume=resume)
        ledger = _open_ledger(out, config, plans, resume=resume, fingerprint=fingerprint) \
            if config.private_stage_names else None
        state = _final_state(out)
        if state is None:
            state = _fit(train, public, config=config, plans=plans, resources=resources, out=out,
                         run_storage=run_storage, max_failures=max_failures, progress=progress, step_hook=step_hook)
            _save_final_state(out, state)
        else:
            progress(f"every step is trained and charged; writing the model from {FINAL_STATE_NAME}")
        return _finalize(out, state, train=train, public=public, config=config, plans=plans,
                         fingerprint=fingerprint, progress=progress, has_ledger=ledger is not None)


def _final_state(out: str) -> dict | None:
    import torch

    path = os.path.join(out, FINAL_STATE_NAME)
    return torch.load(path, map_location="cpu", weights_only=True) if os.path.exists(path) else None


def _save_final_state(out: str, state: dict) -> None:
    import torch

    tmp = os.path.join(out, f".{FINAL_STATE_NAME}.tmp")
    torch.save(state, tmp)
    os.replace(tmp, os.path.join(out, FINAL_STATE_NAME))


def _fit(train, public, *, config, plans, resources, out, run_storage, max_failures, progress, step_hook) -> dict:
    import threading

    import ray

    from raypriv.runtime.train import TrainingError, fit, load_checkpoint

    monitor = _start_monitor(os.path.join(out, LEDGER_NAME) if config.private_stage_names else None)
    h, w, c = (int(v) for v in train.info.image_shape)
    from raypriv.privacy.rng import secret_seed

    true_rows = {"train": train.info.num_rows, "public": public.info.num_rows if public is not None else 0}
    loop_cfg = {"config": config.to_dict(), "plans": [dataclasses.asdict(p) for p in plans],
                "image_shape": (h, w, c), "num_classes": int(train.info.num_classes),
                # the update's divisor q·N: the declared size for private data, never the true count
                "rows": {**true_rows, "train": config.planning_rows(train_rows=true_rows["train"])},
                "true_rows": true_rows, "shard_key": secret_seed(),
                "monitor": [monitor], "step_hook": step_hook, "output": out}
    datasets = {"train": train.ds.select_columns(["id", "image", "label"]).materialize()}
    if public is not None:
        datasets["public"] = public.ds.select_columns(["id", "image", "label"]).materialize()
    from raypriv.dpvae.worker import train_loop

    stop = threading.Event()
    relay = threading.Thread(target=_relay_progress, args=(monitor, progress, stop),
                             kwargs={"delta": config.delta, "accountant": config.accountant}, daemon=True)
    relay.start()
    try:
        result = fit(train_loop, config=loop_cfg, resources=resources, storage_path=run_storage, name=RUN_NAME,
                     datasets=datasets, max_failures=max_failures, keep_checkpoints=2, what="DP-VAE training")
    except TrainingError as e:
        raise TrainingError(f"{e}; the ledger in {out} keeps every charged step; re-run with resume=True "
                            "(--resume) to continue") from e
    finally:
        stop.set()
        relay.join(timeout=10)
        ray.kill(monitor)
    return load_checkpoint(result)


def _finalize(out, state, *, train, public, config, plans, fingerprint, progress, has_ledger) -> str:
    """Write the model directory, atomically: ``release/`` for a private run, ``nonprivate/``
    for the reference. A release records nothing computed from the private rows outside the
    DP mechanism: no exact row count, no private loss, no timing (not even ``created_at``)."""
    import shutil
    import tempfile

    import torch

    from raypriv.manifest import build_manifest, write_manifest

    privacy: dict[str, Any] = {"private": has_ledger}
    if has_ledger:
        ledger = PrivacyLedger.open(os.path.join(out, LEDGER_NAME))
        privacy.update(ledger.summary(), neighbouring_relation=NEIGHBOURING, dataset_size=config.dataset_size)
    manifest = build_manifest(
        method=METHOD_NAME, params={**config.to_dict(), "stages": [dataclasses.asdict(p) for p in plans],
                                    "model_kwargs": _corpus_model_kwargs(train, config)},
        seed=config.seed, input_fingerprint=fingerprint,
        extra={"source": train.info.source, "privacy": privacy, "class_names": list(train.info.class_names),
               "image_shape": list(train.info.image_shape), "files": [WEIGHTS_NAME],
               "history": state.get("history", []),       # non-private stages only
               **({} if has_ledger else {"train_rows": train.info.num_rows}),
               **({"public_source": public.info.source, "public_fingerprint": public.fingerprint()}
                  if public is not None else {})})
    if has_ledger:
        del manifest["created_at"]           # with the start time known, it would time the run
    final = os.path.join(out, RELEASE_NAME if has_ledger else NONPRIVATE_NAME)
    tmp = tempfile.mkdtemp(prefix=f".{os.path.basename(final)}-", dir=out)
    try:
        torch.save(state["model"], os.path.join(tmp, WEIGHTS_NAME))
        write_manifest(tmp, manifest)
        os.rename(tmp, final)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    os.remove(os.path.join(out, FINAL_STATE_NAME))
    if has_ledger:
        progress(f"done: ε = {privacy['epsilon_spent']:.3f} (target {config.epsilon:g}), δ = {config.delta:g}, "
                 f"{config.accountant} accountant → {final}")
    else:
        progress(f"done (non-private: not for release) → {final}")
    return out


def _corpus_model_kwargs(train: "Corpus", config: DPVAEConfig) -> dict[str, int]:
    from raypriv.dpvae.models import model_kwargs

    return model_kwargs(image_shape=train.info.image_shape, num_classes=train.info.num_classes, config=config)


def _check_corpus(train: "Corpus", config: DPVAEConfig) -> None:
    h, w, _ = (int(v) for v in train.info.image_shape)
    if train.info.num_rows < 1:
        raise DataError("empty training corpus", item=train.info.source)
    if h != w:
        raise DataError(f"images are {h}x{w}; the VAEs need square images (load with resize=)",
                        item=train.info.source)
    from raypriv.privacy.dpsgd import set_trainable
    from raypriv.dpvae.models import build_vae, check_dp_compatible

    model = build_vae(config.model, **_corpus_model_kwargs(train, config))
    check_dp_compatible(model)
    set_trainable(model, config.freeze)          # names every frozen part, or says which one is unknown


def _check_public(public: "Corpus", train: "Corpus") -> None:
    """The public corpus fits the private one's shapes and shares no image with it (public
    pre-training is not charged: a private image in it would be used without noise)."""
    from raypriv.data.corpus import shared_images

    if tuple(public.info.image_shape) != tuple(train.info.image_shape) or \
            public.info.num_classes != train.info.num_classes:
        raise DataError(f"public corpus has images {tuple(public.info.image_shape)} and {public.info.num_classes} "
                        f"classes; the private one {tuple(train.info.image_shape)} and {train.info.num_classes}",
                        item=public.info.source)
    shared = shared_images(public, train)
    if shared:
        raise DataError(f"{len(shared)} of its images are also in the private training set (e.g. row {shared[0]!r}); "
                        "public pre-training is not charged, so the public corpus must be disjoint from the "
                        "private one", item=public.info.source)
