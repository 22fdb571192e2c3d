#!/usr/bin/python3
"""Decode and prefill figures of attn's bench_inference, as a Markdown report (and a chart).

Runs benchmarks/inference_bench.cpp's binary with --benchmark_format=json and repetitions
(default 3), takes the median of each benchmark's repetitions, and writes:

- decode time per token with a KV cache and without one (the whole sequence recomputed), for
  MultiHeadAttention, GroupedQueryAttention (4 kv groups) and multi-query attention (1 group),
  at 1 and 2 threads, with the process CPU time / real time of each row;
- a least-squares line through the cached decode's time per token against the context length
  L, per variant and thread count: intercept (µs), slope (µs per 1000 cached tokens) and R²;
- the speedup of the cache over recomputing at L 1024;
- prefill at T 4096 and 16384 with a sliding window (W 256, 1024) and without one, and how
  its time grows from T 4096 to T 16384 (4x for a cost in T * W, up to 16x for T^2);
- the CPU (lscpu), the compiler and the flags the binary was built with, the threads, the date.

    cmake --build build/release --target bench_inference
    /usr/bin/python3 benchmarks/inference_report.py --build build/release
    /usr/bin/python3 benchmarks/inference_report.py --build build/h-bench --min-time 0.01 \\
        --repetitions 1 --output /tmp/inference        # a quick check of the harness only

The report goes to DIR/NAME.md (default build/inference/inference_gpt2.md); the committed copy in
benchmarks/results/ is made on purpose, on a quiet machine, with --output benchmarks/results.
With python3-matplotlib a chart NAME.png is written beside it, else skipped. Exits non-zero if
the binary is missing or fails. Standard library only.
"""
import argparse
import datetime
import json
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TARGET = "bench_inference"
VARIANTS = {"MHA": "MultiHeadAttention (kv 12)",
            "MHA_Reference": "MultiHeadAttention (kv 12), reference kernel",
            "GQA": "GroupedQueryAttention (kv 4)",
            "MQA": "multi-query attention (kv 1)"}
SPEEDUP_AT = 1024
CPU_FLAGS = ["avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16", "avx512_fp16", "amx_bf16"]


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "release"),
                        help="CMake build directory holding benchmarks/bench_inference")
    parser.add_argument("--binary", help="the bench_inference binary (default: BUILD/benchmarks/...)")
    parser.add_argument("--repetitions", type=int, default=3, help="runs of each benchmark (median)")
    parser.add_argument("--min-time", help="--benchmark_min_time for every benchmark (default: "
                        "Google Benchmark's own); short values check the harness, not the machine")
    parser.add_argument("--filter", help="--benchmark_filter (default: every benchmark)")
    parser.add_argument("--output", default=os.path.join(ROOT, "build", "inference"),
                        help="directory for NAME.md and NAME.png")
    parser.add_argument("--name", default="inference_gpt2", help="file name stem of the report")
    parser.add_argument("--json", help="also save Google Benchmark's JSON report here")
    parser.add_argument("--from-json", help="report on this saved JSON instead of running")
    parser.add_argument("--no-chart", action="store_true", help="skip the PNG chart")
    args = parser.parse_args()
    if args.repetitions < 1:
        parser.error("--repetitions must be at least 1")
    args.build = os.path.abspath(args.build)
    if not args.binary:
        args.binary = os.path.join(args.build, "benchmarks", TARGET)
    return args


# ---- running the benchmarks ----------------------------------------------------------------------

def run_benchmarks(args):
    command = [args.binary, "--benchmark_format=json"]
    if args.repetitions > 1:
        command.append(f"--benchmark_repetitions={args.repetitions}")
    if args.min_time:
        command.append(f"--benchmark_min_time={args.min_time}")
    if args.filter:
        command.append(f"--benchmark_filter={args.filter}")
    print("running:", shlex.join(command), file=sys.stderr, flush=True)
    done = subprocess.run(command, stdout=subprocess.PIPE, text=True)  # stderr: progress, as is
    if done.returncode != 0:
        sys.exit(f"{TARGET} failed with exit code {done.returncode}")
    try:
        return json.loads(done.stdout), command
    except json.JSONDecodeError as error:
        sys.exit(f"{TARGET} printed no valid JSON ({error})")


TO_MS = {"ns": 1e-6, "us": 1e-3, "ms": 1.0, "s": 1e3}


def parse_name(run_name):
    """'BM_Decode_Cached_MHA/B:1/.../threads:2/process_time/real_time' -> family, {arg: int}."""
    family, *parts = run_name.split("/")
    values = {}
    for part in parts:
        key, sep, value = part.partition(":")
        if sep and re.fullmatch(r"-?\d+", value):
            values[key] = int(value)
    return family, values


def medians(report):
    """One row per benchmark: its arguments and the medians of its repetitions."""
    runs = {}
    for entry in report.get("benchmarks", []):
        if entry.get("run_type", "iteration") != "iteration":
            continue  # Google Benchmark's own aggregates: we take our own medians
        if entry.get("error_occurred"):
            print(f"warning: {entry['name']}: {entry.get('error_message')}", file=sys.stderr)
            continue
        runs.setdefault(entry.get("run_name", entry["name"]), []).append(entry)
    rows = []
    for run_name, entries in runs.items():
        family, values = parse_name(run_name)
        scale = TO_MS[entries[0].get("time_unit", "ns")]
        row = {"name": run_name, "family": family, "args": values, "repetitions": len(entries),
               "real_ms": statistics.median(e["real_time"] * scale for e in entries),
               "cpu_ms": statistics.median(e["cpu_time"] * scale for e in entries)}
        for counter in ("ms_per_token", "GFLOP/s", "GB/s", "tokens/s", "kv_cache_MiB"):
            values_of = [e[counter] for e in entries if counter in e]
            if values_of:
                row[counter] = statistics.median(values_of)
        rows.append(row)
    return rows


def decode_rows(rows, mode):
    """{(variant, threads): {L: row}} of BM_Decode_<mode>_<variant>."""
    table = {}
    for row in rows:
        match = re.fullmatch(rf"BM_Decode_{mode}_(\w+)", row["family"])
        if match and "L" in row["args"]:
            key = (match.group(1), row["args"].get("threads", 0))
            table.setdefault(key, {})[row["args"]["L"]] = row
    return table


def per_token_ms(row):
    return row.get("ms_per_token", row["real_ms"])


def least_squares(points):
    """Intercept, slope and R² of y = a + b x through (x, y) points (None if under-determined)."""
    n = len(points)
    if n < 2:
        return None
    mean_x = sum(x for x, _ in points) / n
    mean_y = sum(y for _, y in points) / n
    sxx = sum((x - mean_x) ** 2 for x, _ in points)
    if sxx == 0:
        return None
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sxx
    intercept = mean_y - slope * mean_x
    ss_tot = sum((y - mean_y) ** 2 for _, y in points)
    ss_res = sum((y - intercept - slope * x) ** 2 for x, y in points)
    r2 = 1.0 - ss_res / ss_tot if ss_tot > 0 else 1.0
    return intercept, slope, r2


# ---- the machine and the build ---------------------------------------------------------------------

def command_output(command):
    try:
        return subprocess.run(command, capture_output=True, text=True).stdout
    except OSError:
        return ""


def lscpu():
    fields = {}
    for line in command_output(["lscpu"]).splitlines():
        key, sep, value = line.partition(":")
        if sep:
            fields[key.strip()] = value.strip()
    return fields


def cpu_line():
    fields = lscpu()
    model = fields.get("Model name") or platform.processor() or "unknown CPU"
    flags = set(fields.get("Flags", "").split())
    present = [f for f in CPU_FLAGS if f in flags]
    absent = [f for f in CPU_FLAGS if f not in flags]
    caches = ", ".join(f"{name} {fields[key]}" for name, key in
                       (("L2", "L2 cache"), ("L3", "L3 cache")) if key in fields)
    text = f"{model}, {os.cpu_count()} logical CPUs"
    if caches:
        text += f" ({caches})"
    text += f"; flags: {' '.join(present) or 'none of note'}"
    return text + (f" (absent: {' '.join(absent)})" if absent else "")


def cmake_cache(build):
    values = {}
    try:
        with open(os.path.join(build, "CMakeCache.txt")) as f:
            for line in f:
                match = re.match(r"^([A-Za-z_0-9]+):[A-Z]+=(.*)$", line.rstrip("\n"))
                if match:
                    values[match.group(1)] = match.group(2)
    except OSError:
        pass
    return values


def compile_flags(build):
    """The flags inference_bench.cpp was compiled with, from build.ninja or flags.make."""
    try:
        with open(os.path.join(build, "build.ninja")) as f:
            lines = f.read().splitlines()
        for i, line in enumerate(lines):
            if line.startswith("build ") and "inference_bench.cpp.o:" in line:
                for follow in lines[i + 1:]:
                    if not follow.startswith("  "):
                        break
                    if follow.strip().startswith("FLAGS = "):
                        return follow.strip()[len("FLAGS = "):]
    except OSError:
        pass
    try:
        with open(os.path.join(build, "benchmarks", "CMakeFiles", f"{TARGET}.dir", "flags.make")) as f:
            for line in f:
                if line.startswith("CXX_FLAGS = "):
                    return line[len("CXX_FLAGS = "):].strip()
    except OSError:
        pass
    return None


def compiler_line(build):
    cache = cmake_cache(build)
    compiler = cache.get("CMAKE_CXX_COMPILER", "c++")
    full_version = command_output([compiler, "--version"])
    version = full_version.splitlines()
    text = f"{compiler}: {version[0] if version else '?'}"
    flags = compile_flags(build)
    if flags is None:
        build_type = cache.get("CMAKE_BUILD_TYPE", "?")
        flags = (f"CMAKE_BUILD_TYPE={build_type} "
                 f"({cache.get('CMAKE_CXX_FLAGS_' + build_type.upper(), '?')}) (build.ninja not found)")
    text += f"; flags: {flags}"
    if "-march=native" in flags and "Free Software Foundation" in full_version:  # GCC
        match = re.search(r"^\s*-march=\s+(\S+)", command_output(
            [compiler, "-march=native", "-Q", "--help=target"]), re.MULTILINE)
        if match:
            text += f" (-march=native is -march={match.group(1)} here)"
    options = [f"{key}={cache[key]}" for key in ("ATTN_OPENMP", "ATTN_NATIVE", "ATTN_CBLAS",
                                                 "ATTN_COMPILED") if key in cache]
    if options:
        text += "; " + ", ".join(options)
    return text


def eigen_version():
    try:
        text = open("/usr/include/eigen3/Eigen/src/Core/util/Macros.h").read()
    except OSError:
        return "?"
    parts = [re.search(rf"#define EIGEN_{p}_VERSION\s+(\d+)", text) for p in ("WORLD", "MAJOR", "MINOR")]
    return ".".join(m.group(1) for m in parts) if all(parts) else "?"


# ---- the report ------------------------------------------------------------------------------------

def fmt(value, spec, missing=""):
    return missing if value is None else format(value, spec)


def ms_text(ms):
    return fmt(ms, ".3f" if ms < 10 else ".1f" if ms < 1000 else ".0f")


def decode_tables(cached, recompute, threads_list, lengths):
    lines = []
    def present(table):
        return [v for v in VARIANTS if any(key[0] == v for key in table)]

    columns = [(cached, v) for v in present(cached)] + [(recompute, v) for v in present(recompute)]
    for threads in threads_list:
        head = ["L"] + [f"{v.replace('_Reference', ' ref.')} {'cache' if table is cached else 'no cache'}"
                        for table, v in columns]
        lines += [f"Decode, {threads} thread(s): ms per token (median), L tokens cached before it",
                  "", "| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        ratio_lines = ["| " + " | ".join(head) + " |", "|" + "---:|" * len(head)]
        for length in lengths:
            cells, ratios = [str(length)], [str(length)]
            for table, variant in columns:
                row = table.get((variant, threads), {}).get(length)
                cells.append(ms_text(per_token_ms(row)) if row else "")
                ratios.append(fmt(row["cpu_ms"] / row["real_ms"], ".2f") if row and row["real_ms"] else "")
            lines.append("| " + " | ".join(cells) + " |")
            ratio_lines.append("| " + " | ".join(ratios) + " |")
        lines += ["", f"Process CPU time / real time, {threads} thread(s) (with 2 threads, 2.00 = both "
                  "busy throughout; OpenMP's spin-waiting counts as busy, see the notes)", ""]
        lines += ratio_lines + [""]
    return lines


def variant_order(item):
    (variant, threads), _ = item
    order = list(VARIANTS)
    return (order.index(variant) if variant in order else len(order), variant, threads)


def fit_lines(cached):
    fits = {}
    for (variant, threads), by_length in sorted(cached.items(), key=variant_order):
        points = [(length, per_token_ms(row) * 1e3) for length, row in sorted(by_length.items())]
        fits[(variant, threads)] = (least_squares(points), len(points))
    return fits


def prefill_rows(rows):
    result = []
    for row in rows:
        if row["family"] in ("BM_Prefill_MHA_Fused", "BM_Prefill_MHA_Fused_Window"):
            result.append(row)
    key = lambda r: (r["args"].get("threads", 0), r["args"].get("W", 0), r["args"].get("T", 0))
    return sorted(result, key=key)


def write_report(args, report, rows, command, path):
    context = report.get("context", {})
    cached = decode_rows(rows, "Cached")
    recompute = decode_rows(rows, "Recompute")
    threads_list = sorted({key[1] for key in list(cached) + list(recompute)})
    lengths = sorted({length for table in (cached, recompute) for by in table.values() for length in by})
    repetitions = max((row["repetitions"] for row in rows), default=0)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    load = context.get("load_avg")
    env = [f"{k}={os.environ[k]}" for k in ("OMP_NUM_THREADS", "OMP_WAIT_POLICY", "GOMP_SPINCOUNT",
                                            "OMP_PROC_BIND") if k in os.environ]
    lines = [
        "Inference with one GPT-2-small attention layer: d_in = d_out = 768, 12 heads of 64, float32, "
        f"batch 1, eval mode, fused kernel (but the reference row); median of {repetitions} run(s) "
        "of each benchmark.",
        "",
        f"- CPU: {cpu_line()}",
        f"- Date: {date}; threads: {', '.join(map(str, threads_list)) or '?'} (attn::set_num_threads, "
        "a benchmark argument; Eigen::setNbThreads with it)"
        + (f"; environment: {' '.join(env)}" if env else "; OMP_* unset"),
        f"- Compiler: {compiler_line(args.build)}",
        f"- Versions: Eigen {eigen_version()}; the Google Benchmark library itself built as "
        f"{context.get('library_build_type', '?')}",
        f"- Command: `{shlex.join(command)}`" if command else f"- From saved JSON: {args.from_json}",
    ]
    if load:
        busy = any(value > 0.5 * (context.get("num_cpus") or os.cpu_count() or 1) for value in load)
        lines.append(f"- Load average when the run started: {', '.join(f'{v:.2f}' for v in load)}"
                     + (" (not a quiet machine: treat the figures with care)" if busy else ""))
    lines += [
        "- Variants: " + "; ".join(f"{short} = {long}" for short, long in VARIANTS.items()),
        "- Cached decode: one forward(x, cache) of one token with L tokens already in the cache; the "
        "cache is restored from a copy of the prefilled one between steps, outside the timed region. "
        "No cache: forward over all L + 1 tokens, whose last row is the new token's output",
        "- GFLOP/s counts projections, out_proj and the attention products of the work each "
        "benchmark does (inference_bench.cpp); a cached step is bound by memory: it reads 9.4 MB "
        "of MHA weights (6.3 MB GQA, 5.1 MB MQA) and the cache",
        "",
    ]
    lines += decode_tables(cached, recompute, threads_list, lengths)

    fits = fit_lines(cached)
    if fits:
        lines += ["Cached decode time per token against the context length L, least squares: "
                  "t(L) = intercept + slope * L", "",
                  "| variant | threads | intercept µs | slope µs per 1000 cached tokens | R² | points |",
                  "|---|---:|---:|---:|---:|---:|"]
        for (variant, threads), (fit, count) in fits.items():
            if fit is None:
                lines.append(f"| {VARIANTS.get(variant, variant)} | {threads} |  |  |  | {count} |")
                continue
            intercept, slope, r2 = fit
            lines.append(f"| {VARIANTS.get(variant, variant)} | {threads} | {intercept:.0f} | "
                         f"{slope * 1e3:.1f} | {r2:.3f} | {count} |")
        lines.append("")

    speedups = []
    for (variant, threads), by_length in sorted(cached.items(), key=variant_order):
        with_cache = by_length.get(SPEEDUP_AT)
        without = recompute.get((variant, threads), {}).get(SPEEDUP_AT)
        if with_cache and without:
            speedups.append((variant, threads, per_token_ms(with_cache), per_token_ms(without)))
    if speedups:
        lines += [f"KV cache against recomputing, at L {SPEEDUP_AT}", "",
                  "| variant | threads | cache ms/token | no cache ms/token | speedup |",
                  "|---|---:|---:|---:|---:|"]
        for variant, threads, fast, slow in speedups:
            lines.append(f"| {VARIANTS.get(variant, variant)} | {threads} | {ms_text(fast)} | "
                         f"{ms_text(slow)} | {slow / fast:.1f}x |")
        lines.append("")

    prefill = prefill_rows(rows)
    if prefill:
        by_key = {(r["args"].get("threads"), r["args"].get("W", 0), r["args"].get("T")): r for r in prefill}
        lines += ["Prefill, MultiHeadAttention, fused kernel, batch 1: a causal prompt of T tokens, "
                  "with a sliding window W or without one (W = T). With a window the attention's cost "
                  "grows as T * W, so the time from T 4096 to T 16384 should grow ~4x (the projections "
                  "too are linear in T); without one the attention grows as T^2 (up to 16x)", "",
                  "| T | window | threads | ms | tokens/s | GFLOP/s | CPU/real | time / time at T 4096 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for row in prefill:
            threads, window, tokens = row["args"].get("threads"), row["args"].get("W", 0), row["args"].get("T")
            base = by_key.get((threads, window, 4096))
            growth = fmt(row["real_ms"] / base["real_ms"], ".2f") + "x" if base and tokens != 4096 else ""
            lines.append(f"| {tokens} | {window or 'none'} | {threads} | {ms_text(row['real_ms'])} | "
                         f"{fmt(row.get('tokens/s'), ',.0f')} | {fmt(row.get('GFLOP/s'), '.0f')} | "
                         f"{fmt(row['cpu_ms'] / row['real_ms'], '.2f')} | {growth} |")
        lines.append("")

    lines += [
        "Notes",
        "",
        "- Process CPU / real time counts every thread of the process while it is on a core. With "
        "libgomp's default wait policy an idle OpenMP thread spins for a while before it sleeps, "
        "so a thread that waits out the single-threaded part of a step (the one-token projections "
        "are matrix-vector products, which Eigen runs on the calling thread) still counts as busy. "
        "Run with OMP_WAIT_POLICY=passive to see how much of a step keeps the second thread idle "
        "(the environment is stated above when set).",
        "- Those spinning threads also make 2-thread rows fragile on a busy machine: when other "
        "processes hold the cores, a parallel region waits for a thread the scheduler has put "
        "aside (measured here while compiles ran: a 2-thread MHA step at L 1 took 30 ms with the "
        "default policy and 0.9 ms with OMP_WAIT_POLICY=passive). Hence the load average above.",
    ]
    with open(path, "w") as f:
        f.write("\n".join(lines) + "\n")
    return cached, recompute


def write_chart(cached, recompute, path):
    try:
        import matplotlib
        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        print("matplotlib not importable: no chart", file=sys.stderr)
        return False
    threads_list = sorted({key[1] for key in list(cached) + list(recompute)})
    if not threads_list:
        return False
    figure, axes = plt.subplots(1, len(threads_list), figsize=(6 * len(threads_list), 4.5),
                                squeeze=False, sharey=True)
    colours = {"MHA": "tab:blue", "MHA_Reference": "tab:purple", "GQA": "tab:orange",
               "MQA": "tab:green"}
    for axis, threads in zip(axes[0], threads_list):
        for table, style, label in ((cached, "-o", "cache"), (recompute, "--s", "no cache")):
            for variant in VARIANTS:
                by_length = table.get((variant, threads))
                if not by_length:
                    continue
                lengths = sorted(by_length)
                # L 1 would sit at 1 on a log axis; plotted at L + 1 (the tokens attended to).
                axis.plot([length + 1 for length in lengths],
                          [per_token_ms(by_length[length]) for length in lengths], style,
                          color=colours.get(variant), markersize=4,
                          label=f"{variant.replace('_Reference', ' ref.')} {label}")
        axis.set_xscale("log", base=2)
        axis.set_yscale("log")
        axis.set_title(f"decode, {threads} thread(s)")
        axis.set_xlabel("tokens attended to (L + 1)")
        axis.grid(True, which="both", alpha=0.3)
    axes[0][0].set_ylabel("ms per token")
    axes[0][0].legend(fontsize=8)
    figure.suptitle("attn: one GPT-2-small attention layer, batch 1, float32")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return True


def main():
    args = parse_args()
    if args.from_json:
        with open(args.from_json) as f:
            report = json.load(f)
        command = None
    else:
        if not os.path.isfile(args.binary) or not os.access(args.binary, os.X_OK):
            print(f"error: {args.binary} not found; build it first:\n"
                  f"  cmake --build {os.path.relpath(args.build)} --target {TARGET}", file=sys.stderr)
            return 2
        os.makedirs(args.output, exist_ok=True)  # before the run, which may be long
        report, command = run_benchmarks(args)
        if args.json:
            os.makedirs(os.path.dirname(os.path.abspath(args.json)), exist_ok=True)
            with open(args.json, "w") as f:
                json.dump(report, f, indent=1)
    rows = medians(report)
    if not rows:
        print("error: the run reported no benchmarks", file=sys.stderr)
        return 1
    os.makedirs(args.output, exist_ok=True)
    markdown = os.path.join(args.output, args.name + ".md")
    cached, recompute = write_report(args, report, rows, command, markdown)
    print(f"wrote {markdown}", file=sys.stderr)
    if not args.no_chart:
        chart = os.path.join(args.output, args.name + ".png")
        if write_chart(cached, recompute, chart):
            print(f"wrote {chart}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
