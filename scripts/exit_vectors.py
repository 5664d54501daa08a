"""Write tests/vectors/exits.json: the early-exit decision, computed by the Python runtime, for the
Kotlin and Swift ports to match (tests/test_runner.py checks that the file is what Python computes).

    python scripts/exit_vectors.py

`scores`: one exit's logits -> its uncertainty (softmax entropy in nats, or 1 - max probability)
and label. `runs`: every exit's logits of one text, the exits after which layers, a threshold (null:
never exit early) -> the layer it stops after (1-based) and its label: the first exit whose score is
below the threshold, else the last layer.
"""

from __future__ import annotations

import json
import math
import random
from pathlib import Path

import torch

from edge_variator.exits import uncertainty

OUT = Path(__file__).resolve().parents[1] / "tests" / "vectors" / "exits.json"


def score_case(logits: list[float], criterion: str) -> dict:
    tensor = torch.tensor(logits, dtype=torch.float64)
    return {"criterion": criterion, "logits": logits, "score": uncertainty(tensor, criterion).item(),
            "label": int(tensor.argmax())}  # ties: the first maximum, as argmax everywhere


def run_case(name: str, logits: list[list[float]], after_layers: list[int], threshold: float | None,
             criterion: str, layers: int) -> dict:
    """The runner's loop (runtime/runner.py), on given logits instead of a model."""
    scores = [uncertainty(torch.tensor(row, dtype=torch.float64), criterion).item() for row in logits]
    limit = -1.0 if threshold is None else threshold
    for position, layer in enumerate(after_layers):
        if scores[position] < limit or layer == layers - 1:
            label = int(torch.tensor(logits[position]).argmax())
            return {"name": name, "criterion": criterion, "layers": layers, "after_layers": after_layers,
                    "threshold": threshold, "logits": logits,
                    "expect": {"exit_layer": layer + 1, "label": label, "score": scores[position]}}
    raise AssertionError("the last layer always has an exit")


def main() -> None:
    rng = random.Random(7)
    scores = [score_case(logits, criterion) for criterion in ("entropy", "max_prob") for logits in (
        [0.0, 0.0], [2.0, -1.0], [-3.5, 4.25], [1.0, 1.0, 1.0, 1.0, 1.0, 1.0], [10.0, -10.0, 0.0],
        # large logits: a port needs log-softmax (exp overflows, 0 * log 0 is NaN)
        [100.0, 0.0], [-1000.0, 1000.0], [0.5, 0.5, -2.0], [3.0, 3.0, 2.0],
        [round(rng.uniform(-6, 6), 3) for _ in range(20)])]
    runs, every = [], list(range(6))
    for criterion in ("entropy", "max_prob"):
        sure, unsure = [6.0, -6.0], [0.1, 0.0]
        runs += [
            run_case("first exit confident", [sure] * 6, every, 0.3, criterion, 6),
            run_case("no exit confident: the last layer", [unsure] * 6, every, 0.3, criterion, 6),
            run_case("no threshold: never early", [sure] * 6, every, None, criterion, 6),
            run_case("third exit confident", [unsure, unsure, [0.0, 5.0], sure, sure, sure], every,
                     0.3, criterion, 6),
            run_case("threshold 0: nothing is below it", [[50.0, -50.0]] * 6, every, 0.0, criterion, 6),
            run_case("exits after some layers only", [unsure, [0.0, 7.0], sure], [1, 3, 5], 0.3,
                     criterion, 6),
            run_case("one layer", [unsure], [0], 0.3, criterion, 1),
        ]
    # the boundary: a score equal to the threshold is not confident (strictly below); 0.5 is exact in
    # float32 and float64 alike, so every port computes the same score
    runs.append(run_case("score equal to the threshold: go on", [[0.0, 0.0], [9.0, 0.0]], [0, 1], 0.5,
                         "max_prob", 2))
    vectors = {"description": __doc__.split("\n\n", 2)[2].strip(), "scores": scores, "runs": runs}
    assert all(math.isfinite(case["score"]) for case in scores)
    OUT.write_text(json.dumps(vectors, indent=1) + "\n")
    print(f"wrote {OUT}: {len(scores)} scores, {len(runs)} runs")


if __name__ == "__main__":
    main()
