"""Tiny models and files for the capture tests (no downloads; built in milliseconds).

Factories here are also reached by import path in the CLI tests (``tests/capture_models.py:make_cnn``).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="capture needs torch (pip install 'repsim-cli[torch]')")
nn = torch.nn

HERE = Path(__file__).resolve().parent
SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "hello world",
    "small models are fast and small models are cheap",
    "the park is green",
    "a cat and a dog",
    "fast",
]


class MLP(nn.Module):
    def __init__(self, d_in: int = 6, hidden: int = 10, n_out: int = 4):
        super().__init__()
        self.fc1 = nn.Linear(d_in, hidden)
        self.act = nn.Tanh()
        self.fc2 = nn.Linear(hidden, hidden)
        self.relu = nn.ReLU()
        self.head = nn.Linear(hidden, n_out)

    def forward(self, x):
        return self.head(self.relu(self.fc2(self.act(self.fc1(x)))))


class CNN(nn.Module):
    def __init__(self, n_out: int = 3):
        super().__init__()
        self.features = nn.Sequential(
            nn.Conv2d(1, 4, 3, padding=1), nn.ReLU(inplace=True), nn.MaxPool2d(2),
            nn.Conv2d(4, 6, 3, padding=1), nn.BatchNorm2d(6), nn.ReLU(inplace=True), nn.AdaptiveAvgPool2d(2),
        )
        self.fc = nn.Linear(24, n_out)

    def forward(self, x):
        return self.fc(torch.flatten(self.features(x), 1))


class Pair(nn.Module):
    """A submodule with a tuple output and one with a dict output."""

    def forward(self, x):
        return x * 2.0, {"neg": -x, "sq": x * x}


class TupleNet(nn.Module):
    def __init__(self):
        super().__init__()
        self.lin = nn.Linear(5, 3)
        self.pair = Pair()

    def forward(self, x):
        a, d = self.pair(self.lin(x))
        return a + d["neg"] + d["sq"]


class TokenNet(nn.Module):
    """Token ids N x T -> N x T x D per-token features, and a pooled head."""

    def __init__(self, vocab: int = 20, d: int = 5):
        super().__init__()
        self.emb = nn.Embedding(vocab, d)
        self.mix = nn.Linear(d, d)

    def forward(self, ids):
        return torch.tanh(self.mix(self.emb(ids)))


class ItemNet(nn.Module):
    """Calls .item() in forward: torch.func.vmap cannot trace it (forces the per-example fallback)."""

    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(6, 4)

    def forward(self, x):
        scale = float(x.abs().max().item()) * 0.0 + 1.0
        return self.fc(x) * scale


def make_mlp():
    torch.manual_seed(1)
    return MLP()


def make_cnn():
    torch.manual_seed(2)
    m = CNN()
    with torch.no_grad():  # non-trivial batch-norm statistics
        m.features[4].running_mean.uniform_(-0.5, 0.5)
        m.features[4].running_var.uniform_(0.5, 2.0)
    return m


def make_tuple():
    torch.manual_seed(3)
    return TupleNet()


def make_token():
    torch.manual_seed(4)
    return TokenNet()


def not_a_module():
    return 42


def hooked_forward(model, x, names):
    """Independent route: outputs of the named modules by plain forward hooks."""
    got = {}
    mods = dict(model.named_modules())
    hs = [mods[n].register_forward_hook(lambda m, i, o, n=n: got.__setitem__(n, o.detach().clone())) for n in names]
    model.eval()
    with torch.no_grad():
        model(torch.as_tensor(x))
    for h in hs:
        h.remove()
    return {n: got[n].numpy() for n in names}


def build_hf(folder: Path) -> Path:
    """A tiny random BERT with a WordLevel tokenizer, saved with save_pretrained (offline)."""
    os.environ["HF_HUB_OFFLINE"] = "1"
    os.environ["TRANSFORMERS_OFFLINE"] = "1"
    transformers = pytest.importorskip("transformers", reason="hf capture needs transformers (pip install 'repsim-cli[hf]')")
    tokenizers = pytest.importorskip("tokenizers")
    tk = tokenizers.Tokenizer(tokenizers.models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = tokenizers.pre_tokenizers.Whitespace()
    tk.train_from_iterator(SENTENCES, tokenizers.trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[CLS]", "[SEP]"]))
    fast = transformers.PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", cls_token="[CLS]", sep_token="[SEP]")
    cfg = transformers.BertConfig(vocab_size=fast.vocab_size, hidden_size=16, num_hidden_layers=2, num_attention_heads=2,
                                  intermediate_size=32, max_position_embeddings=32)
    torch.manual_seed(0)
    model = transformers.BertModel(cfg)
    model.save_pretrained(folder)
    fast.save_pretrained(folder)
    return folder


@pytest.fixture(scope="session")
def hf_dir(tmp_path_factory) -> Path:
    return build_hf(tmp_path_factory.mktemp("tinybert"))


@pytest.fixture(scope="session")
def hf_bare_dir(tmp_path_factory, hf_dir) -> Path:
    """The same model without a tokenizer."""
    import shutil

    out = tmp_path_factory.mktemp("tinybert_notok")
    for f in os.listdir(hf_dir):
        if f.startswith(("config", "model")):
            shutil.copy(hf_dir / f, out / f)
    return out


def images(n: int = 23, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).standard_normal((n, 1, 8, 8)).astype(np.float32)
