#!/usr/bin/python3
"""PyTorch peer of attn's generation benchmark: the book's chapter-4 GPT (GPT_CONFIG_124M, seeded
with torch.manual_seed(123), eval mode) generating greedily from a prompt, with and without a KV
cache, timed, as JSON on stdout.

The model is a plain PyTorch statement of the book's GPTModel (LayerNorm, tanh GELU, pre-LN
blocks, MultiHeadAttention with one Linear per projection); the cached path keeps each block's
keys and values and runs one token per step, as the book's ch04/03_kv-cache scripts do. Both
paths crop the input to the context as the book's generate_text_simple does.

    /usr/bin/python3 benchmarks/generation_peer.py --threads 2 --tokens 200 --cache on
    ... --weights bfloat16    every nn.Linear weight rounded to bfloat16 (kept as float32): the
                              numbers attn's WeightFormat::bfloat16 computes with

Prints {"threads", "cache", "weights", "tokens", "seconds", "tokens_per_second", "ids"}: the ids let the
caller check that attn generated the same sequence from the same seeded weights.
"""
import argparse
import json
import math
import time

import torch
from torch import nn

GPT_CONFIG_124M = {"vocab_size": 50257, "context_length": 1024, "emb_dim": 768, "n_heads": 12,
                   "n_layers": 12, "drop_rate": 0.1, "qkv_bias": False}


class LayerNorm(nn.Module):
    def __init__(self, emb_dim):
        super().__init__()
        self.eps = 1e-5
        self.scale = nn.Parameter(torch.ones(emb_dim))
        self.shift = nn.Parameter(torch.zeros(emb_dim))

    def forward(self, x):
        mean = x.mean(dim=-1, keepdim=True)
        var = x.var(dim=-1, keepdim=True, unbiased=False)
        return self.scale * (x - mean) / torch.sqrt(var + self.eps) + self.shift


class GELU(nn.Module):
    def forward(self, x):
        return 0.5 * x * (1 + torch.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x ** 3)))


class Attention(nn.Module):
    """The book's MultiHeadAttention, with an optional cache of past keys and values."""

    def __init__(self, d, heads, dropout, qkv_bias):
        super().__init__()
        self.heads, self.head_dim = heads, d // heads
        self.W_query = nn.Linear(d, d, bias=qkv_bias)
        self.W_key = nn.Linear(d, d, bias=qkv_bias)
        self.W_value = nn.Linear(d, d, bias=qkv_bias)
        self.out_proj = nn.Linear(d, d)
        self.dropout = nn.Dropout(dropout)
        self.cache = None

    def split(self, x):
        b, t, _ = x.shape
        return x.view(b, t, self.heads, self.head_dim).transpose(1, 2)

    def forward(self, x, use_cache):
        b, t, d = x.shape
        q, k, v = self.split(self.W_query(x)), self.split(self.W_key(x)), self.split(self.W_value(x))
        if use_cache:
            if self.cache is not None:
                k = torch.cat([self.cache[0], k], dim=2)
                v = torch.cat([self.cache[1], v], dim=2)
            self.cache = (k, v)
        s = k.shape[2]
        scores = q @ k.transpose(2, 3)
        # Query i sits at position s - t + i and sees keys 0 .. s - t + i.
        mask = torch.ones(t, s, dtype=torch.bool).triu(s - t + 1)
        scores.masked_fill_(mask, -torch.inf)
        weights = self.dropout(torch.softmax(scores / self.head_dim ** 0.5, dim=-1))
        context = (weights @ v).transpose(1, 2).reshape(b, t, d)
        return self.out_proj(context)


class Block(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        d = cfg["emb_dim"]
        self.att = Attention(d, cfg["n_heads"], cfg["drop_rate"], cfg["qkv_bias"])
        self.ff = nn.Sequential(nn.Linear(d, 4 * d), GELU(), nn.Linear(4 * d, d))
        self.norm1, self.norm2 = LayerNorm(d), LayerNorm(d)
        self.drop_shortcut = nn.Dropout(cfg["drop_rate"])

    def forward(self, x, use_cache):
        x = x + self.drop_shortcut(self.att(self.norm1(x), use_cache))
        return x + self.drop_shortcut(self.ff(self.norm2(x)))


class GPTModel(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.tok_emb = nn.Embedding(cfg["vocab_size"], cfg["emb_dim"])
        self.pos_emb = nn.Embedding(cfg["context_length"], cfg["emb_dim"])
        self.drop_emb = nn.Dropout(cfg["drop_rate"])
        self.trf_blocks = nn.ModuleList([Block(cfg) for _ in range(cfg["n_layers"])])
        self.final_norm = LayerNorm(cfg["emb_dim"])
        self.out_head = nn.Linear(cfg["emb_dim"], cfg["vocab_size"], bias=False)
        self.position = 0

    def reset_cache(self):
        self.position = 0
        for block in self.trf_blocks:
            block.att.cache = None

    def forward(self, ids, use_cache=False):
        t = ids.shape[1]
        start = self.position if use_cache else 0
        x = self.tok_emb(ids) + self.pos_emb(torch.arange(start, start + t))
        x = self.drop_emb(x)
        for block in self.trf_blocks:
            x = block(x, use_cache)
        if use_cache:
            self.position += t
        # Generation reads the last position only: the head runs on that row alone.
        return self.out_head(self.final_norm(x[:, -1:, :]))


def generate(model, ids, new_tokens, context, use_cache):
    """Greedy decoding; the cached path re-prefills the last `context` tokens once the context is
    full (positions are absolute), which is what the uncached crop computes."""
    with torch.no_grad():
        if not use_cache:
            for _ in range(new_tokens):
                logits = model(ids[:, -context:])
                ids = torch.cat([ids, logits[:, -1].argmax(dim=-1, keepdim=True)], dim=1)
            return ids
        model.reset_cache()
        logits = model(ids[:, -context:], use_cache=True)
        for _ in range(new_tokens):
            next_id = logits[:, -1].argmax(dim=-1, keepdim=True)
            ids = torch.cat([ids, next_id], dim=1)
            if model.position >= context:
                model.reset_cache()
                logits = model(ids[:, -context:], use_cache=True)
            else:
                logits = model(next_id, use_cache=True)
        return ids


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--cache", choices=["on", "off"], default="on")
    parser.add_argument("--weights", choices=["float32", "bfloat16"], default="float32")
    parser.add_argument("--prompt", default="15496,11,314,716", help="token ids ('Hello, I am')")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M).eval()
    if args.weights == "bfloat16":
        with torch.no_grad():
            for module in model.modules():
                if isinstance(module, nn.Linear):
                    module.weight.copy_(module.weight.bfloat16().float())
    prompt = torch.tensor([[int(i) for i in args.prompt.split(",")]])
    context = GPT_CONFIG_124M["context_length"]
    generate(model, prompt, 2, context, args.cache == "on")  # warm-up: allocator, threads
    start = time.perf_counter()
    ids = generate(model, prompt, args.tokens, context, args.cache == "on")
    seconds = time.perf_counter() - start
    print(json.dumps({"threads": args.threads, "cache": args.cache, "weights": args.weights,
                      "tokens": args.tokens,
                      "seconds": seconds, "tokens_per_second": args.tokens / seconds,
                      "ids": ids[0].tolist()}))


if __name__ == "__main__":
    main()
