#!/usr/bin/python3
"""attn::compiled's runtime ISA dispatch against a -march=native build, as a Markdown report.

Runs, alternating the builds so that the host's drifts hit both alike:
- bench_attention's GPT-2-sized forward (BM_MHA_Fused, causal MHA, B 8, T 1024, 768, 12 heads,
  float32, 2 threads) from a build without any -march (--portable: -DATTN_NATIVE=OFF, so the
  benchmark links the dispatched attn::compiled) and from one with -march=native (--native: the
  release preset, whose benchmarks link the same kernels compiled for this CPU alone); median of
  the repetitions, and the ratio portable / native;
- the portable build again under each ATTN_ISA level this CPU runs (what each level gives);
- bench_generation (GPT-2 124M, the book's seed, 200 tokens greedily from "Hello, I am", KV
  cache, 1 and 2 threads, float32 and bfloat16 weights) from both builds: tokens/s (median)
  and the peak resident memory of the process (getrusage);
- the portable build's float32 decoding on 1 and 2 threads again while another process keeps
  one core busy (a Python loop), alternated: 2 threads should not fall below 1.

    cmake --preset release -B build/portable -DATTN_NATIVE=OFF
    cmake --build build/portable --target bench_attention bench_generation
    cmake --build --preset release --target bench_attention bench_generation
    /usr/bin/python3 benchmarks/dispatch_report.py --output benchmarks/results

Writes DIR/dispatch_gpt2.md (default build/dispatch/). Standard library only.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys

from generation_report import lscpu_model, write_markdown  # benchmarks/, beside this script

ROOT = os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]
FORWARD = "BM_MHA_Fused/B:8/T:1024/threads:2/process_time/real_time"
LEVELS = ["baseline", "avx2", "avx512", "avx512_bf16"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--portable", default=os.path.join(ROOT, "build", "portable"))
    parser.add_argument("--native", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--repetitions", type=int, default=5)
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--output", default=os.path.join(ROOT, "build", "dispatch"))
    return parser.parse_args()


def run(command, env=None):
    """The stdout of one run; exits on failure."""
    return run_rss(command, env)[0]


def run_rss(command, env=None):
    """(stdout, peak RSS in MB) of one run: wait4 gives this child's own rusage (RUSAGE_CHILDREN
    would give the maximum over every child so far)."""
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                               text=True, env=env)
    stdout = process.stdout.read()
    stderr = process.stderr.read()
    _, status, usage = os.wait4(process.pid, 0)
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        sys.exit(f"failed: {' '.join(command)}\n{stderr}")
    return stdout, usage.ru_maxrss / 1024.0


def forward_ms(build, env=None):
    out = run([os.path.join(build, "benchmarks", "bench_attention"),
               "--benchmark_filter=^" + FORWARD.split("/process_time")[0] + "/",
               "--benchmark_format=json"], env)
    for bench in json.loads(out)["benchmarks"]:
        if bench["name"] == FORWARD:
            return bench["real_time"] if bench["time_unit"] == "ms" else bench["real_time"] / 1e6
    sys.exit(f"no {FORWARD} in {build}")


def generation(build, threads, weights, tokens):
    out, rss = run_rss([os.path.join(build, "benchmarks", "bench_generation"),
                        "--threads", str(threads), "--tokens", str(tokens), "--cache", "on",
                        "--weights", weights])
    return json.loads(out)["tokens_per_second"], rss


def isa_of(build, env=None):
    out = run([os.path.join(build, "tests", "attn_tests"), "--gtest_filter=Isa.RunsTheLevelAsked"],
              env)
    for line in out.splitlines():
        if "attn::compiled runs" in line:
            return line.split("attn::compiled runs ")[1].split(" ")[0]
    return "?"


def compiler():
    try:
        return subprocess.run(["g++", "--version"], capture_output=True,
                              text=True).stdout.splitlines()[0]
    except (OSError, IndexError):
        return "?"


def main():
    args = parse_args()
    env = dict(os.environ)
    cpu_isa = isa_of(args.portable)
    levels = LEVELS[:LEVELS.index(cpu_isa) + 1] if cpu_isa in LEVELS else ["baseline"]
    forward = {"portable": [], "native": []}
    per_level = {level: [] for level in levels}
    for _ in range(args.repetitions):
        forward["portable"].append(forward_ms(args.portable))
        forward["native"].append(forward_ms(args.native))
        for level in levels:
            per_level[level].append(forward_ms(args.portable, dict(env, ATTN_ISA=level)))
    decode = {}
    for threads in (2, 1):
        for weights in ("float32", "bfloat16"):
            for build in ("portable", "native"):
                decode[(threads, weights, build)] = []
            for _ in range(max(1, args.repetitions // 2 + 1)):
                for build in ("portable", "native"):
                    path = args.portable if build == "portable" else args.native
                    decode[(threads, weights, build)].append(
                        generation(path, threads, weights, args.tokens))

    busy = {1: [], 2: []}
    competitor = subprocess.Popen([sys.executable, "-c", "while True: pass"])
    try:
        for _ in range(max(2, args.repetitions // 2 + 1)):
            for threads in (2, 1):
                busy[threads].append(generation(args.portable, threads, "float32", args.tokens)[0])
    finally:
        competitor.kill()
        competitor.wait()

    median = statistics.median
    now = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# attn::compiled's runtime dispatch against -march=native",
        "",
        f"- CPU: {lscpu_model()}, {os.cpu_count()} logical CPUs; attn::cpu_isa(): {cpu_isa}",
        f"- Date: {now}; compiler: {compiler()}",
        f"- Builds: portable = `{os.path.relpath(args.portable, ROOT)}` (release preset, "
        "-DATTN_NATIVE=OFF: no -march anywhere, the benchmarks link the dispatched "
        "attn::compiled); native = "
        f"`{os.path.relpath(args.native, ROOT)}` (release preset: -O3 -march=native, the "
        "benchmarks link the kernels compiled for this CPU alone)",
        f"- Environment: OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE', 'unset')} (attn links "
        f"no BLAS), OMP_WAIT_POLICY={env.get('OMP_WAIT_POLICY', 'unset')}; runs alternated, "
        f"{args.repetitions} repetitions, medians",
        "",
        "## GPT-2-sized forward (causal MHA, B 8, T 1024, 768, 12 heads, float32, 2 threads)",
        "",
        "| build | ms (median) | runs | vs native |",
        "|---|---:|---|---:|",
    ]
    native_ms = median(forward["native"])
    for build in ("portable", "native"):
        values = forward[build]
        lines.append(f"| {build} | {median(values):.1f} | "
                     f"{', '.join(f'{v:.0f}' for v in values)} | "
                     f"{median(values) / native_ms:.2f}x |")
    lines += ["", "The portable build under each ATTN_ISA cap (same runs' window):", "",
              "| ATTN_ISA | ms (median) | vs native |", "|---|---:|---:|"]
    for level in levels:
        lines.append(f"| {level} | {median(per_level[level]):.1f} | "
                     f"{median(per_level[level]) / native_ms:.2f}x |")
    lines += ["", f"## Decoding GPT-2 124M ({args.tokens} tokens, KV cache)", "",
              "| threads | weights | build | tokens/s (median) | vs native | peak RSS MB |",
              "|---:|---|---|---:|---:|---:|"]
    for (threads, weights, build), runs in decode.items():
        rate = median(r for r, _ in runs)
        native_rate = median(r for r, _ in decode[(threads, weights, "native")])
        rss = max(m for _, m in runs)
        lines.append(f"| {threads} | {weights} | {build} | {rate:.1f} | "
                     f"{rate / native_rate:.2f}x | {rss:.0f} |")
    lines += ["", "## Decoding beside a CPU-bound process (portable build, float32)", "",
              "| threads | tokens/s (median) | runs | vs 1 thread |", "|---:|---:|---|---:|"]
    for threads in (2, 1):
        lines.append(f"| {threads} | {median(busy[threads]):.1f} | "
                     f"{', '.join(f'{v:.0f}' for v in busy[threads])} | "
                     f"{median(busy[threads]) / median(busy[1]):.2f}x |")
    write_markdown(args.output, "dispatch_gpt2.md", lines)


if __name__ == "__main__":
    main()
