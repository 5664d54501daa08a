"""Every encoder family through every stage, on a tiny random config of each: LoRA fine-tuning,
plugins, the multi-exit assistant, slender pruning (embedding factorization included), export to
`.pte` and `.mlpackage`, and the runner on the ExecuTorch program."""

from __future__ import annotations

import json

import pytest
from test_cli import reviews_task

from edge_variator.cli import main
from edge_variator.encoder import load_encoder
from edge_variator.exits import load_multi_exit
from edge_variator.runtime.bundle import load_manifest

KINDS = {"bert": "wordpiece", "roberta": "bpe", "xlm-roberta": "unigram", "distilbert": "wordpiece",
         "electra": "wordpiece"}


# about 50 s each on 2 cores: the default run takes the two families whose embeddings differ most
# from BERT's (RoBERTa's offset positions, ELECTRA's projection); -m slow runs the other three
SLOW = pytest.mark.slow


@pytest.mark.parametrize("tiny_family_dir", ["roberta", "electra", pytest.param("bert", marks=SLOW),
                                             pytest.param("xlm-roberta", marks=SLOW),
                                             pytest.param("distilbert", marks=SLOW)], indirect=True)
def test_every_stage_runs_on_every_family(tiny_family_dir, tmp_path, capsys):
    family = load_encoder(tiny_family_dir).config.family
    common, small = reviews_task(tmp_path), ["--epochs", "1", "--max-length", "32"]
    main(["finetune", *common, "--out", str(tmp_path / "teacher"), "--model", str(tiny_family_dir),
          "--method", "lora", *small])
    main(["plugins", "train", str(tmp_path / "teacher"), *common, "--ratios", "2", *small,
          "--out", str(tmp_path / "teacher_plugins")])
    main(["slender", "train", str(tmp_path / "teacher"), *common, "--out", str(tmp_path / "assistant"),
          *small])
    main(["slender", "train", str(tmp_path / "assistant"), *common, "--out", str(tmp_path / "slender"),
          *small,
          "--heads", "1/2", "--neurons", "0.5", "--embedding-rank", "8", "--prune-steps", "1"])
    model, _, _ = load_multi_exit(tmp_path / "slender")
    config = model.encoder.config
    assert (config.family, config.heads, config.embedding_rank) == (family, 2, 8)
    main(["plugins", "train", str(tmp_path / "slender"), *common, "--ratios", "2", *small,
          "--out", str(tmp_path / "slender" / "plugins")])
    main(["export", str(tmp_path / "slender"), "--plugins", str(tmp_path / "slender" / "plugins"), *common,
          "--out", str(tmp_path / "bundle"), "--format", "executorch,coreml", "--max-length", "32"])
    manifest = load_manifest(tmp_path / "bundle")
    assert (manifest["model"]["family"], manifest["model"]["tokenizer"]) == (family, KINDS[family])
    assert (tmp_path / "bundle" / "model.pte").is_file() and list((tmp_path / "bundle").glob("*.mlpackage"))
    capsys.readouterr()
    main(["run", str(tmp_path / "bundle"), "the film was great", "the film was dreadful"])
    records = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [record["label"] in ("neg", "pos") for record in records[:2]] == [True, True]


@pytest.mark.parametrize("family", ["roberta", "xlm-roberta"])
def test_max_length_counts_the_positions_roberta_reserves(family, tmp_path):
    from conftest import save_tiny_family

    from edge_variator.tokenizer import Tokenizer

    folder = save_tiny_family(family, tmp_path)  # 130 position embeddings, the first two reserved
    assert load_encoder(folder).config.positions == 128
    Tokenizer(folder, max_length=128)
    with pytest.raises(ValueError, match="exceeds the model's 128 positions"):
        Tokenizer(folder, max_length=136)
