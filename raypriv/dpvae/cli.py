"""``raypriv dpvae train|sample|evaluate``: argument parsing only; the work is done by
:mod:`raypriv.dpvae`.

    raypriv dpvae train mnist5k -o out/dp2 --epsilon 10 --dataset-size 4000     # DP²-VAE, δ = 1e-5
    raypriv dpvae train mnist5k -o out/base --epsilon 10 --dataset-size 4000 --method dpsgd
    raypriv dpvae sample --model out/dp2 -o out/dp2-synth --images-per-class 400
    raypriv dpvae evaluate --synthetic out/dp2-synth --real mnist5k -o out/dp2-eval
"""
from __future__ import annotations

from typing import Callable

# CLI flag → DPVAEConfig field (only flags the user gives override the defaults).
TRAIN_FLAGS = ("method", "model", "latent_dim", "width", "beta", "epsilon", "delta", "accountant", "batch_size",
               "max_grad_norm", "lr", "pretrain_epochs", "epochs", "budget_split", "pretrain_on", "grad_sample_mode",
               "checkpoint_every", "dataset_size", "seed")


def _default(cls, name: str):
    """The default of dataclass field ``name`` (help text names it, so it cannot drift)."""
    import dataclasses

    return next(f.default for f in dataclasses.fields(cls) if f.name == name)


def add_dpvae_parser(sub, *, add_cluster_args: Callable) -> None:
    from raypriv.dpvae.config import ACCOUNTANTS, GRAD_SAMPLE_MODES, METHODS, PRETRAIN_ON, DPVAEConfig

    dp = sub.add_parser("dpvae", help="differentially private (pre-trained) VAEs: train, sample, evaluate")
    s = dp.add_subparsers(dest="dpvae_command", required=True)

    t = s.add_parser("train", help="train a DP²-VAE (or the DP-SGD / non-private baseline) with Ray Train")
    t.add_argument("source", help="corpus spec of the private training data")
    t.add_argument("--output", "-o", required=True)
    t.add_argument("--method", choices=METHODS, help=f"dp2, dpsgd (end-to-end baseline) or none; default {_default(DPVAEConfig, 'method')!r}")
    t.add_argument("--model", help=f"VAE architecture: mlp_cvae, cvae (conditional) or vae; default "
                                   f"{_default(DPVAEConfig, 'model')!r}")
    t.add_argument("--latent-dim", type=int)
    t.add_argument("--width", type=int)
    t.add_argument("--beta", type=float, help="weight of the KL term")
    t.add_argument("--epsilon", type=float, help=f"the whole run's ε (default {_default(DPVAEConfig, 'epsilon'):g})")
    t.add_argument("--delta", type=float, help=f"δ (default {_default(DPVAEConfig, 'delta'):g}; must be < 1/N)")
    t.add_argument("--dataset-size", type=int,
                   help="the training set's size as you declare it publicly (required for private runs; rounded or "
                        "an upper bound): q and the steps are planned from it, never from the exact count")
    t.add_argument("--accountant", choices=ACCOUNTANTS)
    t.add_argument("--batch-size", type=int, help="expected global batch (Poisson sampling)")
    t.add_argument("--max-grad-norm", type=float, help="per-example clipping norm C")
    t.add_argument("--lr", type=float)
    t.add_argument("--pretrain-epochs", type=int)
    t.add_argument("--epochs", type=int, help="epochs of the main stage (of the whole run for baselines: "
                                              "pretrain + main)")
    t.add_argument("--budget-split", type=float, help="share of ε stage 1 would spend alone")
    t.add_argument("--pretrain-on", choices=PRETRAIN_ON)
    t.add_argument("--public", help="corpus spec of the public pre-training data (with --pretrain-on public)")
    t.add_argument("--freeze", help="comma list of modules frozen in stage 2 (default: encoder; '' for none)")
    t.add_argument("--grad-sample-mode", choices=GRAD_SAMPLE_MODES)
    t.add_argument("--checkpoint-every", type=int)
    t.add_argument("--seed", type=int)
    t.add_argument("--resume", action="store_true", help="continue the run in --output (its ledger keeps counting)")
    t.add_argument("--max-failures", type=int, default=0, help="worker-group restarts Ray Train may make")
    add_cluster_args(t)

    sm = s.add_parser("sample", help="sample a labeled synthetic corpus from a trained conditional VAE")
    sm.add_argument("--model", required=True, help="directory written by `raypriv dpvae train` (or its release/)")
    sm.add_argument("--output", "-o", required=True)
    sm.add_argument("--images-per-class", type=int, default=400)
    sm.add_argument("--seed", type=int, default=0)
    sm.add_argument("--temperature", type=float, default=None,
                    help="scale of the latent draws z ~ N(0, t²I); below 1: more typical images (default 0.5)")
    sm.add_argument("--overwrite", action="store_true")
    add_cluster_args(sm)

    e = s.add_parser("evaluate", help="downstream accuracy and classifier-feature Fréchet distance of a sample")
    e.add_argument("--synthetic", required=True, help="directory written by `raypriv dpvae sample`")
    e.add_argument("--real", required=True, help="corpus spec of the real data (train and test splits)")
    e.add_argument("--output", "-o", required=True)
    e.add_argument("--victim", default=None, help="classifier model (default plain_cnn: no BatchNorm, see the docs)")
    e.add_argument("--epochs", type=int, default=None)
    add_cluster_args(e)


def config_from_args(args):
    from raypriv.dpvae.config import DPVAEConfig

    kw = {k: getattr(args, k) for k in TRAIN_FLAGS if getattr(args, k) is not None}
    if args.freeze is not None:
        kw["freeze"] = tuple(f for f in args.freeze.split(",") if f)
    return DPVAEConfig(**kw)


def cmd_dpvae(args, *, connect: Callable, say: Callable[[str], None]) -> int:
    from raypriv import dpvae
    from raypriv.data import load_corpus
    from raypriv.dpvae.evaluate import default_victim

    if args.dpvae_command == "train":
        config = config_from_args(args)  # validate before starting Ray
        resources = connect(args)
        public = load_corpus(args.public) if args.public else None
        dpvae.train_dpvae(load_corpus(args.source), config=config, output=args.output, resources=resources,
                          public=public, resume=args.resume, max_failures=args.max_failures, progress=say)
    elif args.dpvae_command == "sample":
        resources = connect(args)
        temp = {} if args.temperature is None else {"temperature": args.temperature}
        dpvae.sample_dpvae(args.model, output=args.output, images_per_class=args.images_per_class, seed=args.seed,
                           resources=resources, overwrite=args.overwrite, progress=say, **temp)
    else:
        victim = default_victim(**{k: v for k, v in (("model", args.victim), ("epochs", args.epochs))
                                   if v is not None})
        resources = connect(args)
        report = dpvae.evaluate_dpvae(
            synthetic=load_corpus(f"parquet:{args.synthetic}"), real_train=load_corpus(args.real),
            real_test=load_corpus(args.real, split="test"), victim=victim, resources=resources, out_dir=args.output,
            progress=say)
        say(f"downstream accuracy {report['downstream_test_acc']:.2%} (real data {report['real_data_test_acc']:.2%}); "
            f"Fréchet distance {report['frechet_distance']:.3f} (classifier features, not Inception-FID)")
        say(f"this report is not covered by ε: {report['privacy']['note']}")
    return 0
