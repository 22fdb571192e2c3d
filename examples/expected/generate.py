#!/usr/bin/python3
"""Writes the expected output of examples 01-06: the book's chapter-3 code run with PyTorch,
printing the same titles the C++ examples print. ctest checks every line (tests/
example_output_check.cmake). Run with Debian's python3-torch:

    /usr/bin/python3 examples/expected/generate.py

PyTorch's printing is kept as is (4 decimals), except that scientific notation is switched off:
attn always prints fixed notation.

Example 11 (chapter 4's GPT) uses tests/fixtures/generate_gpt.py's statement of the book's
GPTModel; the token ids of the book's texts and the decoded text are the book's, as tiktoken
gave them (no tokenizer is needed here).
"""
import contextlib
import io
import os
import sys

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "..", "tests", "fixtures"))
from generate import (BOOK_INPUTS, CausalAttention, MultiHeadAttention,  # noqa: E402
                      MultiHeadAttentionWrapper, SelfAttentionV1, SelfAttentionV2)

from generate_gpt import GPT_CONFIG_124M, GPTModel  # noqa: E402

torch.set_printoptions(sci_mode=False)
inputs = BOOK_INPUTS
batch = torch.stack((inputs, inputs), dim=0)


def show(title, tensor):
    print(title)
    print(tensor.detach())
    print()


def example_01():
    attn_scores_2 = inputs @ inputs[1]
    show("attn_scores_2", attn_scores_2)
    show("Attention weights (divided by the sum):", attn_scores_2 / attn_scores_2.sum())
    show("Attention weights (softmax_naive):", torch.exp(attn_scores_2) / torch.exp(attn_scores_2).sum())
    attn_weights_2 = torch.softmax(attn_scores_2, dim=0)
    show("Attention weights (softmax):", attn_weights_2)
    show("context_vec_2", attn_weights_2 @ inputs)
    attn_scores = inputs @ inputs.T
    show("attn_scores", attn_scores)
    attn_weights = torch.softmax(attn_scores, dim=-1)
    show("attn_weights", attn_weights)
    show("all_context_vecs", attn_weights @ inputs)
    show("simplified_self_attention(inputs)", attn_weights @ inputs)


def example_02():
    torch.manual_seed(123)
    sa_v1 = SelfAttentionV1(3, 2)
    W_query, W_key, W_value = sa_v1.W_query, sa_v1.W_key, sa_v1.W_value
    query_2 = inputs[1] @ W_query
    show("query_2", query_2)
    keys, values = inputs @ W_key, inputs @ W_value
    print("keys.shape:", keys.shape)
    print("values.shape:", values.shape)
    print()
    show("attn_score_22", query_2.dot(keys[1]))
    attn_scores_2 = query_2 @ keys.T
    show("attn_scores_2", attn_scores_2)
    attn_weights_2 = torch.softmax(attn_scores_2 / keys.shape[-1] ** 0.5, dim=-1)
    show("attn_weights_2", attn_weights_2)
    show("context_vec_2", attn_weights_2 @ values)
    show("SelfAttention_v1 (torch.manual_seed(123))", sa_v1(inputs))
    torch.manual_seed(789)
    show("SelfAttention_v2 (torch.manual_seed(789))", SelfAttentionV2(3, 2)(inputs))


def example_03():
    torch.manual_seed(789)
    sa_v2 = SelfAttentionV2(3, 2)
    queries, keys = sa_v2.W_query(inputs), sa_v2.W_key(inputs)
    attn_scores = queries @ keys.T
    attn_weights = torch.softmax(attn_scores / keys.shape[-1] ** 0.5, dim=-1)
    show("attn_weights", attn_weights)
    mask_simple = torch.tril(torch.ones(6, 6))
    show("mask_simple", mask_simple)
    masked_simple = attn_weights * mask_simple
    show("masked_simple", masked_simple)
    show("masked_simple_norm", masked_simple / masked_simple.sum(dim=-1, keepdim=True))
    mask = torch.triu(torch.ones(6, 6), diagonal=1)
    masked = attn_scores.masked_fill(mask.bool(), -torch.inf)
    show("masked", masked)
    attn_weights = torch.softmax(masked / keys.shape[-1] ** 0.5, dim=1)
    show("attn_weights", attn_weights)
    dropout = torch.nn.Dropout(0.5)
    torch.manual_seed(123)
    show("dropout(example)", dropout(torch.ones(6, 6)))
    torch.manual_seed(123)
    show("dropout(attn_weights)", dropout(attn_weights))
    print("batch.shape:", batch.shape)
    print()
    torch.manual_seed(123)
    ca = CausalAttention(3, 2, 6, 0.0)
    context_vecs = ca(batch)
    show("context_vecs (torch.manual_seed(123))", context_vecs)
    print("context_vecs.shape:", context_vecs.shape)


def example_04():
    torch.manual_seed(123)
    context_vecs = MultiHeadAttentionWrapper(3, 2, 6, 0.0, num_heads=2)(batch)
    show("MultiHeadAttentionWrapper context_vecs (torch.manual_seed(123))", context_vecs)
    print("context_vecs.shape:", context_vecs.shape)
    print()
    a = torch.tensor([[[[0.2745, 0.6584, 0.2775, 0.8573], [0.8993, 0.0390, 0.9268, 0.7388],
                        [0.7179, 0.7058, 0.9156, 0.4340]],
                       [[0.0772, 0.3565, 0.1479, 0.5331], [0.4066, 0.2318, 0.4545, 0.9737],
                        [0.4606, 0.5159, 0.4220, 0.5786]]]])
    show("a @ a.transpose(2, 3)", a @ a.transpose(2, 3))
    torch.manual_seed(123)
    context_vecs = MultiHeadAttention(3, 2, 6, 0.0, num_heads=2)(batch)
    show("MultiHeadAttention context_vecs (torch.manual_seed(123))", context_vecs)
    print("context_vecs.shape:", context_vecs.shape)


def example_05():
    torch.manual_seed(789)
    sa_v2 = SelfAttentionV2(3, 2)
    sa_v1 = SelfAttentionV1(3, 2)
    sa_v1.W_query = torch.nn.Parameter(sa_v2.W_query.weight.T)
    sa_v1.W_key = torch.nn.Parameter(sa_v2.W_key.weight.T)
    sa_v1.W_value = torch.nn.Parameter(sa_v2.W_value.weight.T)
    show("Exercise 3.1: sa_v1 with sa_v2's weights", sa_v1(inputs))
    show("Exercise 3.1: sa_v2", sa_v2(inputs))
    torch.manual_seed(123)
    context_vecs = MultiHeadAttentionWrapper(3, 1, 6, 0.0, num_heads=2)(batch)
    show("Exercise 3.2: context_vecs (torch.manual_seed(123))", context_vecs)
    print("context_vecs.shape:", context_vecs.shape)
    print()
    mha = MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12)
    count = sum(p.numel() for p in mha.parameters())
    print(f"Exercise 3.3: MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12) has {count} parameters")


def example_06():
    mha = MultiHeadAttention(768, 768, 1024, 0.0, num_heads=12)
    print("MultiHeadAttention(d_in=768, d_out=768, context_length=1024, dropout=0.0, num_heads=12)")
    print("parameters:", sum(p.numel() for p in mha.parameters()))
    with torch.no_grad():
        print("output shape:", mha(torch.rand(8, 1024, 768)).shape)


def generate(model, idx, max_new_tokens, context_size, temperature=0.0, top_k=None):
    """The book's generate() (chapter 5.3); temperature 0 is generate_text_simple (4.7)."""
    for _ in range(max_new_tokens):
        with torch.no_grad():
            logits = model(idx[:, -context_size:])[:, -1, :]
        if top_k is not None:
            top_logits, _ = torch.topk(logits, top_k)
            logits = torch.where(logits < top_logits[:, -1:], torch.tensor(float("-inf")), logits)
        if temperature > 0.0:
            idx_next = torch.multinomial(torch.softmax(logits / temperature, dim=-1), 1)
        else:
            idx_next = torch.argmax(logits, dim=-1, keepdim=True)
        idx = torch.cat((idx, idx_next), dim=1)
    return idx


def example_11():
    batch = torch.tensor([[6109, 3626, 6100, 345], [6109, 1110, 6622, 257]])
    print("Input batch:")
    print(batch)
    print()
    torch.manual_seed(123)
    model = GPTModel(GPT_CONFIG_124M)
    out = model(batch).detach()  # training mode, as the book prints it
    print("Output shape:", out.shape)
    print(out)
    print()
    print(f"Total number of parameters: {sum(p.numel() for p in model.parameters()):,}")
    print()
    model.eval()
    hello = torch.tensor([[15496, 11, 314, 716]])  # "Hello, I am"
    greedy = generate(model, hello, 6, 1024)
    print("Output:", greedy)
    print("Output length:", len(greedy[0]))
    print("Hello, I am Featureiman Byeswickattribute argue")  # the book's tokenizer.decode
    print()
    print("With the KV cache, the first 6 tokens are the same")
    torch.manual_seed(123)
    print("Sampled (temperature 1.4, top_k 25, torch.manual_seed(123)):")
    print(generate(model, hello, 15, 1024, temperature=1.4, top_k=25))


EXAMPLES = {
    "01_simplified_self_attention": example_01,
    "02_trainable_self_attention": example_02,
    "03_causal_attention": example_03,
    "04_multi_head_attention": example_04,
    "05_exercises": example_05,
    "06_gpt2_sized_attention": example_06,
    "11_gpt_model": example_11,
}

if __name__ == "__main__":
    torch.set_num_threads(1)
    for name, run in EXAMPLES.items():
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            run()
        with open(os.path.join(HERE, name + ".txt"), "w") as f:
            f.write(out.getvalue())
    print("torch", torch.__version__, "wrote", ", ".join(EXAMPLES), "to", HERE)
