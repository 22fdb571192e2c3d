#!/usr/bin/python3
"""attn against PyTorch on the same machine, same shapes, same threads.

Times PyTorch versions of the multi-head attention variants of the book's chapter 3 and its
bonus notebook (our own re-implementations, below), then runs attn's C++ benchmark binary for
its variants, and writes a Markdown table and a bar chart.

    /usr/bin/python3 benchmarks/compare_pytorch.py            # GPT-2 small: B 8, T 1024, 2 threads
    /usr/bin/python3 benchmarks/compare_pytorch.py --config small --threads 1
    /usr/bin/python3 benchmarks/compare_pytorch.py --mode training   # forward + backward

The table (.md) and chart (.png) go to build/compare/ unless `--output DIR` says otherwise; the
results committed in benchmarks/results/ (and pasted into README.md) are updated on purpose, on a
quiet machine, with `--output benchmarks/results`.

In training mode PyTorch runs forward and autograd's backward of sum(out * G) for a fixed G
(train mode, dropout 0, gradients of the input and every parameter) and attn runs forward with a
cache and backward (benchmarks/training_bench.cpp).

Needs Debian's python3-torch and python3-matplotlib. It builds the C++ benchmark (CMake preset
`release`) when it is missing. PyTorch gets its best configuration: with OpenBLAS as the system
BLAS, each OPENBLAS_CORETYPE worth trying on this CPU is probed and the fastest is used; the
report says which. With Debian's reference BLAS PyTorch is ~20x slower, so the script refuses
to compare and says how to install OpenBLAS (libopenblas0-pthread).
"""
import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {"gpt2": (8, 1024), "small": (2, 256)}
EMBED, HEADS = 768, 12


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
            results.append({"variant": name, "ms": 1000 * statistics.median(times),
                            "gflop": work / 1e9})
    print(json.dumps({"torch": torch.__version__, "results": results}))


def run_torch(args, env_extra):
    env = dict(os.environ, OMP_NUM_THREADS=str(args.threads), OPENBLAS_NUM_THREADS=str(args.threads))
    env.pop("OPENBLAS_CORETYPE", None)
    env.pop("OPENBLAS_L2_SIZE", None)
    env.update(env_extra)
    cmd = [sys.executable, __file__, "--child", "--config", args.config, "--threads", str(args.threads),
           "--mode", args.mode, "--repeats", str(args.repeats if not env_extra.get("_probe") else 2)]
    if env_extra.get("_probe"):
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


def cpu_line():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def has_avx512():
    try:
        return "avx512f" in open("/proc/cpuinfo").read()
    except OSError:
        return False


# ---- attn side ------------------------------------------------------------------------------------

ATTN_VARIANTS = {
    "BM_MHA_Wrapper_Reference": ("attn MultiHeadAttentionWrapper (reference kernel)", False),
    "BM_MHA_Reference": ("attn MultiHeadAttention (reference kernel)", True),
    "BM_MHA_CombinedQKV_Reference": ("attn MultiHeadAttentionCombinedQKV (reference kernel)", True),
    "BM_MHA_Fused": ("attn MultiHeadAttention (fused kernel)", True),
}
ATTN_TRAINING_VARIANTS = {
    "BM_MHA_ForwardBackward_Reference": ("attn MultiHeadAttention (reference kernel)", True),
    "BM_MHA_ForwardBackward_Fused": ("attn MultiHeadAttention (fused kernel)", True),
    "BM_MHA_CombinedQKV_ForwardBackward_Fused": ("attn MultiHeadAttentionCombinedQKV (fused kernel)", True),
}


def run_attn(args, batch, tokens):
    target = "bench_training" if args.mode == "training" else "bench_attention"
    variants = ATTN_TRAINING_VARIANTS if args.mode == "training" else ATTN_VARIANTS
    binary = os.path.join(ROOT, "build", "release", "benchmarks", target)
    if not os.path.exists(binary):
        subprocess.run(["cmake", "--preset", "release"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
        subprocess.run(["cmake", "--build", "--preset", "release", "--target", target],
                       cwd=ROOT, check=True)
    pattern = "|".join(f"{name}/B:{batch}/T:{tokens}/threads:{args.threads}/" for name in variants)
    out = subprocess.run([binary, f"--benchmark_filter={pattern}", "--benchmark_format=json",
                          f"--benchmark_repetitions={args.repeats}"],
                         check=True, capture_output=True, text=True).stdout
    report = json.loads(out)
    rows = []
    for name, (label, out_projection) in variants.items():
        times = [b["real_time"] for b in report["benchmarks"]
                 if b["name"].startswith(name + "/") and b.get("run_type") == "iteration"]
        if times:
            work = flops(batch, tokens, out_projection) * (3 if args.mode == "training" else 1)
            rows.append({"variant": label, "ms": statistics.median(times), "gflop": work / 1e9})
    return rows, report.get("context", {})


# ---- report ---------------------------------------------------------------------------------------

def write_report(args, batch, tokens, torch_rows, attn_rows, notes):
    best = min(torch_rows, key=lambda r: r["ms"])
    what = "Forward + backward (training step)" if args.mode == "training" else "Forward"
    lines = [f"{what}, causal, float32, B {batch}, T {tokens}, d_in = d_out = {EMBED}, {HEADS} heads, "
             f"{args.threads} thread(s); median of {args.repeats} runs.", ""]
    lines += [f"- {note}" for note in notes]
    lines += ["", "| variant | ms | GFLOP/s | speed-up vs PyTorch best |", "|---|---:|---:|---:|"]
    for row in torch_rows + attn_rows:
        gflops = row["gflop"] / (row["ms"] / 1000)
        lines.append(f"| {row['variant']} | {row['ms']:.0f} | {gflops:.0f} | {best['ms'] / row['ms']:.2f}x |")
    text = "\n".join(lines) + "\n"
    os.makedirs(args.output, exist_ok=True)
    mode = "training_" if args.mode == "training" else ""
    stem = os.path.join(args.output, f"compare_pytorch_{mode}{args.config}_{args.threads}t")
    with open(stem + ".md", "w") as f:
        f.write(text)
    print(text)
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not installed (apt-get install python3-matplotlib): no chart written")
        return
    rows = torch_rows + attn_rows
    fig, ax = plt.subplots(figsize=(10, 0.5 * len(rows) + 1.5))
    colours = ["#8c8c8c"] * len(torch_rows) + ["#1f77b4"] * len(attn_rows)
    ax.barh([r["variant"] for r in rows], [r["ms"] for r in rows], color=colours)
    for i, r in enumerate(rows):
        ax.text(r["ms"], i, f" {r['ms']:.0f} ms", va="center", fontsize=8)
    ax.invert_yaxis()
    ax.set_xlabel(f"{what.lower()} time (ms), lower is better")
    ax.set_title(f"Causal MHA {'training step' if args.mode == 'training' else 'forward'}, B {batch} x T {tokens} x {EMBED}, {HEADS} heads, "
                 f"float32, {args.threads} thread(s)")
    fig.tight_layout()
    fig.savefig(stem + ".png", dpi=110)
    print(f"wrote {stem}.md and {stem}.png")


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--config", choices=sorted(CONFIGS), default="gpt2")
    parser.add_argument("--threads", type=int, choices=[1, 2], default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--mode", choices=["forward", "training"], default="forward")
    parser.add_argument("--output", "--out", dest="output", default=os.path.join(ROOT, "build", "compare"),
                        help="directory for the .md table and .png chart (default: build/compare; "
                             "the committed results: benchmarks/results)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--probe", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    batch, tokens = CONFIGS[args.config]
    if args.child:
        torch_child(batch, tokens, args.threads, args.repeats, args.probe, args.mode == "training")
        return

    notes = [f"CPU: {cpu_line()}"]
    blas = blas_in_use()
    if blas == "reference":
        sys.exit("PyTorch is using Debian's reference BLAS, which is ~20x slower than OpenBLAS; a "
                 "fair comparison needs `apt-get install libopenblas0-pthread` first.")
    # Give PyTorch its best OpenBLAS kernels: probe the core types worth trying here.
    candidates = [""] + (["SkylakeX", "Cooperlake"] if has_avx512() else []) + ["Haswell", "Zen"]
    probes = {}
    for core in candidates:
        env = {"_probe": "1"}
        if core:
            env["OPENBLAS_CORETYPE"] = core
        probes[core] = run_torch(args, env)["results"][0]["ms"]
    best_core = min(probes, key=probes.get)
    notes.append("PyTorch BLAS: {} with {}; probe (nn.MultiheadAttention, need_weights=False): {}".format(
        blas, f"OPENBLAS_CORETYPE={best_core}" if best_core else "OpenBLAS's own core detection",
        ", ".join(f"{c or 'auto'} {ms:.0f} ms" for c, ms in probes.items())))
    env = {"OPENBLAS_CORETYPE": best_core} if best_core else {}
    torch_report = run_torch(args, env)
    notes.append(f"PyTorch {torch_report['torch']}, torch.set_num_threads({args.threads})")
    attn_rows, context = run_attn(args, batch, tokens)
    notes.append("attn: build/release (g++ -O3 -march=native, OpenMP), attn::set_num_threads({}); "
                 "benchmark host reports {} CPUs at {} MHz".format(
                     args.threads, context.get("num_cpus", "?"), context.get("mhz_per_cpu", "?")))
    write_report(args, batch, tokens, torch_report["results"], attn_rows, notes)


if __name__ == "__main__":
    main()
