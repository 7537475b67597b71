"""A tiny random GPT-2-style model and tokenizer saved locally, for the `repsim capture hf:` example.

Nothing is downloaded: the tokenizer is a word-level ``tokenizers`` model trained on the
sentences below, the model a ``GPT2Model`` with a random 2-layer, 32-dimensional config. Writes
into OUT (default ``capture-demo/``): ``tiny-gpt2/`` (``save_pretrained``) and ``sentences.txt``.

Run: ``python docs/examples/make_tiny_hf.py [OUT]``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

SENTENCES = [
    "the cat sat on the mat",
    "a dog ran in the park",
    "the dog sat on the mat",
    "a cat ran in the garden",
    "small models are fast",
    "large models are slow",
    "the park is green in spring",
    "the garden is quiet at night",
]


def main(out: str = "capture-demo") -> None:
    import torch
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import GPT2Config, GPT2Model, PreTrainedTokenizerFast

    folder = Path(out)
    folder.mkdir(parents=True, exist_ok=True)
    tk = Tokenizer(models.WordLevel(unk_token="[UNK]"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    tk.train_from_iterator(SENTENCES, trainers.WordLevelTrainer(special_tokens=["[PAD]", "[UNK]", "[EOS]"]))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, pad_token="[PAD]", unk_token="[UNK]", eos_token="[EOS]")
    cfg = GPT2Config(vocab_size=tok.vocab_size, n_embd=32, n_layer=2, n_head=2, n_positions=64,
                     bos_token_id=tok.eos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    torch.manual_seed(0)
    GPT2Model(cfg).save_pretrained(folder / "tiny-gpt2")
    tok.save_pretrained(folder / "tiny-gpt2")
    (folder / "sentences.txt").write_text("\n".join(SENTENCES) + "\n")
    print(f"wrote {folder / 'tiny-gpt2'} (GPT-2, 2 layers, d=32, vocab {tok.vocab_size}) and {folder / 'sentences.txt'} ({len(SENTENCES)} lines)")


if __name__ == "__main__":
    main(*sys.argv[1:2])
