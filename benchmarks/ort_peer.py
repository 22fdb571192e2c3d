#!/usr/bin/python3
"""ONNX Runtime (CPU) as a timed peer for attn's causal multi-head attention forward.

The same weights go into three ONNX graphs, each followed by the same output projection:

    ort_contrib_attention  com.microsoft `Attention` (num_heads, unidirectional=1): ORT's fused op
    ort_attention_op23     the standard opset-23 `Attention` with is_causal=1, Q/K/V from one MatMul
    ort_unfused            MatMul, Reshape, Transpose, MatMul, scale, + causal mask, Softmax, ...

ONNX Runtime runs under Node (npm package onnxruntime-node, whose CPU library ships inside the
package) through benchmarks/ort_peer.mjs, because there is no Debian package of ORT for Python.
Debian's python3-onnx writes the graphs and python3-torch gives the reference values.

    /usr/bin/python3 benchmarks/ort_peer.py                  # self-test: every graph vs PyTorch
    /usr/bin/python3 benchmarks/ort_peer.py --time           # GPT-2 small, 2 threads, 5 repeats
    /usr/bin/python3 benchmarks/ort_peer.py --time --config small --threads 1

Node finds onnxruntime-node in build/ort/node_modules under the repository root (where
scripts/compare.sh installs it), or in /tmp/ortnode/node_modules when only that one exists,
unless ATTN_ORT_NODE_MODULES names another node_modules folder. ORT does its GEMMs with its own
MLAS kernels, not a system BLAS, so OPENBLAS_CORETYPE does not concern it.

Shape letters as in attn: B batch, T tokens, H heads, D head dim; d_model = H * D.
"""
import argparse
import json
import math
import os
import shutil
import subprocess
import sys
import tempfile

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
NODE_SCRIPT = os.path.join(HERE, "ort_peer.mjs")
DEFAULT_NODE_MODULES = os.path.join(ROOT, "build", "ort", "node_modules")
FALLBACK_NODE_MODULES = "/tmp/ortnode/node_modules"
CONFIGS = {"gpt2": (8, 1024), "small": (2, 256)}
D_MODEL, HEADS = 768, 12
WEIGHT_NAMES = ("W_query.weight", "W_key.weight", "W_value.weight",
                "out_proj.weight", "out_proj.bias")
VARIANTS = ("ort_contrib_attention", "ort_attention_op23", "ort_unfused")


# ---- weights, input and the PyTorch reference -------------------------------------------------

def book_multihead_attention(d_in, d_out, context_length, num_heads):
    """The book's chapter-3 MultiHeadAttention (dropout 0, qkv_bias False), as a torch module."""
    import torch
    import torch.nn as nn

    class MultiHeadAttention(nn.Module):
        def __init__(self):
            super().__init__()
            self.d_out, self.num_heads = d_out, num_heads
            self.head_dim = d_out // num_heads
            self.W_query = nn.Linear(d_in, d_out, bias=False)
            self.W_key = nn.Linear(d_in, d_out, bias=False)
            self.W_value = nn.Linear(d_in, d_out, bias=False)
            self.out_proj = nn.Linear(d_out, d_out)
            # Not persistent, so state_dict() holds exactly the five WEIGHT_NAMES.
            self.register_buffer("mask", torch.triu(torch.ones(context_length, context_length),
                                                    diagonal=1), persistent=False)

        def forward(self, x):
            b, num_tokens, _ = x.shape
            split = (b, num_tokens, self.num_heads, self.head_dim)
            queries = self.W_query(x).view(split).transpose(1, 2)
            keys = self.W_key(x).view(split).transpose(1, 2)
            values = self.W_value(x).view(split).transpose(1, 2)
            scores = queries @ keys.transpose(2, 3)
            scores.masked_fill_(self.mask.bool()[:num_tokens, :num_tokens], -torch.inf)
            weights = torch.softmax(scores / keys.shape[-1] ** 0.5, dim=-1)
            context = (weights @ values).transpose(1, 2).reshape(b, num_tokens, self.d_out)
            return self.out_proj(context)

    return MultiHeadAttention()


def make_weights(seed=123, d_model=D_MODEL, heads=HEADS):
    """Weights as torch.manual_seed(seed) + the book's module initialise them (nn.Linear's init),
    as float32 numpy arrays keyed by the PyTorch state_dict names."""
    import torch
    torch.manual_seed(seed)
    module = book_multihead_attention(d_model, d_model, 1, heads)
    return {name: tensor.detach().numpy().astype(np.float32).copy()
            for name, tensor in module.state_dict().items()}


def deterministic_input(batch, tokens, d_model=D_MODEL):
    """The x ort_peer.mjs makes when given no --input: a 32-bit LCG (seed 12345), top 24 bits
    mapped to [-1, 1). Exact in float32, so both sides hold the same numbers."""
    count = batch * tokens * d_model
    state = np.empty(count, dtype=np.uint64)
    s = 12345
    for i in range(count):  # sequential by nature; meant for check-sized inputs
        s = (s * 1664525 + 1013904223) & 0xFFFFFFFF
        state[i] = s
    return ((state >> 8).astype(np.float64) / 16777216 * 2 - 1).astype(np.float32).reshape(
        batch, tokens, d_model)


def reference_output(weights, x, heads=HEADS):
    """The book's MultiHeadAttention forward on x (B, T, d_model), computed in float64 so that
    it is a stricter oracle than any float32 implementation under test."""
    import torch
    d_model, tokens = x.shape[2], x.shape[1]
    module = book_multihead_attention(d_model, d_model, tokens, heads).double()
    module.load_state_dict({k: torch.from_numpy(np.asarray(v, dtype=np.float64))
                            for k, v in weights.items()})
    with torch.no_grad():
        return module(torch.from_numpy(np.asarray(x, dtype=np.float64))).numpy()


# ---- the ONNX graphs --------------------------------------------------------------------------

def _check_weights(weights):
    missing = [name for name in WEIGHT_NAMES if name not in weights]
    if missing:
        raise KeyError(f"weights lack {missing}")
    d_model = weights["W_query.weight"].shape[1]
    for name in WEIGHT_NAMES[:4]:
        if weights[name].shape != (d_model, d_model):
            raise ValueError(f"{name} has shape {weights[name].shape}, want ({d_model}, {d_model})")
    return d_model


def _tensor(name, array):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.ascontiguousarray(array, dtype=np.float32), name)


def _int64s(name, values):
    from onnx import numpy_helper
    return numpy_helper.from_array(np.asarray(values, dtype=np.int64), name)


def _packed_qkv(weights):
    """(d_model, 3 d_model) = [Wq^T | Wk^T | Wv^T]: nn.Linear stores (out, in) and computes x W^T,
    so one MatMul with this gives q, k, v side by side, each with its heads in 64-column blocks."""
    return np.concatenate([weights["W_query.weight"].T, weights["W_key.weight"].T,
                           weights["W_value.weight"].T], axis=1)


def _out_projection(helper, context, weights):
    """Nodes and initialisers for out = context out_proj.weight^T + out_proj.bias."""
    nodes = [helper.make_node("MatMul", [context, "out_proj_weight_t"], ["projected"]),
             helper.make_node("Add", ["projected", "out_proj_bias"], ["out"])]
    inits = [_tensor("out_proj_weight_t", weights["out_proj.weight"].T),
             _tensor("out_proj_bias", weights["out_proj.bias"])]
    return nodes, inits


def _model(helper, name, nodes, inits, batch, tokens, d_model, opsets, ir_version):
    from onnx import TensorProto
    shape = [batch, tokens, d_model]
    graph = helper.make_graph(
        nodes, name, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, shape)], initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid(d, v) for d, v in opsets],
                              producer_name="attn benchmarks/ort_peer.py")
    # Set by hand: onnx 1.12 knows neither opset 23 nor IR 11, so its defaults would be wrong and
    # its checker would reject the opset-23 graph that ORT 1.30 runs.
    model.ir_version = ir_version
    return model


def contrib_attention_model(weights, batch, tokens, heads=HEADS):
    """ORT's own fused com.microsoft Attention: packed QKV weight, zero bias, causal by
    unidirectional=1, scale 1/sqrt(head_dim) by default."""
    from onnx import helper
    d_model = _check_weights(weights)
    nodes = [helper.make_node("Attention", ["x", "qkv_weight", "qkv_bias"], ["context"],
                              domain="com.microsoft", num_heads=heads, unidirectional=1)]
    inits = [_tensor("qkv_weight", _packed_qkv(weights)),
             _tensor("qkv_bias", np.zeros(3 * d_model, dtype=np.float32))]
    proj_nodes, proj_inits = _out_projection(helper, "context", weights)
    return _model(helper, "contrib_attention", nodes + proj_nodes, inits + proj_inits,
                  batch, tokens, d_model, [("", 17), ("com.microsoft", 1)], ir_version=8)


def attention_op23_model(weights, batch, tokens, heads=HEADS):
    """The standard ONNX Attention (opset 23) on 3-D (B, T, d_model) Q, K, V, which it splits
    into heads itself given q_num_heads and kv_num_heads."""
    from onnx import helper
    d_model = _check_weights(weights)
    nodes = [
        helper.make_node("MatMul", ["x", "qkv_weight"], ["qkv"]),
        helper.make_node("Split", ["qkv"], ["q", "k", "v"], axis=2, num_outputs=3),
        helper.make_node("Attention", ["q", "k", "v"], ["context"], is_causal=1,
                         q_num_heads=heads, kv_num_heads=heads,
                         scale=1.0 / math.sqrt(d_model // heads)),
    ]
    proj_nodes, proj_inits = _out_projection(helper, "context", weights)
    return _model(helper, "attention_op23", nodes + proj_nodes,
                  [_tensor("qkv_weight", _packed_qkv(weights))] + proj_inits,
                  batch, tokens, d_model, [("", 23)], ir_version=11)


def unfused_model(weights, batch, tokens, heads=HEADS):
    """The book's computation spelled out in plain ops, with the causal mask as a (T, T)
    constant of 0 and -inf added to the scaled scores (broadcast over B and H)."""
    from onnx import helper
    d_model = _check_weights(weights)
    head_dim = d_model // heads
    mask = np.triu(np.full((tokens, tokens), -np.inf, dtype=np.float32), k=1)
    node = helper.make_node
    nodes = [node("MatMul", ["x", "qkv_weight"], ["qkv"]),
             node("Split", ["qkv", "split_sizes"], ["q_flat", "k_flat", "v_flat"], axis=2)]
    for name in ("q", "k", "v"):
        nodes.append(node("Reshape", [f"{name}_flat", "head_shape"], [f"{name}_heads"]))
    nodes += [
        node("Transpose", ["q_heads"], ["q"], perm=[0, 2, 1, 3]),      # (B, H, T, D)
        node("Transpose", ["k_heads"], ["k_t"], perm=[0, 2, 3, 1]),    # (B, H, D, T)
        node("Transpose", ["v_heads"], ["v"], perm=[0, 2, 1, 3]),      # (B, H, T, D)
        node("MatMul", ["q", "k_t"], ["scores"]),                      # (B, H, T, T)
        node("Mul", ["scores", "scale"], ["scaled"]),
        node("Add", ["scaled", "causal_mask"], ["masked"]),
        node("Softmax", ["masked"], ["probs"], axis=-1),
        node("MatMul", ["probs", "v"], ["context_heads"]),             # (B, H, T, D)
        node("Transpose", ["context_heads"], ["context_merged"], perm=[0, 2, 1, 3]),
        node("Reshape", ["context_merged", "model_shape"], ["context"]),
    ]
    inits = [_tensor("qkv_weight", _packed_qkv(weights)),
             _int64s("split_sizes", [d_model] * 3),
             _int64s("head_shape", [batch, tokens, heads, head_dim]),
             _int64s("model_shape", [batch, tokens, d_model]),
             _tensor("scale", np.array(1.0 / math.sqrt(head_dim), dtype=np.float32)),
             _tensor("causal_mask", mask)]
    proj_nodes, proj_inits = _out_projection(helper, "context", weights)
    return _model(helper, "unfused_attention", nodes + proj_nodes, inits + proj_inits,
                  batch, tokens, d_model, [("", 17)], ir_version=8)


_BUILDERS = {"ort_contrib_attention": contrib_attention_model,
             "ort_attention_op23": attention_op23_model,
             "ort_unfused": unfused_model}


def build_models(directory, weights, batch, tokens, heads=HEADS, variants=VARIANTS):
    """Write one .onnx per variant and manifest.json into directory; return the manifest dict
    {"batch", "tokens", "d_model", "heads", "models": [{"variant", "file"}]}."""
    import onnx
    os.makedirs(directory, exist_ok=True)
    d_model = _check_weights(weights)
    manifest = {"batch": batch, "tokens": tokens, "d_model": d_model, "heads": heads, "models": []}
    for variant in variants:
        model = _BUILDERS[variant](weights, batch, tokens, heads)
        file = f"{variant}.onnx"
        onnx.save(model, os.path.join(directory, file))
        manifest["models"].append({"variant": variant, "file": file})
    with open(os.path.join(directory, "manifest.json"), "w") as out:
        json.dump(manifest, out, indent=1)
    return manifest


# ---- running ORT ------------------------------------------------------------------------------

def node_modules():
    """ATTN_ORT_NODE_MODULES, else build/ort/node_modules, else the fallback when only it holds
    onnxruntime-node."""
    if "ATTN_ORT_NODE_MODULES" in os.environ:
        return os.environ["ATTN_ORT_NODE_MODULES"]
    package = "onnxruntime-node"
    if (not os.path.isdir(os.path.join(DEFAULT_NODE_MODULES, package))
            and os.path.isdir(os.path.join(FALLBACK_NODE_MODULES, package))):
        return FALLBACK_NODE_MODULES
    return DEFAULT_NODE_MODULES


def ort_available():
    """True when node and onnxruntime-node can be found (so callers can skip the peer)."""
    return (shutil.which("node") is not None
            and os.path.isdir(os.path.join(node_modules(), "onnxruntime-node")))


def run_ort(directory, batch, tokens, threads, repeats, x=None, outputs=False, variants=None,
            extra_env=None, save_optimized=False):
    """Time every model in directory (as build_models wrote it) under onnxruntime-node.

    x: optional (B, T, d_model) float32 input; without it the node script makes
    deterministic_input(B, T). outputs=True adds each variant's output array as "output".
    extra_env: variables to set (value None: unset) for the node process only.
    Returns {"ort_version", "node_version", "threads", "repeats", "batch", "tokens", "results"}
    where results is a list of {"variant", "ms" (median of the timed runs), "min_ms", "times_ms",
    "load_ms", "cpu_ms" and "wall_ms" (process CPU time and wall time over the timed runs),
    "cpu_per_wall", "output_shape"}, or {"variant", "ms": None, "error"} for a model ORT refused.
    """
    with open(os.path.join(directory, "manifest.json")) as f:
        manifest = json.load(f)
    if (manifest["batch"], manifest["tokens"]) != (batch, tokens):
        raise ValueError(f"{directory} holds models for B {manifest['batch']}, "
                         f"T {manifest['tokens']}, not B {batch}, T {tokens}")
    command = ["node", NODE_SCRIPT, "--dir", directory, "--threads", str(threads),
               "--repeats", str(repeats)]
    if x is not None:
        x = np.ascontiguousarray(x, dtype=np.float32)
        if x.shape != (batch, tokens, manifest["d_model"]):
            raise ValueError(f"x has shape {x.shape}")
        input_file = os.path.join(directory, "input.f32")
        x.astype("<f4").tofile(input_file)
        command += ["--input", input_file]
    if outputs:
        command.append("--write-outputs")
    if save_optimized:
        command.append("--save-optimized")
    if variants:
        command += ["--variants", ",".join(variants)]
    env = dict(os.environ)
    env["NODE_PATH"] = node_modules()
    for key, value in (extra_env or {}).items():
        if value is None:
            env.pop(key, None)
        else:
            env[key] = value
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"ort_peer.mjs failed ({done.returncode}):\n{done.stderr[-4000:]}")
    report = json.loads(done.stdout.strip().splitlines()[-1])
    if outputs:
        for row in report["results"]:
            if "output_file" in row:
                row["output"] = np.fromfile(row["output_file"], dtype="<f4").reshape(
                    row["output_shape"])
    return report


def ort_outputs(directory, x, threads=1):
    """{variant: output array} of every model in directory for input x, one untimed run each;
    raises if a variant fails to run."""
    report = run_ort(directory, x.shape[0], x.shape[1], threads, 0, x=x, outputs=True)
    failed = {r["variant"]: r["error"] for r in report["results"] if "error" in r}
    if failed:
        raise RuntimeError(f"ORT could not run {failed}")
    return {r["variant"]: r["output"] for r in report["results"]}


def check(batch=2, tokens=7, threads=1, tolerance=1e-4, seed=123, directory=None):
    """Every ORT variant against the PyTorch reference, at GPT-2's d_model and heads and a small
    B and T (7 is not a multiple of any block size, so edge tiles are exercised).
    Returns {variant: max abs error}; raises AssertionError if one exceeds tolerance."""
    weights = make_weights(seed)
    x = np.random.default_rng(seed).standard_normal((batch, tokens, D_MODEL)).astype(np.float32)
    expected = reference_output(weights, x)
    with tempfile.TemporaryDirectory(prefix="ort_peer_check_") as scratch:
        where = directory or scratch
        build_models(where, weights, batch, tokens)
        got = ort_outputs(where, x, threads)
    errors = {variant: float(np.max(np.abs(out.astype(np.float64) - expected)))
              for variant, out in got.items()}
    bad = {v: e for v, e in errors.items() if not e <= tolerance}  # `not <=` also catches NaN
    if bad:
        raise AssertionError(f"ORT differs from the PyTorch reference by more than "
                             f"{tolerance}: {bad}")
    return errors


# ---- what ORT cannot run --------------------------------------------------------------------

def memory_available_bytes():
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def causal_memory(batch=1, tokens=32768, heads=HEADS, d_model=D_MODEL):
    """Memory ORT's causal paths need for the float32 (B, H, T, T) attention scores, which all
    three graphs materialise in full. Measured with ORT 1.30 at B 1, T 4096 (scores 0.8 GB): peak
    RSS 1.1 GB for both Attention ops, 3.6 GB for the unfused graph, which holds several
    (B, H, T, T) intermediates at once plus its (T, T) mask constant; so score_bytes is a lower
    bound for every variant. Returns a dict with the bytes, whether they fit in this machine's
    available memory and a row for a report table:
    {"variant": "ort (all variants)", "ms": None, "note": "cannot run: ..."}."""
    scores = batch * heads * tokens * tokens * 4
    mask = tokens * tokens * 4
    available = memory_available_bytes()
    fits = available is not None and scores < available
    note = (f"needs {scores / 1e9:.1f} GB for the B*H*T*T float32 scores "
            f"(B {batch}, H {heads}, T {tokens})")
    if available is not None:
        note += f"; {available / 1e9:.1f} GB available"
    return {"batch": batch, "tokens": tokens, "heads": heads, "d_model": d_model,
            "score_bytes": scores, "unfused_mask_bytes": mask, "available_bytes": available,
            "fits": fits,
            "row": {"variant": "ort (all variants)", "ms": None,
                    "note": ("may run: " if fits else "cannot run: ") + note}}


# ---- command line ---------------------------------------------------------------------------

def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--time", action="store_true", help="time instead of the self-test")
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpt2")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--output", default=None,
                        help="folder for the .onnx files (default build/ort_peer/CONFIG)")
    args = parser.parse_args()
    if not ort_available():
        sys.exit(f"onnxruntime-node not found in {node_modules()} (scripts/compare.sh installs it; "
                 "or set ATTN_ORT_NODE_MODULES)")

    errors = check()
    print("check (B 2, T 7, d_model 768, 12 heads) max abs error vs PyTorch float64:")
    for variant, error in errors.items():
        print(f"  {variant:24s} {error:.2e}")
    if not args.time:
        return

    batch, tokens = CONFIGS[args.config]
    directory = args.output or os.path.join(ROOT, "build", "ort_peer", args.config)
    build_models(directory, make_weights(), batch, tokens)
    report = run_ort(directory, batch, tokens, args.threads, args.repeats)
    print(f"ONNX Runtime {report['ort_version']} (node {report['node_version']}), "
          f"B {batch}, T {tokens}, {args.threads} threads, median of {args.repeats}:")
    for row in report["results"]:
        if row.get("error"):
            print(f"  {row['variant']:24s} failed: {row['error']}")
        else:
            print(f"  {row['variant']:24s} {row['ms']:9.2f} ms  (min {row['min_ms']:.2f}, "
                  f"CPU/wall {row['cpu_per_wall']:.2f})")
    print("  " + causal_memory()["row"]["note"] + " (B 1, T 32768)")


if __name__ == "__main__":
    main()
