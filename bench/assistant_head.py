"""Ways to train the multi-exit assistant's exits, side by side: its last exit fresh or the teacher's
own head; its fresh exits from chance or first trained alone on the frozen teacher; and how much of
the early exits' gradients reaches the encoder.

    python bench/assistant_head.py                                # 20ng: 2,000 documents, one epoch
    python bench/assistant_head.py --variants teacher teacher:5 teacher:5:0.25
    python bench/assistant_head.py --task r8 --teacher models/r8/teacher --texts 1000

A variant is `last_exit[:warm_exits_epochs[:early_exit_gradient]]` (train.ExitTrainConfig; 0 and 1
when left out). Every run trains the same assistant (train.train_multi_exit, the same seed, data and
schedule); only those differ. A fresh last exit starts from chance and has to learn the teacher's
answers back; the teacher's head (its pooler and classifier) starts at the teacher's. Warm exits
start the joint stage from heads fitted to the teacher's own states rather than from random ones.
Below 1, the early exits pull less on the layers the last exit reads. Prints each exit's dev
accuracy after training and the mean over exits (what an exit stage picks its epoch by), and the
teacher's dev accuracy beside them.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from pathlib import Path

from edge_variator.data import load_benchmark
from edge_variator.files import write_json
from edge_variator.train import LAST_EXITS, ExitTrainConfig, train_multi_exit


def parse_variant(variant: str) -> dict:
    """'teacher:3:0.25' -> the ExitTrainConfig settings it names; 'fresh' -> fresh, 0 and 1."""
    parts = variant.split(":")
    try:
        if len(parts) > 3:
            raise ValueError("at most three parts")
        last_exit, warm, share = parts + ["0", "1"][len(parts) - 1:]
        settings = {"last_exit": last_exit, "warm_exits_epochs": int(warm),
                    "early_exit_gradient": float(share)}
        ExitTrainConfig(**settings)  # refuses what no assistant can train with
    except ValueError as error:
        raise ValueError(f"a variant is last_exit[:warm_exits_epochs[:early_exit_gradient]]; "
                         f"not {variant!r}: {error}") from None
    return settings


def run(task: str, teacher: Path, texts: int | None, epochs: int, max_length: int, work: Path,
        variants: tuple[str, ...] = LAST_EXITS) -> list[dict]:
    data = load_benchmark(task)
    rows = []
    for settings in map(parse_variant, variants):
        last_exit, warm, share = settings.values()
        name = last_exit + (f"-warm{warm}" if warm else "") + (f"-share{share:g}" if share != 1 else "")
        done = work / f"{name}.json"
        if not done.is_file():  # a finished run is kept; a stopped one resumes from its checkpoint
            config = ExitTrainConfig(epochs=epochs, max_length=max_length, max_train=texts,
                                     **settings)
            started = time.perf_counter()
            metrics = train_multi_exit(teacher, data, work / name, config, progress=False)
            dev = metrics["dev_exit_accuracy"]
            write_json(done, {**settings, "dev_exit_accuracy": dev,
                              "dev_mean": sum(dev) / len(dev),
                              "teacher_dev": metrics["quality"][0]["uncompressed_dev_accuracy"],
                              "test_exit_accuracy": metrics["test_exit_accuracy"],
                              "train_examples": metrics["train_examples"],
                              "seconds": round(time.perf_counter() - started, 1)})
        rows.append(json.loads(done.read_text()))
        print(json.dumps(rows[-1]), flush=True)
    return rows


def table(rows: list[dict]) -> str:
    def percents(values: list[float]) -> str:
        return " / ".join(f"{100 * value:.1f}" for value in values)

    lines = ["| last exit | warm exit epochs | early exits' gradient | dev exits | dev mean | teacher dev "
             "| test exits | wall time |", "|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['last_exit']} | {row.get('warm_exits_epochs', 0)} | "
                     f"{row.get('early_exit_gradient', 1):g} | "
                     f"{percents(row['dev_exit_accuracy'])} | "
                     f"{100 * row['dev_mean']:.2f} | {100 * row['teacher_dev']:.2f} | "
                     f"{percents(row['test_exit_accuracy'])} | {row['seconds']:.0f} s |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--task", default="20ng")
    parser.add_argument("--teacher", type=Path, default=Path("models/20ng/teacher"))
    parser.add_argument("--texts", type=int, default=2000, help="a seeded subset of the training split")
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--max-length", type=int, default=256)
    parser.add_argument("--variants", nargs="+", default=list(LAST_EXITS),
                        help="last_exit[:warm_exits_epochs[:early_exit_gradient]] each "
                        "(default: %(default)s)")
    parser.add_argument("--out", type=Path, default=None, help="write the rows as JSON here")
    parser.add_argument("--work", type=Path, default=None,
                        help="where the assistants train (default: runs/assistant_head/<task>); rerunning "
                        "the same command continues there, and it is removed at the end")
    args = parser.parse_args()
    work = args.work or Path("runs/assistant_head") / args.task
    for variant in args.variants:
        try:
            parse_variant(variant)
        except ValueError as error:
            parser.error(str(error))
    rows = run(args.task, args.teacher, args.texts, args.epochs, args.max_length, work, args.variants)
    print(table(rows))
    if args.out:
        write_json(args.out, rows)
    shutil.rmtree(work)


if __name__ == "__main__":
    main()
