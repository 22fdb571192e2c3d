#!/usr/bin/python3
"""attn against PyTorch and ONNX Runtime on the same machine, same shapes, same threads.

Times PyTorch versions of the multi-head attention variants of the book's chapter 3 and its
bonus notebook (our own re-implementations, below), ONNX Runtime's attention graphs
(benchmarks/ort_peer.py, forward only) and attn's C++ benchmark binaries, measures the machine's
sgemm rate in the same run, and writes a Markdown table and a bar chart.

    scripts/compare.sh                                   # installs, builds, then runs this
    /usr/bin/python3 benchmarks/compare.py               # GPT-2 small: B 8, T 1024, 2 threads
    /usr/bin/python3 benchmarks/compare.py --config small --repeats 2 --no-long-context
    /usr/bin/python3 benchmarks/compare.py --mode training   # forward + backward

The table (.md) and chart (.png) go to build/compare/ unless `--output DIR` says otherwise; the
results committed in benchmarks/results/ (and pasted into README.md) are updated on purpose, on a
quiet machine, with `--output benchmarks/results`.

What is timed:
- PyTorch: each variant in a child process, given its best OpenBLAS: each OPENBLAS_CORETYPE worth
  trying on this CPU is probed and the fastest is used; the report says which. With Debian's
  reference BLAS PyTorch is ~20x slower, so the script refuses to compare and says how to install
  OpenBLAS (libopenblas0-pthread). The child also times torch.mm at 1024^3 (an sgemm rate).
- ONNX Runtime (forward mode): three graphs with the weights of torch.manual_seed(123) and the
  book's MultiHeadAttention, which attn's Generator(123) draws bit for bit. Before timing, each
  graph's output on a small input (B 2, T 7) is checked against attn's (attn_mha_forward_tool):
  the script refuses to time if they differ by more than 1e-4.
- attn: bench_attention / bench_training (Google Benchmark), run twice, once with the
  environment as it is (OPENBLAS_CORETYPE=Haswell on this project's machines) and once with
  OPENBLAS_CORETYPE and OPENBLAS_L2_SIZE removed from that child's environment; both sets of
  rows are shown, labelled. Then, unless --no-long-context, B 1, T 32768 alone in its own
  process for its peak RSS, beside a row saying why ONNX Runtime cannot run it.
- sgemm: bench_attention's BM_Sgemm (Eigen's threaded product) and BM_Sgemm_Attn (attn's
  parallel_gemm) at 1 and 2 threads, and torch.mm. "% of sgemm" divides each row's GFLOP/s by the
  best of these at the run's thread count.

In training mode PyTorch runs forward and autograd's backward of sum(out * G) for a fixed G
(train mode, dropout 0, gradients of the input and every parameter) and attn runs forward with a
cache and backward (benchmarks/training_bench.cpp); ONNX Runtime has no training here.

Needs Debian's python3-torch, python3-matplotlib and python3-onnx, node with onnxruntime-node
(scripts/compare.sh installs all of these) and the Release build of the benchmarks, which it
builds when missing.
"""
import argparse
import datetime
import json
import os
import platform
import re
import statistics
import subprocess
import sys
import tempfile
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(ROOT, "benchmarks"))
CONFIGS = {"gpt2": (8, 1024), "small": (2, 256)}
LONG_CONTEXT = (1, 32768)
EMBED, HEADS = 768, 12
SGEMM_N = 1024
BUILD = os.path.join(ROOT, "build", "release")
CHECK_SHAPE = (2, 7)  # 7 is no multiple of any tile size: edge tiles are exercised
CHECK_TOLERANCE = 1e-4
HASWELL = "Haswell"  # the OPENBLAS_CORETYPE of this project's machines


def flops(batch, tokens, out_projection=True):
    """Useful work, as the C++ benchmark counts it: projections + causal attention products."""
    d = EMBED
    total = 2.0 * batch * tokens * d * 3 * d + 4.0 * batch * d * tokens * (tokens + 1) / 2
    return total + (2.0 * batch * tokens * d * d if out_projection else 0.0)


# ---- PyTorch side (runs in a child process so OPENBLAS_CORETYPE takes effect) ----------------

def torch_variants(batch, tokens):
    import torch
    import torch.nn as nn

    class CausalHead(nn.Module):
        def __init__(self, d_in, d_out, ctx):
            super().__init__()
            self.W_query = nn.Linear(d_in, d_out, bias=False)
            self.W_key = nn.Linear(d_in, d_out, bias=False)
            self.W_value = nn.Linear(d_in, d_out, bias=False)
            self.register_buffer("mask", torch.triu(torch.ones(ctx, ctx), 1))

        def forward(self, x):
            T = x.shape[1]
            q, k, v = self.W_query(x), self.W_key(x), self.W_value(x)
            s = (q @ k.transpose(1, 2)).masked_fill(self.mask.bool()[:T, :T], -torch.inf)
            return torch.softmax(s / k.shape[-1] ** 0.5, dim=-1) @ v

    class Wrapper(nn.Module):
        def __init__(self):
            super().__init__()
            self.heads = nn.ModuleList([CausalHead(EMBED, EMBED // HEADS, tokens) for _ in range(HEADS)])

        def forward(self, x):
            return torch.cat([h(x) for h in self.heads], dim=-1)

    class Ch03MHA(nn.Module):
        def __init__(self):
            super().__init__()
            self.W_query = nn.Linear(EMBED, EMBED, bias=False)
            self.W_key = nn.Linear(EMBED, EMBED, bias=False)
            self.W_value = nn.Linear(EMBED, EMBED, bias=False)
            self.out_proj = nn.Linear(EMBED, EMBED)
            self.register_buffer("mask", torch.triu(torch.ones(tokens, tokens), 1))

        def forward(self, x):
            b, T, _ = x.shape
            split = lambda t: t.view(b, T, HEADS, EMBED // HEADS).transpose(1, 2)
            q, k, v = split(self.W_query(x)), split(self.W_key(x)), split(self.W_value(x))
            s = (q @ k.transpose(2, 3)).masked_fill(self.mask.bool()[:T, :T], -torch.inf)
            w = torch.softmax(s / k.shape[-1] ** 0.5, dim=-1)
            return self.out_proj((w @ v).transpose(1, 2).contiguous().view(b, T, EMBED))

    class CombinedQKV(nn.Module):
        def __init__(self):
            super().__init__()
            self.qkv = nn.Linear(EMBED, 3 * EMBED, bias=False)
            self.proj = nn.Linear(EMBED, EMBED)
            self.register_buffer("mask", torch.triu(torch.ones(tokens, tokens), 1))

        def forward(self, x):
            b, T, _ = x.shape
            q, k, v = self.qkv(x).view(b, T, 3, HEADS, EMBED // HEADS).permute(2, 0, 3, 1, 4)
            s = (q @ k.transpose(-2, -1)).masked_fill(self.mask.bool()[:T, :T], -torch.inf)
            w = torch.softmax(s / (EMBED // HEADS) ** 0.5, dim=-1)
            return self.proj((w @ v).transpose(1, 2).contiguous().view(b, T, EMBED))

    class Einsum(nn.Module):
        def __init__(self):
            super().__init__()
            bound = 1 / EMBED ** 0.5
            self.W_query = nn.Parameter(torch.empty(EMBED, EMBED).uniform_(-bound, bound))
            self.W_key = nn.Parameter(torch.empty(EMBED, EMBED).uniform_(-bound, bound))
            self.W_value = nn.Parameter(torch.empty(EMBED, EMBED).uniform_(-bound, bound))
            self.out_proj = nn.Linear(EMBED, EMBED)
            self.register_buffer("mask", torch.triu(torch.ones(tokens, tokens), 1))

        def forward(self, x):
            b, T, _ = x.shape
            h, d = HEADS, EMBED // HEADS
            q = torch.einsum("bnd,di->bni", x, self.W_query).view(b, T, h, d).transpose(1, 2)
            k = torch.einsum("bnd,di->bni", x, self.W_key).view(b, T, h, d).transpose(1, 2)
            v = torch.einsum("bnd,di->bni", x, self.W_value).view(b, T, h, d).transpose(1, 2)
            s = torch.einsum("bhnd,bhmd->bhnm", q, k).masked_fill(self.mask.bool()[:T, :T], -torch.inf)
            w = torch.softmax(s / d ** 0.5, dim=-1)
            return self.out_proj(torch.einsum("bhnm,bhmd->bhnd", w, v).transpose(1, 2).reshape(b, T, EMBED))

    mha = nn.MultiheadAttention(EMBED, HEADS, bias=False, batch_first=True)
    causal = torch.triu(torch.ones(tokens, tokens, dtype=torch.bool), 1)
    variants = [
        ("PyTorch Ch03 MultiHeadAttentionWrapper", Wrapper(), None, False),
        ("PyTorch Ch03 MultiHeadAttention", Ch03MHA(), None, True),
        ("PyTorch MultiHeadAttentionCombinedQKV", CombinedQKV(), None, True),
        ("PyTorch MHA with einsum", Einsum(), None, True),
        ("PyTorch nn.MultiheadAttention", mha, lambda x: mha(x, x, x, attn_mask=causal)[0], True),
        ("PyTorch nn.MultiheadAttention, need_weights=False", mha,
         lambda x: mha(x, x, x, attn_mask=causal, need_weights=False)[0], True),
    ]
    return [(name, module, call or module, out_proj) for name, module, call, out_proj in variants]


def sgemm_rate(threads, repeats):
    """torch.mm of two (N, N) float32 matrices: GFLOP/s of the median of `repeats` timed calls."""
    import torch
    torch.set_num_threads(threads)
    a, b = torch.rand(SGEMM_N, SGEMM_N), torch.rand(SGEMM_N, SGEMM_N)
    for _ in range(3):
        torch.mm(a, b)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        torch.mm(a, b)
        times.append(time.perf_counter() - start)
    return 2.0 * SGEMM_N ** 3 / statistics.median(times) / 1e9


def torch_child(batch, tokens, threads, repeats, only_first, training):
    import torch
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    x = torch.rand(batch, tokens, EMBED, requires_grad=training)
    grad_out = torch.rand(batch, tokens, EMBED)
    results = []

    def step(module, call):
        if not training:
            return call(x)
        module.zero_grad(set_to_none=False)
        x.grad = None
        call(x).backward(grad_out)

    with torch.set_grad_enabled(training):
        for name, module, call, out_projection in torch_variants(batch, tokens):
            if only_first and "need_weights=False" not in name:
                continue
            module.train(training)  # no variant has dropout > 0: train mode only enables autograd paths
            step(module, call)  # warm-up
            times = []
            for _ in range(repeats):
                start = time.perf_counter()
                step(module, call)
                times.append(time.perf_counter() - start)
            work = flops(batch, tokens, out_projection) * (3 if training else 1)
            results.append({"variant": name, "kind": "torch", "ms": 1000 * statistics.median(times),
                            "gflop": work / 1e9})
    report = {"torch": torch.__version__, "results": results}
    if not only_first:
        report["sgemm_gflops"] = sgemm_rate(threads, max(10, repeats))
    print(json.dumps(report))


def run_torch(args, coretype, probe=False):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    if coretype:
        env["OPENBLAS_CORETYPE"] = coretype
    cmd = [sys.executable, __file__, "--child", "--config", args.config, "--threads", str(args.threads),
           "--mode", args.mode, "--repeats", str(2 if probe else args.repeats)]
    if probe:
        cmd.append("--probe")
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def blas_in_use():
    """Which BLAS torch's process maps: OpenBLAS, or Debian's reference BLAS."""
    code = ("import torch;a=torch.rand(64,64);a@a;"
            "print(''.join(l for l in open('/proc/self/maps') if 'blas' in l))")
    maps = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True).stdout
    if "openblas" in maps:
        return "openblas"
    if "blas" in maps:
        return "reference"
    return "unknown"


# ---- the machine ----------------------------------------------------------------------------------

def command_output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True).stdout
    except OSError:
        return ""


def cpu_flags():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    return set(line.split(":", 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_line():
    model = next((line.split(":", 1)[1].strip() for line in command_output(["lscpu"]).splitlines()
                  if line.startswith("Model name")), platform.processor() or "unknown CPU")
    flags = cpu_flags()
    wanted = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16"]
    present = [f for f in wanted if f in flags]
    absent = [f for f in wanted if f not in flags]
    return f"{model}, {os.cpu_count()} logical CPUs; flags: {' '.join(present) or 'none of note'}" + (
        f" (absent: {' '.join(absent)})" if absent else "")


def march_native():
    """What g++ resolves -march=native to on this CPU."""
    match = re.search(r"^\s*-march=\s+(\S+)", command_output(["g++", "-march=native", "-Q", "--help=target"]),
                      re.MULTILINE)
    return match.group(1) if match else "?"


def eigen_version():
    try:
        text = open("/usr/include/eigen3/Eigen/src/Core/util/Macros.h").read()
    except OSError:
        return "?"
    parts = [re.search(rf"#define EIGEN_{p}_VERSION\s+(\d+)", text) for p in ("WORLD", "MAJOR", "MINOR")]
    return ".".join(m.group(1) for m in parts) if all(parts) else "?"


def links_blas(binary):
    """The BLAS libraries ldd lists for binary (empty: it links none)."""
    return [line.split()[0] for line in command_output(["ldd", binary]).splitlines()
            if re.search(r"blas|lapack|mkl", line, re.IGNORECASE)]


def attn_uses_cblas():
    try:
        return bool(re.search(r"^ATTN_CBLAS:BOOL=ON", open(os.path.join(BUILD, "CMakeCache.txt")).read(),
                              re.MULTILINE))
    except OSError:
        return False


# ---- attn side ------------------------------------------------------------------------------------

ATTN_VARIANTS = {
    "BM_MHA_Wrapper_Reference": ("attn MultiHeadAttentionWrapper (reference kernel)", False),
    "BM_MHA_Reference": ("attn MultiHeadAttention (reference kernel)", True),
    "BM_MHA_CombinedQKV_Reference": ("attn MultiHeadAttentionCombinedQKV (reference kernel)", True),
    "BM_MHA_Fused": ("attn MultiHeadAttention (fused kernel)", True),
    "BM_MHA_Fused_BFloat16": ("attn MultiHeadAttention (fused kernel, bfloat16 arithmetic)", True),
}
ATTN_TRAINING_VARIANTS = {
    "BM_MHA_ForwardBackward_Reference": ("attn MultiHeadAttention (reference kernel)", True),
    "BM_MHA_ForwardBackward_Fused": ("attn MultiHeadAttention (fused kernel)", True),
    "BM_MHA_ForwardBackward_Fused_BFloat16": ("attn MultiHeadAttention (fused kernel, bfloat16 arithmetic)", True),
    "BM_MHA_ForwardBackward_Fused_Dropout": ("attn MultiHeadAttention (fused kernel, dropout 0.1)", True),
    "BM_MHA_CombinedQKV_ForwardBackward_Fused": ("attn MultiHeadAttentionCombinedQKV (fused kernel)", True),
}
SGEMM_VARIANTS = {"BM_Sgemm": "Eigen's threaded product (BM_Sgemm)",
                  "BM_Sgemm_Attn": "attn's parallel_gemm (BM_Sgemm_Attn)"}
TARGETS = ("bench_attention", "bench_training", "attn_mha_forward_tool")


def binary(target):
    return os.path.join(BUILD, "benchmarks", target)


def ensure_built():
    if all(os.path.exists(binary(t)) for t in TARGETS):
        return
    subprocess.run(["cmake", "--preset", "release"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    subprocess.run(["cmake", "--build", "--preset", "release", "--target", *TARGETS], cwd=ROOT, check=True)


def run_gbench(target, pattern, repeats, env=None):
    """Google Benchmark's JSON report of `target` for the benchmarks matching `pattern`."""
    command = [binary(target), f"--benchmark_filter={pattern}", "--benchmark_format=json"]
    if repeats > 1:
        command.append(f"--benchmark_repetitions={repeats}")
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"{target} failed ({done.returncode}):\n{done.stderr[-4000:]}")
    return json.loads(done.stdout)


def iterations(report, name):
    """The per-repetition entries of benchmark `name` (its aggregates left out)."""
    return [b for b in report["benchmarks"]
            if b["name"].startswith(name + "/") and b.get("run_type") == "iteration"]


def median_of(entries, key):
    values = [e[key] for e in entries if key in e]
    return statistics.median(values) if values else None


def attn_row(label, entries, work_gflop, peak=False):
    row = {"variant": label, "kind": "attn", "ms": median_of(entries, "real_time"), "gflop": work_gflop}
    cpu = median_of(entries, "cpu_time")
    if cpu is not None and row["ms"]:
        row["cpu_per_real"] = cpu / row["ms"]
    if peak:
        row["peak_rss_mib"] = median_of(entries, "peak_RSS_MiB")
    return row


def attn_env(coretype):
    """The attn child's environment: OPENBLAS_CORETYPE set to coretype, or removed with
    OPENBLAS_L2_SIZE when coretype is None."""
    env = dict(os.environ)
    if coretype is None:
        env.pop("OPENBLAS_CORETYPE", None)
        env.pop("OPENBLAS_L2_SIZE", None)
    else:
        env["OPENBLAS_CORETYPE"] = coretype
    return env


def coretype_label(coretype):
    return f"[OPENBLAS_CORETYPE={coretype}]" if coretype else "[OPENBLAS_CORETYPE unset]"


def run_attn(args, batch, tokens, coretype):
    training = args.mode == "training"
    target = "bench_training" if training else "bench_attention"
    variants = ATTN_TRAINING_VARIANTS if training else ATTN_VARIANTS
    pattern = "|".join(f"^{name}/B:{batch}/T:{tokens}/threads:{args.threads}/" for name in variants)
    report = run_gbench(target, pattern, args.repeats, attn_env(coretype))
    rows = []
    for name, (label, out_projection) in variants.items():
        entries = iterations(report, name)
        if entries:
            work = flops(batch, tokens, out_projection) * (3 if training else 1)
            rows.append(attn_row(f"{label} {coretype_label(coretype)}", entries, work / 1e9))
    return rows, report.get("context", {})


def run_sgemm(args):
    """{(benchmark name, threads): GFLOP/s} of bench_attention's sgemm benchmarks."""
    report = run_gbench("bench_attention", "^BM_Sgemm", max(args.repeats, 3))
    rates = {}
    for name in SGEMM_VARIANTS:
        for threads in (1, 2):
            entries = iterations(report, f"{name}/N:{SGEMM_N}/threads:{threads}")
            rate = median_of(entries, "GFLOP/s")
            if rate is not None:
                rates[(name, threads)] = rate
    return rates


def run_long_context(args):
    """attn at B 1, T 32768 in its own process (its peak RSS is the process's)."""
    batch, tokens = LONG_CONTEXT
    if args.mode == "training":
        report = run_gbench("bench_training", "LongContext", 1)
        entries = iterations(report, "BM_MHA_ForwardBackward_Fused_LongContext")
        label = "attn MultiHeadAttention (fused kernel), forward + backward"
        work = 3 * flops(batch, tokens)
    else:
        report = run_gbench("bench_attention", "BM_MHA_Fused_LongContext", 1)
        entries = iterations(report, "BM_MHA_Fused_LongContext")
        label = "attn MultiHeadAttention (fused kernel), forward"
        work = flops(batch, tokens)
    if not entries:
        raise RuntimeError("the long-context benchmark reported nothing")
    threads = int(entries[0].get("threads", 2))
    row = attn_row(f"{label}, B {batch}, T {tokens} ({threads} threads)", entries, work / 1e9, peak=True)
    row["long_context"] = True
    return row


# ---- ONNX Runtime side ----------------------------------------------------------------------------

def attn_forward(x):
    """attn's output for x (B, T, 768) from attn_mha_forward_tool (seeded layer, fused path)."""
    with tempfile.TemporaryDirectory(prefix="attn_compare_") as scratch:
        given, got = os.path.join(scratch, "x.f32"), os.path.join(scratch, "out.f32")
        np.ascontiguousarray(x, dtype="<f4").tofile(given)
        subprocess.run([binary("attn_mha_forward_tool"), str(x.shape[0]), str(x.shape[1]), given, got],
                       check=True)
        return np.fromfile(got, dtype="<f4").reshape(x.shape)


def check_ort(ort_peer):
    """Max abs difference of each ORT graph's output from attn's on a small input, and attn's
    from the float64 PyTorch reference; exits if any exceeds CHECK_TOLERANCE."""
    weights = ort_peer.make_weights(seed=123)
    x = ort_peer.deterministic_input(*CHECK_SHAPE)
    ours = attn_forward(x).astype(np.float64)
    with tempfile.TemporaryDirectory(prefix="ort_check_") as scratch:
        ort_peer.build_models(scratch, weights, *CHECK_SHAPE)
        theirs = ort_peer.ort_outputs(scratch, x)
    errors = {variant: float(np.max(np.abs(out.astype(np.float64) - ours)))
              for variant, out in theirs.items()}
    reference = float(np.max(np.abs(ours - ort_peer.reference_output(weights, x))))
    bad = {v: e for v, e in errors.items() if not e <= CHECK_TOLERANCE}  # `not <=` catches NaN too
    if bad or not reference <= CHECK_TOLERANCE:
        sys.exit(f"ORT and attn disagree on B {CHECK_SHAPE[0]}, T {CHECK_SHAPE[1]} (max abs error "
                 f"{errors}; attn vs float64 PyTorch {reference:.2e}): not timing")
    return errors, reference


ORT_LABELS = {"ort_contrib_attention": "ONNX Runtime com.microsoft Attention (fused op)",
              "ort_attention_op23": "ONNX Runtime Attention (opset 23, is_causal)",
              "ort_unfused": "ONNX Runtime unfused graph (MatMul, Softmax, ...)"}


def run_ort(args, ort_peer, batch, tokens):
    directory = os.path.join(ROOT, "build", "ort_peer", args.config)
    ort_peer.build_models(directory, ort_peer.make_weights(seed=123), batch, tokens)
    report = ort_peer.run_ort(directory, batch, tokens, args.threads, args.repeats)
    rows = []
    for result in report["results"]:
        label = ORT_LABELS.get(result["variant"], result["variant"])
        if result.get("error"):
            rows.append({"variant": label, "kind": "ort", "ms": None, "note": f"failed: {result['error']}"})
            continue
        rows.append({"variant": label, "kind": "ort", "ms": result["ms"],
                     "gflop": flops(batch, tokens) / 1e9, "cpu_per_real": result.get("cpu_per_wall")})
    return rows, report


def ort_library():
    """libonnxruntime of the onnxruntime-node in use (for its ldd)."""
    import ort_peer
    for folder, _, files in os.walk(os.path.join(ort_peer.node_modules(), "onnxruntime-node", "bin")):
        if "linux" in folder and "x64" in folder:
            for file in files:
                if file.startswith("libonnxruntime.so"):
                    return os.path.join(folder, file)
    return None


# ---- report ---------------------------------------------------------------------------------------

def gflops(row):
    return row["gflop"] / (row["ms"] / 1000) if row.get("ms") and row.get("gflop") else None


def fmt(value, spec):
    return "" if value is None else format(value, spec)


def write_report(args, batch, tokens, rows, notes, sgemm_best):
    training = args.mode == "training"
    same_size = [r for r in rows if r.get("ms") and not r.get("long_context")]
    torch_best = min((r["ms"] for r in same_size if r["kind"] == "torch"), default=None)
    ort_best = min((r["ms"] for r in same_size if r["kind"] == "ort"), default=None)
    what = "Forward + backward (training step)" if training else "Forward"
    lines = [f"{what}, causal, float32, B {batch}, T {tokens}, d_in = d_out = {EMBED}, {HEADS} heads, "
             f"{args.threads} thread(s); median of {args.repeats} runs.", ""]
    lines += [f"- {note}" for note in notes]
    header = ["variant", "ms", "GFLOP/s", "% of sgemm", "vs PyTorch best"]
    if not training:
        header.append("vs ORT best")
    header.append("peak RSS MiB")
    lines += ["", "| " + " | ".join(header) + " |",
              "|---|" + "---:|" * (len(header) - 1)]
    for row in rows:
        rate = gflops(row)
        comparable = row.get("ms") and not row.get("long_context")
        cells = [row["variant"],
                 fmt(row.get("ms"), ".0f") if row.get("ms") else row.get("note", ""),
                 fmt(rate, ".0f"),
                 fmt(rate and 100 * rate / sgemm_best, ".0f") + ("%" if rate else ""),
                 f"{torch_best / row['ms']:.2f}x" if comparable and torch_best else ""]
        if not training:
            cells.append(f"{ort_best / row['ms']:.2f}x" if comparable and ort_best else "")
        cells.append(fmt(row.get("peak_rss_mib"), ".0f"))
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines) + "\n"
    os.makedirs(args.output, exist_ok=True)
    mode = "training_" if training else ""
    stem = os.path.join(args.output, f"compare_{mode}{args.config}_{args.threads}t")
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(text)
    write_chart(args, batch, tokens, rows, sgemm_best, stem, what)
    print(f"wrote {stem}.md and {stem}.png")


COLOURS = {"torch": "#8c8c8c", "ort": "#ff7f0e", "attn": "#1f77b4", "attn_unset": "#7fb2e0"}


def memory_gb(text):
    match = re.search(r"[\d.]+ GB", text)
    return match.group(0) if match else "too much memory"


def write_chart(args, batch, tokens, rows, sgemm_best, stem, what):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (apt-get install python3-matplotlib): no chart written")
        return
    rates = [gflops(r) or 0.0 for r in rows]
    colours = [COLOURS["attn_unset"] if r["kind"] == "attn" and "unset]" in r["variant"] else COLOURS[r["kind"]]
               for r in rows]
    fig, ax = plt.subplots(figsize=(13, 0.45 * len(rows) + 1.8))
    ax.barh(range(len(rows)), rates, color=colours)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r.get("chart_label", r["variant"]) for r in rows], fontsize=8)
    for i, (row, rate) in enumerate(zip(rows, rates)):
        if row.get("ms"):
            text = f" {row['ms']:.0f} ms, {100 * rate / sgemm_best:.0f}% of sgemm"
            if row.get("peak_rss_mib"):
                text += f", peak RSS {row['peak_rss_mib']:.0f} MiB"
        else:
            text = " " + row.get("chart_note", row.get("note", ""))
        ax.text(rate, i, text, va="center", fontsize=7)
    ax.axvline(sgemm_best, color="black", linestyle="--", linewidth=0.8)
    ax.text(sgemm_best, -0.8, f" sgemm {sgemm_best:.0f} GFLOP/s", fontsize=7, va="bottom")
    ax.set_xlim(0, max(rates + [sgemm_best]) * 1.45)
    ax.invert_yaxis()
    ax.set_xlabel("GFLOP/s (useful work: causal half of the scores), higher is better")
    kind = "training step" if args.mode == "training" else "forward"
    fig.suptitle(f"Causal MHA {kind}, B {batch} x T {tokens} x {EMBED}, {HEADS} heads, float32, "
                 f"{args.threads} thread(s)\nPyTorch grey, ONNX Runtime orange, attn blue "
                 f"(light: OPENBLAS_CORETYPE unset); dashed: the machine's sgemm rate", fontsize=9)
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=110)
    plt.close(fig)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpt2")
    parser.add_argument("--threads", type=int, choices=[1, 2], default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mode", choices=["forward", "training"], default="forward")
    parser.add_argument("--output", "--out", dest="output", default=os.path.join(ROOT, "build", "compare"),
                        help="directory for the .md table and .png chart (default: build/compare; "
                             "the committed results: benchmarks/results)")
    parser.add_argument("--no-long-context", action="store_true",
                        help="skip attn's B 1, T 32768 rows (forward ~10-30 s, forward + backward ~1 min)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch, tokens = CONFIGS[args.config]
    if args.child:
        torch_child(batch, tokens, args.threads, args.repeats, args.probe, args.mode == "training")
        return
    training = args.mode == "training"

    import ort_peer
    if not training and not ort_peer.ort_available():
        sys.exit(f"onnxruntime-node not found in {ort_peer.node_modules()}: scripts/compare.sh installs it")
    blas = blas_in_use()
    if blas == "reference":
        sys.exit("PyTorch is using Debian's reference BLAS, which is ~20x slower than OpenBLAS; a "
                 "fair comparison needs `apt-get install libopenblas0-pthread` first.")
    ensure_built()
    started = datetime.datetime.now(datetime.timezone.utc)

    # Correctness before any timing: ORT's graphs against attn on the same weights.
    if not training:
        ort_errors, attn_reference = check_ort(ort_peer)

    # PyTorch with its best OpenBLAS kernels: probe the core types worth trying here.
    candidates = [""] + (["SkylakeX", "Cooperlake"] if "avx512f" in cpu_flags() else []) + ["Haswell", "Zen"]
    probes = {core: run_torch(args, core, probe=True)["results"][0]["ms"] for core in candidates}
    best_core = min(probes, key=probes.get)
    torch_report = run_torch(args, best_core)
    rows = list(torch_report["results"])

    ort_report = None
    if not training:
        ort_rows, ort_report = run_ort(args, ort_peer, batch, tokens)
        rows += ort_rows

    # attn twice: the environment's OPENBLAS_CORETYPE (Haswell when the environment has none, as
    # this project's machines set it), then with it unset.
    env_core = os.environ.get("OPENBLAS_CORETYPE")
    first_core = env_core or HASWELL
    attn_rows, context = run_attn(args, batch, tokens, first_core)
    unset_rows, _ = run_attn(args, batch, tokens, None)
    rows += attn_rows + unset_rows

    sgemm = run_sgemm(args)
    if not args.no_long_context:
        rows.append(run_long_context(args))
        if not training:
            verdict, why = ort_peer.causal_memory(*LONG_CONTEXT)["row"]["note"].split(": ", 1)
            rows.append({"variant": f"ONNX Runtime (all variants), B {LONG_CONTEXT[0]}, T {LONG_CONTEXT[1]}: "
                                    f"{why}", "kind": "ort", "ms": None, "long_context": True,
                         "note": verdict, "chart_label": f"ONNX Runtime, B {LONG_CONTEXT[0]}, T {LONG_CONTEXT[1]}",
                         "chart_note": f"{verdict}: needs {memory_gb(why)} for the scores"})

    # The machine's sgemm rate: the best measured at this run's thread count.
    measured = {f"{SGEMM_VARIANTS[name]}, {threads} thread(s)": rate for (name, threads), rate in sgemm.items()}
    measured[f"PyTorch torch.mm (OpenBLAS{', ' + best_core if best_core else ''}), {args.threads} thread(s)"] = \
        torch_report["sgemm_gflops"]
    same_threads = {k: v for k, v in measured.items() if k.endswith(f", {args.threads} thread(s)")}
    best_name = max(same_threads, key=same_threads.get)
    sgemm_best = same_threads[best_name]

    notes = [f"CPU: {cpu_line()}",
             f"Date: {started:%Y-%m-%d %H:%M} UTC; threads: {args.threads} (torch.set_num_threads, "
             f"ORT intra-op threads, attn::set_num_threads)",
             f"Flags: attn built with g++ -O3 -march=native (g++ resolves it to -march={march_native()}), "
             f"OpenMP, {'CBLAS products (ATTN_CBLAS=ON)' if attn_uses_cblas() else 'Eigen products (ATTN_CBLAS off)'}",
             f"Versions: PyTorch {torch_report['torch']}, "
             + (f"ONNX Runtime {ort_report['ort_version']} (onnxruntime-node, node {ort_report['node_version']}), "
                if ort_report else "")
             + f"Eigen {eigen_version()}, {command_output(['g++', '--version']).splitlines()[0]}",
             f"Machine sgemm rate ({SGEMM_N}^3 float32, measured in this run): {sgemm_best:.0f} GFLOP/s, "
             f"{best_name}, the best at {args.threads} thread(s); every rate measured: "
             + "; ".join(f"{k} {v:.0f}" for k, v in measured.items()),
             "PyTorch BLAS: {} with {}; probe (nn.MultiheadAttention, need_weights=False): {}".format(
                 blas, f"OPENBLAS_CORETYPE={best_core}" if best_core else "OpenBLAS's own core detection",
                 ", ".join(f"{c or 'auto'} {ms:.0f} ms" for c, ms in probes.items()))]
    if not training:
        notes.append(f"Check before timing (B {CHECK_SHAPE[0]}, T {CHECK_SHAPE[1]}, the same seeded weights): "
                     "max abs error of ONNX Runtime vs attn: "
                     + ", ".join(f"{v} {e:.1e}" for v, e in ort_errors.items())
                     + f"; attn vs float64 PyTorch {attn_reference:.1e} (tolerance {CHECK_TOLERANCE:g})")
    blas_libs = links_blas(binary("bench_training" if training else "bench_attention"))
    source = "as the environment sets it" if env_core else "set by compare.py: the environment has none"
    notes.append(f"attn rows twice: {coretype_label(first_core)} ({source}) and with OPENBLAS_CORETYPE and "
                 "OPENBLAS_L2_SIZE removed from the benchmark's environment; "
                 + (f"the binary links {', '.join(blas_libs)}" if blas_libs else
                    "the binary links no BLAS (ldd), so the two differ only by noise"))
    if not training:
        library = ort_library()
        ort_blas = links_blas(library) if library else []
        notes.append("ONNX Runtime does its products with its own MLAS kernels: "
                     + (f"its library links {', '.join(ort_blas)}" if ort_blas else
                        "its library links no BLAS (ldd), so OPENBLAS_CORETYPE cannot concern it; run once"))
    ratios = [f"{r['variant']} {r['cpu_per_real']:.2f}" for r in rows
              if r["kind"] in ("attn", "ort") and r.get("cpu_per_real")]
    notes.append("Process CPU time / real time (2.00 = both threads busy throughout; Google Benchmark's "
                 "MeasureProcessCPUTime for attn, node's process.cpuUsage for ORT): " + "; ".join(ratios))
    if not args.no_long_context:
        notes.append(f"B {LONG_CONTEXT[0]}, T {LONG_CONTEXT[1]}: one iteration alone in its own process, peak "
                     "RSS from getrusage; targets < 1 GiB forward, < 2 GiB forward + backward. ONNX Runtime's "
                     "causal paths all materialise the (B, H, T, T) float32 scores (ort_peer.causal_memory), so "
                     "that row is stated, not run")
    notes.append("GFLOP/s counts the useful work alike for every row (projections, output projection, the "
                 "causal half of the attention products; training: 3x forward); % of sgemm = GFLOP/s / the "
                 "machine sgemm rate")
    write_report(args, batch, tokens, rows, notes, sgemm_best)


if __name__ == "__main__":
    main()
