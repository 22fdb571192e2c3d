#!/usr/bin/python3
"""Loading a GPT-2 124M checkpoint (Hugging Face layout) and decoding from it: load time, decode
rate and the process's peak memory, as a Markdown report.

attn::io::load_gpt2_checkpoint reads the file tensor by tensor (SafetensorsReader) straight into
the model: its peak is the model plus a block, whatever the file's size. This report shows it
beside the same model built from seed 123 in the same process layout (no file at all), which is
the floor: a loaded model should cost what a built one costs.

The checkpoints have GPT-2 124M's shapes (vocab 50257, context 1024, 768 wide, 12 blocks; the
Hugging Face hub's gpt2 holds these tensors, without lm_head: the head is tied to wte) and
random values; load time and memory depend on the shapes and dtypes only. They are written
once, F32 (498 MB) and BF16 (249 MB) with the hub's config.json beside them, by this script with
the standard library (no PyTorch).

Runs bench_generation (default build/portable: -DATTN_NATIVE=OFF, the dispatched
attn::compiled) with --checkpoint, 1 thread, greedy decoding of 200 tokens with the KV cache, in
each format the model may keep its weights in (--weights float32 | bfloat16), alternating
everything, --repetitions rounds; peak RSS from wait4.

    cmake --build build/portable --target bench_generation
    /usr/bin/python3 benchmarks/checkpoint_report.py --output benchmarks/results

Writes DIR/checkpoint_gpt2.md (default build/checkpoint/). Standard library only.
"""
import argparse
import array
import datetime
import json
import os
import random
import statistics

from dispatch_report import compiler, isa_of, run_rss  # benchmarks/, beside this script
from generation_report import lscpu_model, write_markdown

ROOT = os.path.dirname(os.path.abspath(__file__)).rsplit(os.sep, 1)[0]
V, C, E, L = 50257, 1024, 768, 12


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--build", default=os.path.join(ROOT, "build", "portable"))
    parser.add_argument("--checkpoints", default=os.path.join(ROOT, "build", "checkpoints"),
                        help="where the two GPT-2 124M files are written (once)")
    parser.add_argument("--repetitions", type=int, default=3)
    parser.add_argument("--output", default=os.path.join(ROOT, "build", "checkpoint"))
    return parser.parse_args()


def gpt2_shapes():
    shapes = {"wte.weight": [V, E], "wpe.weight": [C, E], "ln_f.weight": [E], "ln_f.bias": [E]}
    for n in range(L):
        h = f"h.{n}."
        for name, shape in (("ln_1.weight", [E]), ("ln_1.bias", [E]), ("ln_2.weight", [E]),
                            ("ln_2.bias", [E]), ("attn.c_attn.weight", [E, 3 * E]),
                            ("attn.c_attn.bias", [3 * E]), ("attn.c_proj.weight", [E, E]),
                            ("attn.c_proj.bias", [E]), ("mlp.c_fc.weight", [E, 4 * E]),
                            ("mlp.c_fc.bias", [4 * E]), ("mlp.c_proj.weight", [4 * E, E]),
                            ("mlp.c_proj.bias", [E])):
            shapes[h + name] = shape
    return shapes


def write_checkpoint(path, dtype):
    """A safetensors file of GPT-2 124M's tensors, F32 or BF16: a block of N(0, 0.02) values
    tiled over each tensor (BF16: their top 16 bits)."""
    pattern = array.array("f", (random.Random(1).gauss(0, 0.02) for _ in range(65536)))
    shapes = gpt2_shapes()
    size = 4 if dtype == "F32" else 2
    header, offset = {}, 0
    for name in sorted(shapes):
        count = 1
        for extent in shapes[name]:
            count *= extent
        header[name] = {"dtype": dtype, "shape": shapes[name],
                        "data_offsets": [offset, offset + count * size]}
        offset += count * size
    text = json.dumps(header, separators=(",", ":"))
    text += " " * ((8 - len(text) % 8) % 8)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path + ".part", "wb") as out:
        out.write(len(text).to_bytes(8, "little"))
        out.write(text.encode())
        for name in sorted(shapes):
            count = (header[name]["data_offsets"][1] - header[name]["data_offsets"][0]) // size
            values = (pattern * (count // len(pattern) + 1))[:count]
            if dtype == "BF16":
                values = array.array("H", values.tobytes())[1::2]  # little-endian: high halves
            out.write(values.tobytes())
    os.replace(path + ".part", path)
    with open(os.path.join(os.path.dirname(path), "config.json"), "w") as config:
        json.dump({"model_type": "gpt2", "vocab_size": V, "n_positions": C, "n_embd": E,
                   "n_layer": L, "n_head": 12}, config)


def decode(build, weights, checkpoint):
    command = [os.path.join(build, "benchmarks", "bench_generation"), "--threads", "1",
               "--cache", "on", "--tokens", "200", "--weights", weights]
    if checkpoint:
        command += ["--checkpoint", checkpoint]
    out, rss = run_rss(command)
    result = json.loads(out)
    return result["load_seconds"], result["tokens_per_second"], rss


def main():
    args = parse_args()
    files = {}
    for dtype in ("F32", "BF16"):
        files[dtype] = os.path.join(args.checkpoints, f"gpt2-124m-{dtype.lower()}",
                                    "model.safetensors")
        if not os.path.exists(files[dtype]):
            write_checkpoint(files[dtype], dtype)
    sources = [("seed 123 (no file)", None), ("F32 file", files["F32"]),
               ("BF16 file", files["BF16"])]
    results = {}  # (source, weights) -> [(load s, tokens/s, peak MB)]
    started = datetime.datetime.now(datetime.timezone.utc)
    for _ in range(args.repetitions):
        for weights in ("float32", "bfloat16"):
            for source, path in sources:
                results.setdefault((source, weights), []).append(decode(args.build, weights, path))
    finished = datetime.datetime.now(datetime.timezone.utc)

    median = statistics.median
    lines = [
        "# Loading GPT-2 124M from a checkpoint: time and peak memory",
        "",
        f"- CPU: {lscpu_model()}, {os.cpu_count()} logical CPUs; attn::compiled level: "
        f"{isa_of(args.build)}; {compiler()}",
        f"- Build: `{os.path.relpath(args.build, ROOT)}`; "
        f"{started:%Y-%m-%d %H:%M}-{finished:%H:%M} UTC; {args.repetitions} rounds, medians.",
        "- Checkpoints: GPT-2 124M's tensors in the Hugging Face layout (no lm_head: tied), "
        "random values; F32 498 MB, BF16 249 MB. attn's GPTModel unties the head: 163.0M "
        "parameters, 652 MB (622 MiB) in float32, 328 MB (313 MiB) with the embeddings, "
        "projections and head in bfloat16.",
        "- Each row: one process that loads (or builds) the model, then decodes 200 tokens "
        "greedily with the KV cache on 1 thread; peak RSS is that whole process's (wait4).",
        "",
        "| model from | weights kept as | load or build s | decode tok/s | peak RSS MiB |",
        "|---|---|---:|---:|---:|",
    ]
    for weights in ("float32", "bfloat16"):
        for source, _ in sources:
            runs = results[(source, weights)]
            lines.append(f"| {source} | {weights} | {median(r[0] for r in runs):.2f} | "
                         f"{median(r[1] for r in runs):.0f} | {median(r[2] for r in runs):.0f} |")
    write_markdown(args.output, "checkpoint_gpt2.md", lines)


if __name__ == "__main__":
    main()
