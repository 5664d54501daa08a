"""Shared fixtures: tiny random encoders saved as Hugging Face folders keep tests fast."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
import torch
from transformers import (
    AutoModel,
    BertConfig,
    BertModel,
    DistilBertConfig,
    ElectraConfig,
    PreTrainedTokenizerFast,
    RobertaConfig,
    XLMRobertaConfig,
)

from edge_variator.data import Example, TaskData
from edge_variator.encoder import Encoder, EncoderConfig, default_model_dir
from edge_variator.exits import MultiExitModel
from edge_variator.plugins import PluginSet, attach

TOKENIZER_FILES = ("vocab.txt", "tokenizer.json", "tokenizer_config.json", "special_tokens_map.json")


@pytest.fixture(scope="session")
def tiny_bert_dir(tmp_path_factory) -> Path:
    """A random 2-layer, 32-wide BertModel (with the default model's tokenizer) saved by transformers."""
    torch.manual_seed(0)
    config = BertConfig(vocab_size=30522, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                        intermediate_size=64, max_position_embeddings=512)
    folder = tmp_path_factory.mktemp("tiny_bert")
    BertModel(config).save_pretrained(folder, safe_serialization=True)
    for name in TOKENIZER_FILES:
        shutil.copy(default_model_dir() / name, folder / name)
    return folder


FAMILIES = ("bert", "roberta", "xlm-roberta", "distilbert", "electra")
SHAPE = {"hidden_size": 32, "num_hidden_layers": 2, "num_attention_heads": 4, "intermediate_size": 64}


def tiny_family_config(family: str, vocab_size: int):
    """A random 2-layer, 32-wide config of `family`, with each family's own details: RoBERTa's and
    XLM-R's pad id 1 (positions from 2) and one token type, DistilBERT's keys, ELECTRA's narrower
    embeddings."""
    roberta = {"pad_token_id": 1, "bos_token_id": 0, "eos_token_id": 2, "type_vocab_size": 1,
               "max_position_embeddings": 130, "layer_norm_eps": 1e-5}
    return {
        "bert": lambda: BertConfig(vocab_size=vocab_size, **SHAPE),
        "roberta": lambda: RobertaConfig(vocab_size=vocab_size, **SHAPE, **roberta),
        "xlm-roberta": lambda: XLMRobertaConfig(vocab_size=vocab_size, **SHAPE, **roberta),
        "distilbert": lambda: DistilBertConfig(vocab_size=vocab_size, dim=32, n_layers=2, n_heads=4,
                                               hidden_dim=64),
        "electra": lambda: ElectraConfig(vocab_size=vocab_size, embedding_size=16, **SHAPE),
    }[family]()


def trained_tokenizer(kind: str) -> PreTrainedTokenizerFast:
    """A small byte-level BPE (RoBERTa's kind) or Unigram (XLM-R's) tokenizer, trained on the toy
    task's words and some accents, CJK and emoji, with RoBERTa's special tokens and ids."""
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers

    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    corpus = [example.text for example in toy_task(400, 9)] + [
        "Café naïve résumé façade Zürich", "東京 北京 日本語", "emoji 😀 🎉 👍",
        "well past sixteen tokens"] * 20
    if kind == "bpe":
        tokenizer = Tokenizer(models.BPE())
        tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
        tokenizer.decoder = decoders.ByteLevel()
        trainer = trainers.BpeTrainer(vocab_size=600, special_tokens=specials,
                                      initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
        tokenizer.train_from_iterator(corpus, trainer)
        tokenizer.post_processor = processors.RobertaProcessing(("</s>", 2), ("<s>", 0))
    else:
        tokenizer = Tokenizer(models.Unigram())
        tokenizer.normalizer = normalizers.NFKC()
        tokenizer.pre_tokenizer = pre_tokenizers.Metaspace()
        tokenizer.decoder = decoders.Metaspace()
        tokenizer.train_from_iterator(corpus, trainers.UnigramTrainer(vocab_size=300, special_tokens=specials,
                                                                      unk_token="<unk>"))
        tokenizer.post_processor = processors.TemplateProcessing(
            single="<s> $A </s>", pair="<s> $A </s> </s> $B </s>", special_tokens=[("<s>", 0), ("</s>", 2)])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, bos_token="<s>", eos_token="</s>",
                                   unk_token="<unk>", pad_token="<pad>", mask_token="<mask>")


def save_tiny_family(family: str, folder: Path) -> Path:
    """A random tiny `family` model saved by transformers, with its family's kind of tokenizer
    (WordPiece: the default model's)."""
    torch.manual_seed(0)
    if family in ("roberta", "xlm-roberta"):
        tokenizer = trained_tokenizer("bpe" if family == "roberta" else "unigram")
        tokenizer.save_pretrained(folder)
        vocab_size = len(tokenizer)
    else:
        for name in TOKENIZER_FILES:
            shutil.copy(default_model_dir() / name, folder / name)
        vocab_size = 30522
    model = AutoModel.from_config(tiny_family_config(family, vocab_size))
    model.save_pretrained(folder, safe_serialization=True)
    return folder


@pytest.fixture(scope="session", params=FAMILIES)
def tiny_family_dir(request, tmp_path_factory) -> Path:
    """Each family in turn: a test that takes this runs once per family."""
    return save_tiny_family(request.param, tmp_path_factory.mktemp(request.param))


POSITIVE = ["great", "wonderful", "superb", "brilliant", "lovely", "excellent"]
NEGATIVE = ["awful", "terrible", "boring", "dreadful", "poor", "horrible"]


def toy_task(n: int, seed: int) -> list[Example]:
    """Separable two-label reviews of varied length."""
    rng = random.Random(seed)
    rows = []
    for _ in range(n):
        label = rng.randrange(2)
        word = rng.choice([NEGATIVE, POSITIVE][label])
        rows.append(Example(f"the film was {word} " + "and long " * rng.randrange(4), label))
    return rows


def toy_data(train: int = 128, dev: int = 32, test: int = 32) -> TaskData:
    return TaskData("toy", ["negative", "positive"], toy_task(train, 0), toy_task(dev, 1), toy_task(test, 2))


@pytest.fixture(scope="session")
def toy_teacher(tiny_bert_dir, tmp_path_factory) -> Path:
    """The tiny BERT fully fine-tuned on the toy task: a teacher for the distillation stages."""
    from edge_variator.train import FinetuneConfig, finetune

    out = tmp_path_factory.mktemp("toy_teacher") / "teacher"
    # BERT's pooler, as every shipped teacher; the distillation tests' thresholds were set on it
    config = FinetuneConfig(method="full", epochs=3, batch_size=16, lr=3e-3, max_length=32, pooling="cls")
    finetune(toy_data(train=256), out, config, model_dir=tiny_bert_dir, progress=False)
    return out


@pytest.fixture(scope="session")
def toy_assistant(toy_teacher, tmp_path_factory) -> Path:
    """A one-epoch multi-exit assistant of the toy teacher, for the stages that read it (not change it).
    Its last exit starts as the teacher's head, as 20ng's recipe does: the slender stages that prune,
    save, resume and refine it keep that head (the plain exit is the tiny bundle model's first)."""
    from edge_variator.train import ExitTrainConfig, train_multi_exit

    out = tmp_path_factory.mktemp("toy_assistant") / "assistant"
    config = ExitTrainConfig(epochs=1, batch_size=16, lr=1e-2, max_length=32, last_exit="teacher")
    train_multi_exit(toy_teacher, toy_data(), out, config, progress=False)
    return out


TINY_CONFIG = EncoderConfig(vocab_size=30522, hidden=32, layers=2, heads=4, intermediate=64, max_positions=64)
SHA = "ab" * 32  # the backbone hash tiny plugin sets are bound to


def tiny_model(ratios=(2,)) -> MultiExitModel:
    """A random 2-layer multi-exit model with plugins strong enough to change its outputs. Its last
    exit is BERT's pooler over CLS (an assistant started from its teacher's head), its first a plain
    exit over the mean: every export and runner test sees both kinds."""
    torch.manual_seed(0)
    model = MultiExitModel(Encoder(TINY_CONFIG), ["no", "yes"], last_exit_pooler="cls").eval()
    for ratio in ratios:
        plugin_set = PluginSet.for_backbone(model.encoder, SHA, ratio, bottleneck=8)
        for parameter in plugin_set.parameters():  # not the near-silent init: make the plugins matter
            torch.nn.init.normal_(parameter, std=0.2)
        attach(model.encoder, plugin_set, SHA)
    return model


def tiny_source(thresholds=None) -> dict:
    """What load_model would say about where tiny_model came from."""
    return {"id": "tiny", "sha256": SHA, "criterion": "entropy", "thresholds": thresholds or {"drop_1": 0.4}}


RUNNER_TEXTS = [example.text for example in toy_task(24, 5)] + [
    "a longer text, well past sixteen tokens, so that it runs at a bigger padded length than the rest"]


@pytest.fixture(scope="session")
def tiny_tokenizer():
    from edge_variator.tokenizer import Tokenizer

    return Tokenizer(default_model_dir(), 64)


@pytest.fixture(scope="session")
def tiny_threshold(tiny_tokenizer) -> float:
    """The median uncertainty of tiny_model's first exit on RUNNER_TEXTS: about half stop there."""
    from edge_variator.exits import uncertainty

    batch = tiny_tokenizer(RUNNER_TEXTS)
    with torch.no_grad():
        logits = tiny_model()(batch.input_ids, batch.attention_mask)
    return uncertainty(logits[0]).median().item()


@pytest.fixture(scope="session")
def tiny_bundle(tiny_tokenizer, tiny_threshold, tmp_path_factory) -> Path:
    """tiny_model (ratios 1 and 2, an exit after each layer) exported to an ExecuTorch bundle."""
    from edge_variator.export.bundle import write_bundle

    out = tmp_path_factory.mktemp("bundle") / "tiny"
    write_bundle(tiny_model(), tiny_tokenizer, tiny_source({"drop_1": tiny_threshold}), out, progress=False)
    return out


def import_script(name: str):
    """scripts/<name>.py as a module (scripts/ is not a package)."""
    import importlib
    import sys

    scripts = str(Path(__file__).parent.parent / "scripts")
    sys.path.insert(0, scripts)
    try:
        return importlib.import_module(name)
    finally:
        sys.path.remove(scripts)
