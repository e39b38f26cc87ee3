"""MTK on a multi-task view of mnist5k: the key gate, leakage and decoupling trade-off, the
key-recovery audit, and training throughput with 1 and 2 Ray Train workers.

    python benchmarks/mtk_tradeoff.py --dataset mnist5k-tasks                     # validation split
    python benchmarks/mtk_tradeoff.py --dataset mnist5k-pairs --lambdas 0,0.3,1,3
    python benchmarks/mtk_tradeoff.py --dataset mnist5k-tasks --parts throughput
    python benchmarks/mtk_tradeoff.py --merge bench-out/a.json,bench-out/b.json   # one table and PNG

Parts (``--parts``, comma-separated):

* ``tradeoff``: an ordinary multi-task model (no key; the baseline, trained for as many gradient
  steps as MTK: its epochs times the expansion factor) and one MTK model per
  decoupling λ, all with the same recipe, secured task = the view's main label (digit, left
  digit). Per model: accuracy of every task with and without the key and with a forged key,
  leakage of the secured label from the un-keyed unsecured outputs against the base rate and the
  irreducible level. A table, and a PNG of leakage vs. mean unsecured accuracy over λ.
* ``audit``: the key-recovery audit of the λ = first model, the attacker drawing its labeled
  images from the training split (so that 1,000 are available), patterns scored on the held-out
  split (:mod:`raypriv.mtk.audit`).
* ``othertask``: an MTK model with two secured tasks (the main label and the view's first other
  task: parity, right digit): each task's accuracy with only the *other* task's key (must stay at
  chance), with its own key and with both.
* ``throughput``: training images per second (expanded rows; the mean of epochs 2 and 3 from
  the per-epoch times in the model's history; no hardening) with 1 and 2 Ray Train workers.

Settings are chosen on the validation split (default); ``--holdout test`` measures once.
"""
from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))


def get_args_parser():
    from common import add_holdout_args
    from raypriv.mtk.config import DECOUPLING_TARGETS, MtkConfig

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--dataset", default="mnist5k-tasks", choices=["mnist5k-tasks", "mnist5k-pairs"])
    p.add_argument("--parts", default="tradeoff,audit")
    p.add_argument("--lambdas", default="0,0.3,1,3", help="decoupling λ values (the first one is audited; empty: "
                                                          "the baseline only)")
    p.add_argument("--epochs", type=int, default=10)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--form", default="full", choices=["full", "patch"])
    p.add_argument("--amplitude", type=int, default=16)
    p.add_argument("--target", default="locked")
    p.add_argument("--decoupling-target", default=MtkConfig().decoupling_target, choices=DECOUPLING_TARGETS)
    p.add_argument("--lr", type=float, default=None, help="default: MtkConfig's recipe")
    p.add_argument("--no-baseline", action="store_true", help="tradeoff part without the ordinary model")
    p.add_argument("--seeds", default="0", help="seeds of the baseline and of MTK per λ (training, and the "
                                                "expansion's key subsets and decoys); the table adds their mean; "
                                                "the other parts use the first")
    p.add_argument("--gate-attack-steps", type=int, default=None, help="default: MtkConfig's (0: no hardening)")
    p.add_argument("--keyed-copies", type=int, default=None, help="default: MtkConfig's")
    p.add_argument("--decoy-copies", type=int, default=None, help="default: MtkConfig's")
    p.add_argument("--decoupling-rows", type=int, default=None, help="default: MtkConfig's (0: the batch's means)")
    p.add_argument("--audit-sizes", default="100,1000")
    p.add_argument("--audit-steps", type=int, default=100)
    p.add_argument("--audit-restarts", type=int, default=4)
    p.add_argument("--merge", default="", help="comma-separated result JSONs of earlier tradeoff runs (one view): "
                                              "their models in one table with seed means and one PNG; trains nothing")
    add_holdout_args(p)
    return p


def merge(paths: list[str]) -> None:
    """The tradeoff table, seed means and PNG of the models of several earlier runs (runs split
    across invocations: seeds or λ values added later)."""
    import json

    from common import save_result

    runs = [json.load(open(p)) for p in paths]
    if len({r["args"]["dataset"] for r in runs}) != 1:
        raise SystemExit("--merge: the runs are of different views")
    first = runs[0]
    secured, unsecured = first["secured"], first["unsecured"]
    models = [dict(m, tag=f"{m['tag']}@{os.path.basename(p)}") for r, p in zip(runs, paths) for m in r["models"]]
    rows = [summary_row(m, secured, unsecured) for m in models]
    print_table(rows)
    print("mean over runs of the same model and λ:")
    means = seed_means([dict(r, model=r["model"].split("@")[0]) for r in rows])
    print_table(means)
    result = {"merged": paths, "secured": secured, "unsecured": unsecured, "table": rows, "table_seed_means": means}
    path = save_result(f"mtk_tradeoff-{first['args']['dataset']}-merged", result)
    result["png"] = path.replace(".json", ".png")
    plot(means, result["png"], f"{first['args']['dataset']}: {secured} secured, {len(paths)} runs merged")
    print(f"trade-off plot: {result['png']}\nwrote {save_result('', result, path=path)}")


def seeds_of(args) -> list[int]:
    return [int(v) for v in args.seeds.split(",")]


def mtk_config(args, *, decoupling: float, epochs: int | None = None, seed: int | None = None):
    from raypriv.mtk import MtkConfig

    seed = seeds_of(args)[0] if seed is None else seed
    knobs = ("gate_attack_steps", "keyed_copies", "decoy_copies", "decoupling_rows")
    extra = {name: getattr(args, name) for name in knobs if getattr(args, name) is not None}
    # MtkConfig's own recipe (lr 0.02, no crops), only the epochs, seed (and --lr) changed
    recipe = MtkConfig().train
    train = dataclasses.replace(recipe, epochs=epochs or args.epochs, seed=seed,
                                lr=recipe.lr if args.lr is None else args.lr)
    return MtkConfig(decoupling=decoupling, decoupling_target=args.decoupling_target, target=args.target,
                     seed=seed, **extra, train=train)


def train_and_evaluate(train, held_out, keys, *, args, decoupling: float, tag: str, leakage_of,
                       seed: int | None = None):
    from raypriv.mtk import train_mtk
    from raypriv.mtk.evaluate import evaluate_mtk
    from raypriv.runtime import ResourceSpec

    res = ResourceSpec(workers=args.workers)
    # the baseline gets as many gradient steps as MTK, whose epochs see every image expanded
    epochs = args.epochs * (mtk_config(args, decoupling=0.0).rows_per_image if keys is None else 1)
    config = mtk_config(args, decoupling=decoupling, epochs=epochs, seed=seed)
    t = time.time()
    model = train_mtk(train, keys, config=config, resources=res, overwrite=True,
                      output=f"bench-out/mtk-{args.dataset}-{tag}", progress=lambda line: None)
    wall = time.time() - t
    report = evaluate_mtk(model, held_out, keys, resources=res, leakage_of=leakage_of)
    return model, {"tag": tag, "decoupling": decoupling, "seed": config.seed, "train_wall_s": round(wall, 1),
                   "report": report}


def summary_row(entry: dict, secured: str, unsecured: list[str]) -> dict:
    acc, leak = entry["report"]["accuracy"], entry["report"]["leakage"][secured]
    keyed = acc.get(f"key:{secured}", acc["none"])
    row = {"model": entry["tag"], "λ": entry["decoupling"], "seed": entry.get("seed"),
           f"{secured} keyed": keyed[secured],
           f"{secured} un-keyed": acc["none"][secured],
           f"{secured} forged": acc.get(f"forged:{secured}", {}).get(secured)}
    row.update({f"{t} (un-keyed)": acc["none"][t] for t in unsecured})
    row["unsecured mean"] = sum(acc["none"][t] for t in unsecured) / len(unsecured)
    row.update({"leak: unsecured outputs": leak["from_unsecured_outputs"],
                "leak: unsecured answers": leak.get("from_unsecured_answers"),      # None in runs before 12-07
                "leak: all outputs": leak["from_all_outputs"], "irreducible": leak["irreducible"],
                "base rate": leak["base_rate"]})
    return row


def is_baseline(row: dict) -> bool:
    return row["model"].startswith("baseline")


def seed_means(rows: list[dict]) -> list[dict]:
    """One row per model kind (baseline, each λ): the mean over its seeds of every figure."""
    groups: dict = {}
    for r in rows:
        groups.setdefault((is_baseline(r), r["λ"]), []).append(r)
    out = []
    for rs in groups.values():
        mean = {k: (sum(r[k] for r in rs) / len(rs) if all(isinstance(r[k], float) for r in rs) and k != "λ"
                    else rs[0][k]) for k in rs[0]}
        mean.update(model=rs[0]["model"].rsplit("-s", 1)[0], seed=f"mean of {len(rs)}")
        out.append(mean)
    return out


def print_table(rows: list[dict]) -> None:
    cols = list(rows[0])
    print(" | ".join(cols))
    for r in rows:
        print(" | ".join(f"{v:.1%}" if isinstance(v, float) and k != "λ" else str(v) for k, v in r.items()))


def plot(rows: list[dict], path: str, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mtk = [r for r in rows if not is_baseline(r)]     # one point per λ (seed means when several)
    fig, ax = plt.subplots(figsize=(6, 4.2))
    ax.plot([r["unsecured mean"] * 100 for r in mtk], [r["leak: unsecured outputs"] * 100 for r in mtk], "o-",
            label="MTK, over λ")
    for r in mtk:
        ax.annotate(f"λ={r['λ']:g}", (r["unsecured mean"] * 100, r["leak: unsecured outputs"] * 100),
                    textcoords="offset points", xytext=(4, 4), fontsize=8)
    base = [r for r in rows if is_baseline(r)]
    if base:
        ax.plot(base[0]["unsecured mean"] * 100, base[0]["leak: unsecured outputs"] * 100, "s", label="no MTK")
    ax.axhline(rows[0]["irreducible"] * 100, ls="--", c="gray", label="irreducible")
    ax.axhline(rows[0]["base rate"] * 100, ls=":", c="gray", label="base rate")
    ax.set_xlabel("mean un-keyed accuracy of the unsecured tasks (%)")
    ax.set_ylabel("leakage: probe accuracy on the secured label (%)")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def throughput(train, keys, args) -> list[dict]:
    from raypriv.mtk import train_mtk
    from raypriv.runtime import ResourceSpec

    out = []
    for workers in (1, 2):
        t = time.time()
        # without hardening: the same work in every epoch, so epochs 2..3 time the training itself
        config = dataclasses.replace(mtk_config(args, decoupling=0.0, epochs=3), gate_attack_steps=0)
        model = train_mtk(train, keys, config=config, overwrite=True,
                          resources=ResourceSpec(workers=workers), output=f"bench-out/mtk-speed-{workers}",
                          progress=lambda line: None)
        hist = model.manifest["history"]
        rows = model.manifest["training_rows"]
        steady = [h["seconds"] for h in hist[1:] if "seconds" in h]
        per_epoch = sum(steady) / len(steady) if steady else None
        out.append({"workers": workers, "rows_per_epoch": rows, "wall_s": round(time.time() - t, 1),
                    "epoch_s": per_epoch, "images_per_s": rows / per_epoch if per_epoch else None})
        print(out[-1], flush=True)
    if all(r["images_per_s"] for r in out):
        print(f"2 workers / 1 worker: {out[1]['images_per_s'] / out[0]['images_per_s']:.2f}x", flush=True)
    return out


def bench_keys(tasks: tuple[str, ...], train, args):
    """Fresh keys of ``--form`` / ``--amplitude`` for ``tasks`` (held in memory only)."""
    from raypriv.mtk import KeySet, KeySpec

    return KeySet.generate(tasks, image_shape=train.info.image_shape,
                           spec=KeySpec(form=args.form, amplitude=args.amplitude))


def other_task_keys(train, held_out, tasks: tuple[str, str], args) -> dict:
    """Two secured tasks, λ = 0: each one's accuracy with no key, its own key, the other task's key,
    a forged key and both keys (chance is 1 / classes; an answer "locked" is scored 1 / classes)."""
    keys = bench_keys(tasks, train, args)
    _, entry = train_and_evaluate(train, held_out, keys, args=args, decoupling=0.0, tag="mtk-two-secured",
                                  leakage_of=None)
    acc = entry["report"]["accuracy"]
    rows = []
    for task, other in (tasks, tasks[::-1]):
        rows.append({"task": task, "own key": acc[f"key:{task}"][task], "other task's key": acc[f"key:{other}"][task],
                     "no key": acc["none"][task], "forged": acc[f"forged:{task}"][task], "both keys": acc["all"][task]})
    print(f"two secured tasks ({entry['train_wall_s']} s):")
    print_table(rows)
    return {"tasks": list(tasks), "rows": rows, **entry}


def main(args) -> None:
    from common import evaluation_split, save_result

    from raypriv.runtime import init_ray

    init_ray(num_cpus=max(4, 2 * args.workers))
    parts = set(args.parts.split(","))
    train, held_out = evaluation_split(args.dataset, args)
    secured = train.info.label_name
    unsecured = [c.name for c in train.info.label_columns]
    keys = bench_keys((secured,), train, args)
    result = {"args": vars(args), "secured": secured, "unsecured": unsecured, "models": []}
    path = save_result(f"mtk_tradeoff-{args.dataset}", result)
    lambdas = [float(v) for v in args.lambdas.split(",") if v.strip()]
    if not lambdas and parts - {"tradeoff"}:
        raise SystemExit("--lambdas is empty: only the tradeoff part's baseline can run")
    first = None
    if "tradeoff" in parts or "audit" in parts:
        for seed in seeds_of(args) if "tradeoff" in parts and not args.no_baseline else ():
            _, entry = train_and_evaluate(train, held_out, None, args=args, decoupling=0.0, tag=f"baseline-s{seed}",
                                          leakage_of=(secured,), seed=seed)
            result["models"].append(entry)
            print(f"baseline seed {seed}: {entry['train_wall_s']} s", flush=True)
            save_result("", result, path=path)
        for lam in lambdas if "tradeoff" in parts else lambdas[:1]:
            for seed in seeds_of(args) if "tradeoff" in parts else seeds_of(args)[:1]:
                model, entry = train_and_evaluate(train, held_out, keys, args=args, decoupling=lam,
                                                  tag=f"mtk-λ{lam:g}-s{seed}", leakage_of=None, seed=seed)
                first = first or model
                result["models"].append(entry)
                print(f"MTK λ={lam:g} seed {seed}: {entry['train_wall_s']} s", flush=True)
                save_result("", result, path=path)
        rows = [summary_row(e, secured, unsecured) for e in result["models"]]
        result["table"], result["table_seed_means"] = rows, seed_means(rows)
        print_table(rows)
        if len(seeds_of(args)) > 1:
            print("mean over seeds:")
            print_table(result["table_seed_means"])
            rows = result["table_seed_means"]
        if "tradeoff" in parts:
            png = path.replace(".json", ".png")
            plot(rows, png, f"{args.dataset}: {secured} secured ({args.form} keys, ±{args.amplitude}), "
                            f"{args.holdout} split")
            result["png"] = png
            print(f"trade-off plot: {png}")
    if "audit" in parts:
        from raypriv.mtk.audit import AuditConfig, audit_keys
        from raypriv.runtime import ResourceSpec

        cfg = AuditConfig(sizes=tuple(int(v) for v in args.audit_sizes.split(",")), steps=args.audit_steps,
                          restarts=args.audit_restarts)
        t = time.time()
        result["audit"] = audit_keys(first, held_out, keys.spec, config=cfg, attacker=train,
                                     resources=ResourceSpec(workers=args.workers))
        result["audit"]["wall_s"] = round(time.time() - t, 1)
        for n, v in result["audit"]["tasks"][secured].items():
            print(f"audit, {n} attacker images: unlocked {v['unlocked']:.1%} (best start {v['best']:.1%}, "
                  f"locked answers {v['locked']:.1%})", flush=True)
    if "othertask" in parts:
        result["othertask"] = other_task_keys(train, held_out, (secured, unsecured[0]), args)
    if "throughput" in parts:
        result["throughput"] = throughput(train, keys, args)
    print(f"wrote {save_result('', result, path=path)}")


if __name__ == "__main__":
    cli = get_args_parser().parse_args()
    if cli.merge:
        merge(cli.merge.split(","))
    else:
        main(cli)
