"""``raypriv synth teacher|stats|generate|evaluate``: argument parsing only; the work is
done by the library functions of :mod:`raypriv.synth`.

    raypriv synth teacher mnist5k -o out/teacher --epochs 10
    raypriv synth stats mnist5k --teacher out/teacher -o out/stats
    raypriv synth generate --teacher out/teacher --stats out/stats -o out/synth --images-per-class 100
    raypriv synth evaluate --synthetic out/synth --real mnist5k -o out/synth-eval --images-per-class 10,100
"""
from __future__ import annotations

from typing import Callable

# CLI flag → SynthConfig field, for the generation settings a user may override.
GENERATE_FLAGS = ("images_per_class", "batch_size", "iterations", "statistics", "lr", "bn", "first_bn_weight", "ce",
                  "tv_l1", "tv_l2", "l2", "jitter", "seed")


def add_synth_parser(sub, *, add_cluster_args: Callable) -> None:
    synth = sub.add_parser("synth", help="synthetic data from class-wise BatchNorm statistics")
    s = synth.add_subparsers(dest="synth_command", required=True)

    t = s.add_parser("teacher", help="train a BatchNorm teacher on the private corpus (Ray Train), or import one")
    t.add_argument("source", help="corpus spec of the private training data (its test split is the test set)")
    t.add_argument("--output", "-o", required=True)
    t.add_argument("--model", default="small_cnn", help="registered model with BatchNorm (small_cnn, resnet18)")
    t.add_argument("--epochs", type=int, default=15)
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--test-split", default="test")
    t.add_argument("--import-checkpoint", metavar="STATE_DICT",
                   help="wrap this torch state_dict of --model (for SOURCE's image shape and classes) instead of training")
    t.add_argument("--overwrite", action="store_true")
    add_cluster_args(t)

    st = s.add_parser("stats", help="record class-wise BN statistics of the teacher over the private corpus")
    st.add_argument("source")
    st.add_argument("--teacher", required=True)
    st.add_argument("--output", "-o", required=True)
    st.add_argument("--split", default="train")
    add_cluster_args(st)

    g = s.add_parser("generate", help="optimize noise into a labeled synthetic corpus")
    g.add_argument("--teacher", required=True)
    g.add_argument("--stats", required=True)
    g.add_argument("--output", "-o", required=True)
    g.add_argument("--images-per-class", type=int)
    g.add_argument("--batch-size", type=int, help="images optimized together (one task)")
    g.add_argument("--iterations", type=int)
    g.add_argument("--statistics", choices=["classwise", "global"])
    g.add_argument("--lr", type=float)
    g.add_argument("--bn", type=float, help="weight of the BN-statistics loss")
    g.add_argument("--first-bn-weight", type=float)
    g.add_argument("--ce", type=float, help="weight of the cross-entropy toward the target class")
    g.add_argument("--tv-l1", type=float)
    g.add_argument("--tv-l2", type=float)
    g.add_argument("--l2", type=float)
    g.add_argument("--jitter", type=int)
    g.add_argument("--seed", type=int)
    g.add_argument("--overwrite", action="store_true", help="replace a finished output and discard staged batches")
    add_cluster_args(g)

    e = s.add_parser("evaluate", help="utility, nearest-real similarity and membership inference of a synthetic set")
    e.add_argument("--synthetic", required=True, help="directory written by `raypriv synth generate`")
    e.add_argument("--real", required=True, help="corpus spec of the real data (train and test splits)")
    e.add_argument("--output", "-o", required=True)
    e.add_argument("--images-per-class", default="10,50", help="comma list of synthetic subset sizes")
    e.add_argument("--victim", default="small_cnn")
    e.add_argument("--epochs", type=int, default=None)
    e.add_argument("--no-mia", action="store_true", help="skip membership inference")
    e.add_argument("--labels", choices=["hard", "teacher"], default="hard",
                   help="train the synthetic-set models on the class labels, or distil the teacher's soft labels")
    e.add_argument("--teacher", help="teacher directory (needed with --labels teacher)")
    add_cluster_args(e)


def synth_config_from_args(args):
    from raypriv.synth import SynthConfig

    return SynthConfig(**{k: getattr(args, k) for k in GENERATE_FLAGS if getattr(args, k) is not None})


def cmd_synth(args, *, connect: Callable, say: Callable[[str], None]) -> int:
    from raypriv import synth
    from raypriv.data import load_corpus
    from raypriv.classifier import VictimConfig

    if args.synth_command == "teacher":
        resources = connect(args)
        train = load_corpus(args.source)
        if args.import_checkpoint:
            h, _, c = train.info.image_shape
            t = synth.import_teacher(args.import_checkpoint, model=args.model, in_channels=c, image_size=h,
                                     num_classes=train.info.num_classes, output=args.output, overwrite=args.overwrite)
            say(f"imported {args.import_checkpoint} as teacher {t.path}")
            return 0
        config = VictimConfig(model=args.model, epochs=args.epochs, lr=args.lr, seed=args.seed)
        synth.train_teacher(train, load_corpus(args.source, split=args.test_split),
                            output=args.output, config=config, resources=resources, overwrite=args.overwrite,
                            progress=say)
    elif args.synth_command == "stats":
        resources = connect(args)
        stats = synth.compute_class_stats(load_corpus(args.source, split=args.split), synth.load_teacher(args.teacher),
                                          resources=resources, progress=say)
        say(f"wrote statistics to {stats.save(args.output)}")
    elif args.synth_command == "generate":
        config = synth_config_from_args(args)  # validate before starting Ray
        teacher, stats = synth.load_teacher(args.teacher), synth.ClassBNStats.load(args.stats)
        resources = connect(args)
        synth.generate(teacher, stats, output=args.output, config=config, resources=resources,
                       overwrite=args.overwrite, progress=say)
    else:
        victim = VictimConfig(model=args.victim, **({"epochs": args.epochs} if args.epochs else {}))
        config = synth.SynthEvalConfig(victim=victim, mia=not args.no_mia, labels=args.labels,
                                       images_per_class=tuple(int(k) for k in args.images_per_class.split(",") if k))
        teacher = synth.load_teacher(args.teacher) if args.teacher else None
        resources = connect(args)
        report = synth.evaluate_synthetic(
            synthetic=load_corpus(f"parquet:{args.synthetic}"), real_train=load_corpus(args.real),
            real_test=load_corpus(args.real, split="test"), config=config, resources=resources, out_dir=args.output,
            progress=say, teacher=teacher)
        say(synth.format_table(report))
        say(f"report: {args.output}/report.json, images: {args.output}/nearest.png")
    return 0
