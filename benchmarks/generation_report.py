#!/usr/bin/python3
"""Tokens per second generating text with GPT-2 124M, attn beside PyTorch, as a Markdown report.

Runs, alternating the engines so that the host's drifts hit both alike:
- bench_generation (benchmarks/generation_bench.cpp) and generation_peer.py (PyTorch 1.13, the
  same model in plain PyTorch): 200 tokens generated greedily from "Hello, I am" by the book's
  GPT-2 124M seeded with torch.manual_seed(123), eval mode, float32, with the KV cache and
  without it, at 1 and 2 threads; the median of the repetitions (the uncached runs are long:
  --uncached-repetitions, default 1);
- the read bandwidth (bench_generation --bandwidth: a 1 GiB buffer summed), and from it the
  bound it puts on a cached step, which reads every weight of the blocks and the head once:
  limit = bandwidth / bytes per token, for the 163,009,536 parameters (the issue's 652 MB) and
  for the 123,625,728 a step reads (the embedding tables give one row each);
- the same cached runs with the weights of every Linear layer in bfloat16 (attn:
  set_weight_format(WeightFormat::bfloat16), which reads 2 bytes a weight; PyTorch: the same
  rounded weights, kept in float32), and the bound for the 247 MB such a step reads;
- whether attn and PyTorch generated the same ids (float32 with float32, bfloat16 with bfloat16).

    cmake --build build/release --target bench_generation
    /usr/bin/python3 benchmarks/generation_report.py --build build/release --output benchmarks/results
    /usr/bin/python3 benchmarks/generation_report.py --tokens 8 --repetitions 1 --output /tmp/g
        # a quick check of the harness only

Writes DIR/generation_gpt2.md (default build/generation/). Standard library only (PyTorch for
the peer). Exits non-zero if a run fails.
"""
import argparse
import datetime
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]
PARAMETERS_ALL = 163_009_536
# What one cached step reads: everything but tok_emb (50257 x 768) and pos_emb (1024 x 768).
PARAMETERS_READ = PARAMETERS_ALL - 50257 * 768 - 1024 * 768
# Of those, the weights of the Linear layers (12 blocks' qkv, out_proj, ff.layers.0 and .2, and
# out_head), which WeightFormat::bfloat16 stores in 2 bytes; the biases and LayerNorms stay float.
LINEAR_WEIGHTS = 12 * (4 * 768 * 768 + 2 * 768 * 3072) + 768 * 50257
BYTES_READ = {"float32": PARAMETERS_READ * 4,
              "bfloat16": LINEAR_WEIGHTS * 2 + (PARAMETERS_READ - LINEAR_WEIGHTS) * 4}


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"))
    parser.add_argument("--tokens", type=int, default=200)
    parser.add_argument("--repetitions", type=int, default=3, help="cached runs (median)")
    parser.add_argument("--uncached-repetitions", type=int, default=1)
    parser.add_argument("--threads", default="1,2")
    parser.add_argument("--output", default=os.path.join(ROOT, "build", "generation"))
    return parser.parse_args()


def run_json(command, env=None):
    result = subprocess.run(command, capture_output=True, text=True, env=env)
    if result.returncode != 0:
        sys.exit(f"{shlex.join(command)} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def lscpu_model():
    try:
        for line in subprocess.run(["lscpu"], capture_output=True, text=True).stdout.splitlines():
            if line.startswith("Model name:"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown CPU"


def write_markdown(folder, name, lines):
    """Writes the report's lines to folder/name (one final newline), echoes them to stdout and
    the path to stderr: the reports' common last step."""
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(folder, name)
    text = "\n".join(lines).rstrip("\n") + "\n"
    with open(path, "w") as report:
        report.write(text)
    print(text, end="")
    print(f"wrote {path}", file=sys.stderr)


def main():
    args = parse_args()
    binary = os.path.join(args.build, "benchmarks", "bench_generation")
    peer = os.path.join(ROOT, "benchmarks", "generation_peer.py")
    if not os.path.exists(binary):
        sys.exit(f"{binary} is missing: cmake --build {args.build} --target bench_generation")
    threads = [int(t) for t in args.threads.split(",")]
    # The environment as a user has it: OpenMP's default wait policy for both engines (libgomp
    # spins a while before sleeping; OMP_WAIT_POLICY=passive costs attn ~20 % here, 49 parallel
    # regions a token).
    env = dict(os.environ)
    rows, bandwidth, ids = [], {}, {}
    for t in threads:
        env_t = dict(env, OMP_NUM_THREADS=str(t))
        bandwidth[t] = statistics.median(
            run_json([binary, "--threads", str(t), "--bandwidth"], env_t)["read_gb_per_s"]
            for _ in range(3))
        for cache, weights in (("on", "float32"), ("off", "float32"), ("on", "bfloat16")):
            reps = args.repetitions if cache == "on" else args.uncached_repetitions
            speeds = {"attn": [], "PyTorch": []}
            for _ in range(reps):
                for engine, command in (
                        ("attn", [binary]),
                        ("PyTorch", ["/usr/bin/python3", peer])):
                    out = run_json(command + ["--threads", str(t), "--tokens", str(args.tokens),
                                              "--cache", cache, "--weights", weights], env_t)
                    speeds[engine].append(out["tokens_per_second"])
                    ids[(engine, t, cache, weights)] = out["ids"]
            rows.append((t, cache, weights, statistics.median(speeds["attn"]),
                         statistics.median(speeds["PyTorch"]), reps))
        print(f"threads {t} done", file=sys.stderr)

    lines = [
        "# Generating text with GPT-2 124M: attn and PyTorch",
        "",
        f"{datetime.datetime.utcnow():%Y-%m-%d %H:%M} UTC, {lscpu_model()}, {os.cpu_count()} "
        f"CPUs. The book's GPTModel with GPT_CONFIG_124M, weights of torch.manual_seed(123), "
        f"eval mode, batch 1: {args.tokens} tokens generated greedily from \"Hello, I "
        "am\" (4 tokens). attn: bench_generation (g++ -O3 -march=native, OpenMP); PyTorch "
        f"{torch_version()}: benchmarks/generation_peer.py, the same model in plain PyTorch "
        "(last position only through the head; the cache concatenates each step's keys and "
        "values). Weights float32, or those of every Linear layer rounded to bfloat16 (attn "
        "reads them in 2 bytes; PyTorch holds the same rounded values in float32); "
        "activations float32 throughout. Median of the runs, alternating the engines; "
        "OpenMP's default wait policy.",
        "",
        "| threads | KV cache | weights | attn tokens/s | PyTorch tokens/s | attn / PyTorch "
        "| runs |",
        "|---:|---|---|---:|---:|---:|---:|",
    ]
    for t, cache, weights, attn_speed, torch_speed, reps in rows:
        lines.append(f"| {t} | {cache} | {weights} | {attn_speed:.1f} | {torch_speed:.1f} | "
                     f"{attn_speed / torch_speed:.1f}x | {reps} |")
    lines += [
        "",
        "A cached step reads every weight of the blocks and the head once, so memory bandwidth "
        "bounds it. Read bandwidth (bench_generation --bandwidth: a 1 GiB float buffer summed, "
        "four streams per thread, median of 3, best of 6 passes each) and the bound it gives: "
        "bandwidth / bytes a step reads, for all 163.0M parameters in float32 (652 MB, as if "
        "the embedding tables were read too; a step reads one row of each), for the "
        f"{PARAMETERS_READ / 1e6:.1f}M a step reads in float32 "
        f"({BYTES_READ['float32'] / 1e6:.1f} MB) and with the Linear weights in bfloat16 "
        f"({BYTES_READ['bfloat16'] / 1e6:.1f} MB):",
        "",
        "| threads | read GB/s | limit, 652 MB | limit, float32 step | attn float32, % of its "
        "limit | limit, bfloat16 step | attn bfloat16, % of its limit |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for t in threads:
        def cached(weights):
            return next(r[3] for r in rows if r[0] == t and r[1] == "on" and r[2] == weights)
        limit_all = bandwidth[t] * 1e9 / (PARAMETERS_ALL * 4)
        limit = {w: bandwidth[t] * 1e9 / BYTES_READ[w] for w in BYTES_READ}
        lines.append(f"| {t} | {bandwidth[t]:.1f} | {limit_all:.1f} | {limit['float32']:.1f} | "
                     f"{100 * cached('float32') / limit['float32']:.0f} % | "
                     f"{limit['bfloat16']:.1f} | "
                     f"{100 * cached('bfloat16') / limit['bfloat16']:.0f} % |")
    same = all(ids[k] == ids[("attn",) + k[1:]] for k in ids if k[0] == "PyTorch")
    bf16_differs = any(ids[k] != ids[k[:3] + ("float32",)] for k in ids if k[3] == "bfloat16")
    lines += ["", "attn and PyTorch generated the same ids in every run (float32 with float32, "
              f"bfloat16 with bfloat16): {'yes' if same else 'NO'}. The bfloat16 weights "
              f"{'change' if bf16_differs else 'do not change'} the generated ids against "
              "float32's.", ""]
    write_markdown(args.output, "generation_gpt2.md", lines)


def torch_version():
    try:
        return subprocess.run(["/usr/bin/python3", "-c", "import torch; print(torch.__version__)"],
                              capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


if __name__ == "__main__":
    main()
