#!/usr/bin/python3
"""attn's bfloat16 arithmetic (attn::Autocast, WeightFormat::bfloat16) against its float32 and
against llama.cpp's bf16, as a Markdown report.

Runs, alternating everything so that the host's drifts hit all alike, from one build (default
build/portable: -DATTN_NATIVE=OFF, the dispatched attn::compiled that any x86-64 program gets):
- bench_attention's GPT-2-sized causal MHA forward (B 8, T 1024, 768, 12 heads, 2 threads):
  BM_MHA_Fused (float32) and BM_MHA_Fused_BFloat16 (the same layer under Autocast: bfloat16
  projections and attention products, float sums and softmax);
- bench_training's forward + backward of the same layer: BM_MHA_ForwardBackward_Fused and
  BM_MHA_ForwardBackward_Fused_BFloat16;
- bench_generation on the book's GPT-2 124M (seed 123, 163.0M parameters, untied head), weights
  held in bfloat16 (--weights bfloat16), arithmetic float32 (--compute float32: the rounded
  weights times float activations) and bfloat16 (--compute bfloat16), 1 and 2 threads: a
  512-token prompt (512 / seconds of the prefill and one argmax) and decoding 200 tokens from
  "Hello, I am" with the KV cache; the decode run's peak resident memory (wait4), and the float32
  model's (--weights float32) beside it;
- with --llama-bench and --models: llama.cpp's `llama-bench -m gpt2-124m-bf16.gguf -t N -p 512
  -n 200 -r 3` (pp512 and tg200, tokens/s, mean of 3), and its decode-only run's peak memory.
  llama.cpp is built from its own source as ../shared/peers/llama_cpp/README.md says (GGML_NATIVE,
  its bf16 path rounds activations to bf16 and runs vdpbf16ps); never vendored here.

    cmake --preset release -B build/portable -DATTN_NATIVE=OFF
    cmake --build build/portable --target bench_attention bench_training bench_generation
    /usr/bin/python3 benchmarks/bfloat16_report.py --llama-bench <llama>/build/bin/llama-bench \\
        --models <models> --output benchmarks/results

Writes DIR/bfloat16_gpt2.md (default build/bfloat16/). Standard library only.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess

from dispatch_report import compiler, isa_of, run, run_rss  # benchmarks/, beside this script
from generation_report import lscpu_model, write_markdown

ROOT = os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]
SUFFIX = "/B:8/T:1024/threads:2/process_time/real_time"
FORWARD = ["BM_MHA_Fused", "BM_MHA_Fused_BFloat16"]
TRAINING = ["BM_MHA_ForwardBackward_Fused", "BM_MHA_ForwardBackward_Fused_BFloat16"]
# 512 prompt ids (any valid ids: the weights are random, so the text does not matter).
PROMPT = ",".join(str(i * 7919 % 50000) for i in range(512))


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "portable"))
    parser.add_argument("--llama-bench", help="llama.cpp's llama-bench (optional)")
    parser.add_argument("--models", help="the folder of gpt2-124m-bf16.gguf (make_gpt2_gguf.py)")
    parser.add_argument("--llama-version", default="?",
                        help="the llama.cpp commit built, for the report (llama-bench built from "
                             "an archive cannot say it)")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(ROOT, "build", "bfloat16"))
    return parser.parse_args()


def bench_ms(build, program, names):
    out = run([os.path.join(build, "benchmarks", program),
               "--benchmark_filter=^(" + "|".join(names) + ")/B:8/T:1024/threads:2/",
               "--benchmark_format=json"])
    times = {}
    for bench in json.loads(out)["benchmarks"]:
        name = bench["name"].replace(SUFFIX, "")
        scale = {"ms": 1.0, "us": 1e-3, "ns": 1e-6}[bench["time_unit"]]
        times[name] = bench["real_time"] * scale
    return times


def attn_generation(build, threads, weights, compute, prompt):
    command = [os.path.join(build, "benchmarks", "bench_generation"), "--threads", str(threads),
               "--cache", "on", "--weights", weights, "--compute", compute]
    if prompt:
        command += ["--tokens", "1", "--prompt", PROMPT]
    else:
        command += ["--tokens", "200"]
    out, rss = run_rss(command)
    result = json.loads(out)
    rate = 512 / result["seconds"] if prompt else result["tokens_per_second"]
    return rate, rss


def llama(args, threads):
    model = os.path.join(args.models, "gpt2-124m-bf16.gguf")
    out = run([args.llama_bench, "-m", model, "-t", str(threads), "-p", "512", "-n", "200",
               "-r", "3", "-o", "json"])
    rates = {}
    for test in json.loads(out):
        rates["prompt" if test["n_prompt"] else "decode"] = test["avg_ts"]
    _, rss = run_rss([args.llama_bench, "-m", model, "-t", str(threads), "-p", "0", "-n", "200",
                      "-r", "1"])
    return rates, rss


def main():
    args = parse_args()
    with_llama = bool(args.llama_bench and args.models)
    forward = {name: [] for name in FORWARD}
    training = {name: [] for name in TRAINING}
    rates = {}  # (engine, threads, kind) -> [tokens/s]
    rss = {}    # engine -> [MB]
    started = datetime.datetime.now(datetime.timezone.utc)
    for _ in range(args.repetitions):
        for name, ms in bench_ms(args.build, "bench_attention", FORWARD).items():
            forward[name].append(ms)
        for name, ms in bench_ms(args.build, "bench_training", TRAINING).items():
            training[name].append(ms)
        for threads in (1, 2):
            if with_llama:
                llama_rates, llama_rss = llama(args, threads)
                for kind, rate in llama_rates.items():
                    rates.setdefault(("llama.cpp bf16", threads, kind), []).append(rate)
                rss.setdefault(("llama.cpp bf16", threads), []).append(llama_rss)
            for compute in ("bfloat16", "float32"):
                engine = f"attn bfloat16 weights, {compute} arithmetic"
                for kind in ("prompt", "decode"):
                    rate, peak = attn_generation(args.build, threads, "bfloat16", compute,
                                                 kind == "prompt")
                    rates.setdefault((engine, threads, kind), []).append(rate)
                    if kind == "decode":
                        rss.setdefault((engine, threads), []).append(peak)
            rate, peak = attn_generation(args.build, threads, "float32", "float32", False)
            rates.setdefault(("attn float32", threads, "decode"), []).append(rate)
            rss.setdefault(("attn float32", threads), []).append(peak)
    finished = datetime.datetime.now(datetime.timezone.utc)

    median = statistics.median
    f32, bf16 = median(forward[FORWARD[0]]), median(forward[FORWARD[1]])
    t32, tb16 = median(training[TRAINING[0]]), median(training[TRAINING[1]])
    lines = [
        "# bfloat16 arithmetic: attn against its float32 and against llama.cpp",
        "",
        f"- CPU: {lscpu_model()}, {os.cpu_count()} logical CPUs; attn::compiled level: "
        f"{isa_of(args.build)}; {compiler()}",
        f"- Build: `{os.path.relpath(args.build, ROOT)}`; "
        f"{started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC; {args.repetitions} rounds, every figure "
        "the median over rounds, everything alternated within a round.",
    ]
    if with_llama:
        lines.append(f"- llama.cpp {args.llama_version}, CPU build (GGML_NATIVE) as "
                     "../shared/peers/llama_cpp/README.md says, not vendored; gpt2-124m-bf16.gguf "
                     "from its make_gpt2_gguf.py --untied (random weights, the same shapes)")
    lines += [
        "",
        "## Multi-head attention (B 8, T 1024, 768, 12 heads, causal, 2 threads)",
        "",
        "| | float32 ms | bfloat16 ms | float32 / bfloat16 |",
        "|---|---:|---:|---:|",
        f"| forward (bench_attention) | {f32:.1f} | {bf16:.1f} | {f32 / bf16:.2f}x |",
        f"| forward + backward (bench_training) | {t32:.1f} | {tb16:.1f} | {t32 / tb16:.2f}x |",
        "",
        "## GPT-2 124M (163.0M parameters, untied head): tokens/s, peak memory of a decode run",
        "",
        "| engine | threads | prompt 512 | decode 200 | peak RSS MB |",
        "|---|---:|---:|---:|---:|",
    ]
    engines = (["llama.cpp bf16"] if with_llama else []) + [
        "attn bfloat16 weights, bfloat16 arithmetic", "attn bfloat16 weights, float32 arithmetic",
        "attn float32"]
    for threads in (1, 2):
        for engine in engines:
            prompt = rates.get((engine, threads, "prompt"))
            decode = rates[(engine, threads, "decode")]
            prompt_text = f"{median(prompt):.0f}" if prompt else "-"
            lines.append(f"| {engine} | {threads} | {prompt_text} | {median(decode):.1f} | "
                         f"{median(rss[(engine, threads)]):.0f} |")
    if with_llama:
        lines += ["", "Ratios attn (bfloat16 weights and arithmetic) / llama.cpp bf16, same rounds:",
                  ""]
        engine = "attn bfloat16 weights, bfloat16 arithmetic"
        for threads in (1, 2):
            for kind in ("prompt", "decode"):
                ours = median(rates[(engine, threads, kind)])
                theirs = median(rates[("llama.cpp bf16", threads, kind)])
                lines.append(f"- {kind}, {threads} thread{'s' if threads > 1 else ''}: "
                             f"{ours:.1f} / {theirs:.1f} = {ours / theirs:.2f}x")
    write_markdown(args.output, "bfloat16_gpt2.md", lines)


if __name__ == "__main__":
    main()
