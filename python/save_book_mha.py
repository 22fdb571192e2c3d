"""The weights file the README's loading snippet reads: the book's MultiHeadAttention (chapter 3,
section 3.6.2) after torch.manual_seed(123), its state_dict saved as safetensors.

    /usr/bin/python3 attn/python/save_book_mha.py mha.safetensors

The class is the book's, as tests/fixtures/generate.py writes it for the fixtures; attn's
MultiHeadAttention has the same parameter names (W_query.weight, ..., out_proj.bias, and the
buffer mask), so the file loads by name with attn::io::load_safetensors.
tests/fixtures/mha_book.safetensors is the same file, byte for byte.
"""
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "..", "tests", "fixtures"))
from attn_safetensors import save_file  # noqa: E402
from generate import MultiHeadAttention  # noqa: E402  (the book's class, as the fixtures use it)


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "mha.safetensors"
    torch.manual_seed(123)
    mha = MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    save_file(mha.state_dict(), path)
    print("wrote", path)
