"""The weights file the README's loading snippet reads: the book's MultiHeadAttention (chapter 3,
section 3.6.2) after torch.manual_seed(123), its state_dict saved as safetensors.

    /usr/bin/python3 attn/python/save_book_mha.py mha.safetensors

The class is the book's, as written in the chapter; attn's MultiHeadAttention has the same
parameter names (W_query.weight, ..., out_proj.bias, and the buffer mask), so the file loads by
name with attn::io::load_safetensors. tests/fixtures/mha_book.safetensors holds the same tensors.
"""
import os
import sys

import torch
import torch.nn as nn

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from attn_safetensors import save_file  # noqa: E402


class MultiHeadAttention(nn.Module):
    def __init__(self, d_in, d_out, context_length, dropout, num_heads, qkv_bias=False):
        super().__init__()
        assert d_out % num_heads == 0, "d_out must be divisible by num_heads"
        self.d_out, self.num_heads, self.head_dim = d_out, num_heads, d_out // num_heads
        self.W_query = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_key = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.W_value = nn.Linear(d_in, d_out, bias=qkv_bias)
        self.out_proj = nn.Linear(d_out, d_out)
        self.dropout = nn.Dropout(dropout)
        self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length), diagonal=1))

    def forward(self, x):
        b, num_tokens, _ = x.shape
        split = lambda t: t.view(b, num_tokens, self.num_heads, self.head_dim).transpose(1, 2)
        queries, keys, values = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
        attn_scores = queries @ keys.transpose(2, 3)
        attn_scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
        attn_weights = self.dropout(torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1))
        context_vec = (attn_weights @ values).transpose(1, 2).contiguous()
        return self.out_proj(context_vec.view(b, num_tokens, self.d_out))


if __name__ == "__main__":
    path = sys.argv[1] if len(sys.argv) > 1 else "mha.safetensors"
    torch.manual_seed(123)
    mha = MultiHeadAttention(d_in=3, d_out=2, context_length=6, dropout=0.0, num_heads=2)
    save_file(mha.state_dict(), path)
    print("wrote", path)
