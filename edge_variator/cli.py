"""`edge-variator`: the command line. It parses arguments and calls the library, nothing more."""

from __future__ import annotations

import argparse
import contextlib
import json
import sys
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

from edge_variator import chatter, defaults, evaluation, train
from edge_variator import data as datasets
from edge_variator import profile as profiling
from edge_variator.demo import run_demo
from edge_variator.encoder import ModelLoadError
from edge_variator.exits import is_multi_exit
from edge_variator.export.bundle import describe_bundle, load_model, needs_calibration, write_bundle
from edge_variator.ops import OpsProfileError, default_ops_methods, format_ops
from edge_variator.runtime.bundle import BundleError
from edge_variator.runtime.policy import DeviceState, thermal_from_android
from edge_variator.runtime.runner import BatchRun, format_run, format_summary
from edge_variator.task import resolve_base

LOOP_FLAGS = ("epochs", "batch_size", "lr", "max_length", "seed", "max_train")


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Every flag with a default shows it; flags without one (None, off) say nothing about it."""

    @staticmethod
    def _has_default(action: argparse.Action) -> bool:
        return not any(action.default is nothing for nothing in (None, False, argparse.SUPPRESS))

    def _get_help_string(self, action: argparse.Action) -> str:
        if not self._has_default(action) or "default" in (action.help or ""):
            return action.help or ""
        return super()._get_help_string(action)

    def _format_action(self, action: argparse.Action) -> str:
        if not action.help and self._has_default(action) and action.option_strings:
            action.help = "(default: %(default)s)"  # argparse shows no default for a flag without help
        return super()._format_action(action)


def width(value: str) -> float:
    """A slender size: a count (3), or a fraction of the backbone's (0.25 or 1/4)."""
    try:
        number = Fraction(value)
    except (ValueError, ZeroDivisionError):
        raise argparse.ArgumentTypeError(f"a count (3) or a fraction of the backbone's (0.25, 1/4), "
                                         f"not {value!r}") from None
    return int(number) if number.denominator == 1 else float(number)


def pick(args: argparse.Namespace, names) -> dict:
    return {name: getattr(args, name) for name in names}


def load_task_data(args: argparse.Namespace) -> datasets.TaskData:
    columns = {k: getattr(args, k) for k in ("text_column", "label_column", "text_pair_column")
               if getattr(args, k, None) is not None}
    return datasets.load(args.task, seed=args.seed, **columns)


def cmd_data(args: argparse.Namespace) -> None:
    if args.action == "list":
        print(datasets.describe_benchmarks())
    elif args.action == "fetch":
        for name in args.names or list(datasets.BENCHMARKS):
            print("\n".join(f"{name}: {path} (sha256 verified)" for path in datasets.fetch(name)))
    else:
        for name in args.names or [datasets.DEFAULT_TASK]:
            args.task = name
            print(datasets.describe(load_task_data(args), args.examples))


def cmd_finetune(args: argparse.Namespace) -> None:
    config = train.FinetuneConfig(method=args.method, strict=args.strict, pooling=args.pooling,
                                  **pick(args, LOOP_FLAGS))
    metrics = train.finetune(load_task_data(args), args.out, config, model_dir=args.model)
    if metrics:
        print(json.dumps({k: metrics[k] for k in ("dev", "test", "train_seconds")}, indent=2))
        print(f"saved {args.out}")


def cmd_eval(args: argparse.Namespace) -> None:
    task = load_task_data(args)
    result = evaluation.evaluate_checkpoint(Path(args.checkpoint), task, args.split)
    print(evaluation.format_evaluation(task.name, args.split, result))


def cmd_plugins_train(args: argparse.Namespace) -> None:
    pretraining = args.task == "general"
    task = datasets.general_corpus(args.seed) if pretraining else load_task_data(args)
    for ratio in args.ratios:
        init_from = str(Path(args.init_from) / f"k{ratio}") if args.init_from else None
        flags = pick(args, (*LOOP_FLAGS, "hidden_loss", "mse_weight", "kl_weight", "temperature",
                            "bottleneck", "layers"))
        config = train.PluginTrainConfig(**flags, ce_weight=0.0 if pretraining else args.ce_weight,
                                         init_from=init_from)
        out = Path(args.out) / f"k{ratio}"
        metrics = train.train_plugins(resolve_base(args.checkpoint), task, out, ratio, config)
        if metrics:  # None on the other torchrun ranks: rank 0 reports
            print(train.plugin_summary(ratio, metrics, out))


def cmd_plugins_eval(args: argparse.Namespace) -> None:
    task = load_task_data(args)
    results = evaluation.evaluate_ratios(Path(args.checkpoint), Path(args.plugins), task, args.split,
                                         args.ratios, args.max_length)
    print(evaluation.format_ratios(task.name, args.split, results))


def cmd_slender_train(args: argparse.Namespace) -> None:
    loop = pick(args, (*LOOP_FLAGS, "temperature", "soft_weight", "exit_lr"))
    source, task = resolve_base(args.checkpoint), load_task_data(args)
    if is_multi_exit(source):  # an assistant: slenderize it
        widths = pick(args, ("heads", "neurons", "embedding_rank", "prune_steps", "repr_epochs"))
        metrics = train.train_slender(source, task, args.out, train.SlenderConfig(**loop, **widths))
    else:  # a fine-tuned teacher: train the full-width multi-exit assistant
        config = train.ExitTrainConfig(**loop, pooling=args.pooling, last_exit=args.last_exit,
                                       warm_exits_epochs=args.warm_exits_epochs,
                                       early_exit_gradient=args.early_exit_gradient)
        metrics = train.train_multi_exit(source, task, args.out, config)
    print(train.exit_summary(metrics, args.out))


def cmd_slender_calibrate(args: argparse.Namespace) -> None:
    task = load_task_data(args)
    result = evaluation.calibrate_checkpoint(Path(args.checkpoint), task, [d / 100 for d in args.drops])
    print(evaluation.format_calibration(task, Path(args.checkpoint), result))


def cmd_slender_eval(args: argparse.Namespace) -> None:
    print(evaluation.describe_exits(Path(args.checkpoint), load_task_data(args), args.split, args.threshold))


def cmd_export(args: argparse.Namespace) -> None:
    checkpoint, plugins = defaults.resolve_checkpoint(args.checkpoint, args.plugins)
    formats = [f.strip() for f in args.format.split(",") if f.strip()]
    model, tokenizer, source = load_model(checkpoint, plugins, args.ratios, args.max_length)
    task = load_task_data(args)
    if task.labels == model.labels:
        quality = evaluation.export_quality(model, tokenizer, source["thresholds"], source["criterion"], task)
        print(evaluation.format_quality(task.name, quality))
    else:
        print(f"dev accuracy not checked: the model predicts {model.labels}, {task.name} has {task.labels} "
              "(name the task it was trained on with --task)")
    calibration = task.train[:args.calibration_texts] if needs_calibration(args.quantize) else []
    manifest = write_bundle(model, tokenizer, source, args.out, formats, args.quantize,
                            args.coreml_compress, [e.text for e in calibration], workers=args.workers)
    print(describe_bundle(args.out, manifest))


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, not {value}")
    return value


def run_texts(args: argparse.Namespace) -> Iterator[str]:
    """The texts of `run`: its arguments, else one per line of --file (or of stdin)."""
    if args.texts:
        yield from args.texts
        return
    stdin = args.file in (None, "-")
    with contextlib.nullcontext(sys.stdin) if stdin else open(args.file, encoding="utf-8") as lines:
        for line in lines:
            yield line.rstrip("\r\n")


def cmd_run(args: argparse.Namespace) -> None:
    thermal = thermal_from_android(args.android_thermal) if args.android_thermal is not None else args.thermal
    state = DeviceState(battery=args.battery, charging=args.charging, low_power=args.low_power,
                        thermal=thermal, budget_ms=args.budget_ms)
    batch = BatchRun(args.bundle, state, args.policy)
    for index, result, ms in batch.run(run_texts(args)):
        if args.format == "jsonl":
            print(json.dumps(batch.record(index, result, ms, args.steps)), flush=True)
        else:
            print(result if isinstance(result, str) else
                  format_run(state, result, batch.runner.labels, args.steps), flush=True)
    summary = batch.summary()
    print(json.dumps(summary) if args.format == "jsonl" else format_summary(summary["summary"]))
    if batch.errors:
        sys.exit(f"edge-variator run: {len(batch.errors)} of {summary['summary']['texts']} texts refused "
                 f"({batch.errors[0]}{', ...' if len(batch.errors) > 1 else ''})")


def cmd_profile(args: argparse.Namespace) -> None:
    if args.ops is not None:
        methods = args.ops or default_ops_methods(args.bundle)
        print(format_ops(args.bundle, methods, args.lengths, args.ops_seconds))
        return
    profiling.profile_bundle(args.bundle, args.lengths, args.repeats, args.warmup, args.import_profile,
                             args.out, not args.no_store, args.plots, args.pareto_task, args.pareto_split,
                             args.pareto_limit)


def cmd_calibrate(args: argparse.Namespace) -> None:
    budgets = dict(args.budget)
    table, length, path = profiling.calibrate_bundle(args.bundle, args.profile, budgets, args.length,
                                                     args.runtime)
    print(profiling.format_policy(args.bundle, table, length, budgets))
    print(f"calibrated policy: {path} (edge-variator run --policy {path})")


def budget(item: str) -> tuple[str, float]:
    """RULE=MS, e.g. serious=20."""
    name, _, value = item.partition("=")
    try:
        return name, float(value)
    except ValueError:
        raise argparse.ArgumentTypeError(f"--budget takes RULE=MS (e.g. serious=20), not {item!r}") from None


def cmd_demo(args: argparse.Namespace) -> None:
    run_demo(args.rebuild, args.lengths, args.repeats, args.limit, args.plots)


def add_column_flags(parser: argparse.ArgumentParser) -> None:
    for flag, default in (("--text-column", "text"), ("--text-pair-column", "none"),
                          ("--label-column", "label")):
        parser.add_argument(flag, help=f"the column of a CSV/JSONL file to read (default: {default})")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="edge-variator", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    def command(parent, name: str, run, help: str, task: bool = False, train: int | None = None,
                split: bool = False) -> argparse.ArgumentParser:
        """A subcommand; `task` adds the data flags, `train` the training flags (with that many epochs)."""
        sub = parent.add_parser(name, help=help, formatter_class=HelpFormatter)
        sub.set_defaults(run=run)
        sub.add_argument("--verbose", action="store_true",
                         help="show what other libraries log (torchao, coremltools, ExecuTorch's cpuinfo)")
        if task:
            sub.add_argument("--task", default=datasets.DEFAULT_TASK,
                             help="a benchmark name or a CSV/JSONL file")
            add_column_flags(sub)
            sub.add_argument("--seed", type=int, default=0, help="seed of the data split (and of training)")
        if train is not None:
            sub.add_argument("--out", required=True, help="folder to write")
            sub.add_argument("--epochs", type=int, default=train)
            sub.add_argument("--batch-size", type=int, default=32)
            sub.add_argument("--lr", type=float, help="learning rate (default: the stage's own, e.g. full "
                             "fine-tuning 5e-5, LoRA 1e-3; metrics.json records the one used)")
            sub.add_argument("--max-length", type=int, default=128, help="tokens per text, the rest cut")
            sub.add_argument("--max-train", type=int, help="train on a seeded subset of this size")
        if split:
            sub.add_argument("--split", choices=list(datasets.SPLITS), default="dev")
        return sub

    data = command(commands, "data", cmd_data, "list, fetch or inspect the benchmarks")
    data.add_argument("action", choices=["list", "fetch", "inspect"])
    data.add_argument("names", nargs="*", help="benchmark names or CSV/JSONL paths (inspect)")
    data.add_argument("--examples", type=int, default=3, help="examples to print (inspect)")
    data.add_argument("--seed", type=int, default=0, help="the split's seed (inspect)")
    add_column_flags(data)

    finetune = command(commands, "finetune", cmd_finetune, "fine-tune a classifier (the teacher)", True, 3)
    finetune.add_argument("--method", choices=["full", "lora"], default="full")
    finetune.add_argument("--pooling", choices=["mean", "cls"], default=train.FinetuneConfig.pooling,
                          help="what BERT's pooler reads before the classifier: the mean of the last "
                          "layer's tokens, or CLS")
    finetune.add_argument("--model", help="Hugging Face BERT folder (default: all-MiniLM-L6-v2)")
    finetune.add_argument("--strict", action="store_true",
                          help="stop with an error when an epoch learns nothing (dev no better than the "
                          "majority class); by default it is a warning")

    command(commands, "eval", cmd_eval, "accuracy, macro-F1, parameters and FLOPs", True,
            split=True).add_argument("checkpoint")

    plugins = commands.add_parser("plugins", help="Variator compression plugins: train or eval")
    plugins = plugins.add_subparsers(dest="plugins_command", required=True)
    plugin_train = command(plugins, "train", cmd_plugins_train,
                           "train plugins for one or several ratios on a frozen checkpoint", True, 2)
    plugin_train.add_argument("checkpoint", help="task checkpoint; a backbone folder (or 'default') "
                              "with --task general pre-trains on the benchmarks' unlabelled train text")
    plugin_train.add_argument("--ratios", type=int, nargs="+", default=[2, 4, 8])
    plugin_train.add_argument("--hidden-loss", choices=["all", "last"], default="all")
    plugin_train.add_argument("--mse-weight", type=float, default=1.0)
    plugin_train.add_argument("--ce-weight", type=float, default=1.0)
    plugin_train.add_argument("--kl-weight", type=float, default=0.0,
                              help="KL to the uncompressed model's predictions in the end-to-end epochs")
    plugin_train.add_argument("--temperature", type=float, default=2.0, help="of the KL term")
    plugin_train.add_argument("--bottleneck", type=int, default=64)
    plugin_train.add_argument("--layers", type=int, nargs="+", help="layers to plug (default all)")
    plugin_train.add_argument("--init-from", help="pre-trained plugins folder (with k{ratio}/)")
    plugin_eval = command(plugins, "eval", cmd_plugins_eval, "accuracy and FLOPs at every ratio", True,
                          split=True)
    plugin_eval.add_argument("checkpoint", help="task or multi-exit checkpoint (multi-exit: its last exit)")
    plugin_eval.add_argument("plugins", help="folder with k{ratio}/ plugin sets")
    plugin_eval.add_argument("--ratios", type=int, nargs="+", help="(default: every plugin set found)")
    plugin_eval.add_argument("--max-length", type=int)

    slender = commands.add_parser("slender", help="COST-EFF multi-exit and slender models")
    slender = slender.add_subparsers(dest="slender_command", required=True)
    slender_train = command(slender, "train", cmd_slender_train, "a teacher checkpoint -> the full-width "
                            "multi-exit assistant; an assistant -> a width-pruned (slender) multi-exit model",
                            True, 2)
    slender_train.add_argument("checkpoint", help="fine-tuned task checkpoint, or a multi-exit assistant")
    # the quarter model on any backbone
    for flag, default, help in (("--heads", "1/4", "attention heads kept per layer (all-MiniLM-L6-v2: 3)"),
                                ("--neurons", "1/4", "FFN neurons kept per layer (all-MiniLM-L6-v2: 384)"),
                                ("--embedding-rank", "1/6", "rank of the factorized word embedding, of the "
                                 "hidden size (all-MiniLM-L6-v2: 64)")):
        slender_train.add_argument(flag, type=width, default=width(default), metavar="N|F",
                                   help=f"{help}: a count, or a fraction of the backbone's "
                                   f"(default: {default})")
    slender_train.add_argument("--prune-steps", type=int, default=3,
                               help="prune a little at a time, scoring what is left in between")
    slender_train.add_argument("--repr-epochs", type=int, default=1,
                               help="epochs of hidden-state distillation before the --epochs of prediction "
                               "distillation")
    slender_train.add_argument("--temperature", type=float, default=2.0)
    slender_train.add_argument("--soft-weight", type=float, default=0.5)
    slender_train.add_argument("--exit-lr", type=float, default=1e-3, help="learning rate of the exit heads")
    slender_train.add_argument("--pooling", choices=["mean", "cls"], default="mean",
                               help="what each exit reads (assistant only; slender models keep it)")
    slender_train.add_argument("--last-exit", choices=train.LAST_EXITS, default="fresh",
                               help="the assistant's last exit: fresh like the others, or the teacher's own "
                               "head (pooler and classifier), which starts at the teacher's accuracy")
    slender_train.add_argument("--warm-exits-epochs", type=int, default=0,
                               help="the assistant's fresh exits first train alone this many epochs, on the "
                               "frozen teacher's cached states, before the joint stage")
    slender_train.add_argument("--early-exit-gradient", type=float, default=1.0,
                               help="the share (0 to 1) of the assistant's early exits' gradients that "
                               "reaches the encoder; below 1 they pull less on what the last exit reads")
    slender_eval = command(slender, "eval", cmd_slender_eval, "per-exit accuracy and early exit", True,
                           split=True)
    slender_eval.add_argument("checkpoint")
    slender_eval.add_argument("--threshold", type=float, help="(default: the calibrated ones)")
    slender_calibrate = command(
        slender, "calibrate", cmd_slender_calibrate, "entropy thresholds on dev, into exits.json: per drop, "
        "the one that changes at most that share of the last exit's answers (90% confidence)", True)
    slender_calibrate.add_argument("checkpoint")
    slender_calibrate.add_argument("--drops", type=float, nargs="+", default=[0.5, 1.0, 2.0],
                                   help="percent of texts whose answer may change against running "
                                   "every layer, which bounds the accuracy lost")

    export = command(commands, "export", cmd_export, "a checkpoint (+ plugins) -> bundle/ with model.pte, "
                     "model.mlpackage, tokenizer, manifest.json", True)
    export.add_argument("checkpoint", help="task or multi-exit checkpoint; 'default': the shipped mr adapter "
                        "and its plugins")
    export.add_argument("--plugins", help="folder with k{ratio}/ plugin sets trained on that checkpoint")
    export.add_argument("--ratios", type=int, nargs="+", help="plugin ratios to include (default: all found)")
    export.add_argument("--out", required=True, help="bundle folder (replaced atomically)")
    export.add_argument("--format", default="executorch", help="executorch[,coreml]")
    export.add_argument("--quantize", choices=["none", "int8-dynamic", "int8-static", "int8"], default="none",
                        help="model.pte: int8 weights with activations quantized per token at run time "
                             "(int8-dynamic, or int8) or at ranges calibrated on train text (int8-static)")
    export.add_argument("--coreml-compress", choices=["none", "int8"], default="none",
                        help="model.mlpackage: int8 weights")
    export.add_argument("--max-length", type=int,
                        help="longest input the bundle takes (default: the checkpoint's)")
    export.add_argument("--calibration-texts", type=int, default=200,
                        help="int8-static: train texts to calibrate on (no other choice reads any)")
    export.add_argument("--workers", type=positive_int, metavar="N",
                        help="processes to lower the ExecuTorch methods in (default: one per core)")

    run = command(commands, "run", cmd_run, "classify texts with a bundle under a device state: a JSON line "
                  "per text, then a summary line (the one-time load apart from the warm per-text times)")
    run.add_argument("bundle")
    run.add_argument("texts", nargs="*", help="texts to classify (default: one per line of --file or stdin)")
    run.add_argument("--file", help="a file of texts, one per line ('-': stdin)")
    run.add_argument("--format", choices=["jsonl", "text"], default="jsonl")
    run.add_argument("--battery", type=float, default=1.0, help="battery level from 0 to 1")
    for flag in ("--charging", "--low-power"):
        run.add_argument(flag, action="store_true")
    run.add_argument("--thermal", default="nominal", help="nominal, fair, serious or critical")
    run.add_argument("--android-thermal", type=int,
                     help="Android THERMAL_STATUS_* (0-6) instead of --thermal")
    run.add_argument("--policy",
                     help="a calibrated policy (edge-variator calibrate) instead of the manifest's table")
    run.add_argument("--budget-ms", type=float,
                     help="latency budget (checked against the latency in --policy, from a device profile)")
    run.add_argument("--steps", action="store_true", help="print each method's wall time")

    profile = command(commands, "profile", cmd_profile,
                      "time every method of a bundle; plots; accuracy-latency")
    profile.add_argument("bundle")
    profile.add_argument("--lengths", type=int, nargs="+", default=[16, 64, 128])
    profile.add_argument("--repeats", type=int, default=20)
    profile.add_argument("--warmup", type=int, default=3)
    profile.add_argument("--import", dest="import_profile", help="a profile measured elsewhere (a phone)")
    profile.add_argument("--out", help="also write the profile to this JSON file")
    profile.add_argument("--no-store", action="store_true",
                         help="do not write it into the bundle's profiles/<runtime>/<device>.json")
    profile.add_argument("--plots", help="folder for the PNG plots (default: runs/profile/<bundle>)")
    profile.add_argument("--pareto-task", help="a benchmark: accuracy vs latency over ratios x thresholds")
    profile.add_argument("--pareto-split", default="dev", choices=["dev", "test"])
    profile.add_argument("--pareto-limit", type=int, help="the first N texts only")
    profile.add_argument("--ops", nargs="*", metavar="METHOD",
                         help="instead: the op-level profile (partitions, kernels outside XNNPACK, perf's "
                              "split of the time) of these methods (default: embed, layer 0 at each ratio, "
                              "exit 0) at each --lengths; needs Linux perf")
    profile.add_argument("--ops-seconds", type=float, default=3.0,
                         help="perf sampling time per method and length")

    calibrate = command(commands, "calibrate", cmd_calibrate,
                        "the policy's ratios from a latency profile and budgets")
    calibrate.add_argument("bundle")
    calibrate.add_argument("--profile", required=True,
                           help="a profile JSON (edge-variator profile --out, or a phone)")
    calibrate.add_argument("--budget", nargs="+", default=[], metavar="RULE=MS", type=budget,
                           help="latency budget per policy rule, e.g. fair=40 serious=20 critical=10")
    calibrate.add_argument("--runtime", choices=profiling.RUNTIMES, default="executorch",
                           help="the program the profile timed and the policy is for")
    calibrate.add_argument("--length", type=int,
                           help="tokens the budgets hold for (default: the longest profiled)")

    demo = command(commands, "demo", cmd_demo, "the default model and task, end to end: bundle, profile, "
                   "the runner under four device states")
    demo.add_argument("--rebuild", action="store_true", help="export the default bundle again")
    demo.add_argument("--lengths", type=int, nargs="+", default=[16, 32, 64], help="profiled lengths")
    demo.add_argument("--repeats", type=int, default=10)
    demo.add_argument("--limit", type=int, help="the first N test texts only")
    demo.add_argument("--plots", default="runs/demo", help="folder for the PNG plots")
    return parser


def show_warning(message, category, filename, lineno, file=None, line=None) -> None:
    """Our own warnings (a stalled epoch, a quality loss) as one plain line; the rest as Python shows them."""
    if issubclass(category, evaluation.QualityLossWarning | train.LearningStalledWarning):
        print(f"edge-variator: warning: {message}", file=file or sys.stderr)
    else:
        SHOW_WARNING(message, category, filename, lineno, file, line)


SHOW_WARNING = warnings.showwarning


def main(argv: list[str] | None = None) -> None:
    args = build_parser().parse_args(argv)
    warnings.showwarning = show_warning
    with contextlib.nullcontext() if args.verbose else chatter.quiet():
        try:
            args.run(args)
        except (datasets.DataError, ModelLoadError, BundleError, train.LearningStalledError, ValueError,
                OpsProfileError, OSError) as error:
            sys.exit(f"edge-variator {args.command}: {error}")


if __name__ == "__main__":
    main()
