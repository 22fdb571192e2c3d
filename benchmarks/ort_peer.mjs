// Times ONNX Runtime (CPU) on the attention graphs that benchmarks/ort_peer.py writes.
//
//   NODE_PATH=build/ort/node_modules node benchmarks/ort_peer.mjs \
//       --dir DIR --threads 2 --repeats 5 [--input x.f32] [--write-outputs] [--variants a,b]
//
// DIR holds manifest.json (batch, tokens, d_model and one entry per model file) from
// ort_peer.py. The input x (batch, tokens, d_model) comes from a raw little-endian float32 file,
// or, without --input, from the integer generator below, which ort_peer.py reproduces bit for bit.
// Each model gets its own session: one warm-up run, then `repeats` timed runs. The last line on
// stdout is one JSON object; a model that fails to load or run is reported with an "error" field
// instead of stopping the others, so one unsupported operator does not hide the rest.

import { createRequire } from 'node:module';
import fs from 'node:fs';
import path from 'node:path';
import { performance } from 'node:perf_hooks';

// onnxruntime-node is a CommonJS package found through NODE_PATH, which ES `import` ignores;
// a CommonJS require made here honours it.
const require = createRequire(import.meta.url);
const ort = require('onnxruntime-node');

function parseArgs(argv) {
  const args = { threads: 1, repeats: 5, input: null, writeOutputs: false, variants: null,
                 saveOptimized: false };
  for (let i = 0; i < argv.length; i++) {
    const flag = argv[i];
    const value = () => argv[++i];
    if (flag === '--dir') args.dir = value();
    else if (flag === '--threads') args.threads = Number(value());
    else if (flag === '--repeats') args.repeats = Number(value());
    else if (flag === '--input') args.input = value();
    else if (flag === '--write-outputs') args.writeOutputs = true;
    else if (flag === '--save-optimized') args.saveOptimized = true;
    else if (flag === '--variants') args.variants = value().split(',');
    else throw new Error(`unknown argument ${flag}`);
  }
  if (!args.dir) throw new Error('--dir is required');
  return args;
}

// Same numbers as ort_peer.deterministic_input: a 32-bit LCG, top 24 bits mapped to [-1, 1).
function deterministicInput(count) {
  const data = new Float32Array(count);
  let state = 12345;
  for (let i = 0; i < count; i++) {
    state = (Math.imul(state, 1664525) + 1013904223) >>> 0;
    data[i] = (state >>> 8) / 16777216 * 2 - 1;
  }
  return data;
}

function readFloat32(file, count) {
  const bytes = fs.readFileSync(file);
  if (bytes.length !== count * 4) {
    throw new Error(`${file}: ${bytes.length} bytes, expected ${count * 4}`);
  }
  // Copy into a fresh ArrayBuffer: a Buffer's offset need not be 4-byte aligned.
  return new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
}

function median(values) {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2;
}

async function timeModel(entry, args, manifest, input) {
  const options = {
    intraOpNumThreads: args.threads,
    interOpNumThreads: 1,
    graphOptimizationLevel: 'all',
    executionMode: 'sequential',
    executionProviders: ['cpu'],
  };
  if (args.saveOptimized) {
    options.optimizedModelFilePath = path.join(args.dir, `${entry.variant}.optimized.onnx`);
  }
  const loadStart = performance.now();
  const session = await ort.InferenceSession.create(path.join(args.dir, entry.file), options);
  const loadMs = performance.now() - loadStart;
  const shape = [manifest.batch, manifest.tokens, manifest.d_model];
  const feeds = { [session.inputNames[0]]: new ort.Tensor('float32', input, shape) };

  let result = await session.run(feeds);  // warm-up: first-run allocations and kernel setup
  const times = [];
  const cpuStart = process.cpuUsage();
  const wallStart = performance.now();
  for (let r = 0; r < args.repeats; r++) {
    const start = performance.now();
    result = await session.run(feeds);
    times.push(performance.now() - start);
  }
  const wallMs = performance.now() - wallStart;
  const cpu = process.cpuUsage(cpuStart);  // whole process, every ORT pool thread included
  const cpuMs = (cpu.user + cpu.system) / 1000;

  const output = result[session.outputNames[0]];
  const row = {
    variant: entry.variant,
    ms: times.length ? median(times) : null,
    min_ms: times.length ? Math.min(...times) : null,
    times_ms: times,
    load_ms: loadMs,
    cpu_ms: cpuMs,
    wall_ms: wallMs,
    cpu_per_wall: wallMs > 0 ? cpuMs / wallMs : null,
    output_shape: output.dims,
  };
  if (args.writeOutputs) {
    const file = path.join(args.dir, `${entry.variant}.out.f32`);
    const data = output.data;
    fs.writeFileSync(file, Buffer.from(data.buffer, data.byteOffset, data.byteLength));
    row.output_file = file;
  }
  await session.release();
  return row;
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const manifest = JSON.parse(fs.readFileSync(path.join(args.dir, 'manifest.json'), 'utf8'));
  const count = manifest.batch * manifest.tokens * manifest.d_model;
  const input = args.input ? readFloat32(args.input, count) : deterministicInput(count);

  const results = [];
  for (const entry of manifest.models) {
    if (args.variants && !args.variants.includes(entry.variant)) continue;
    try {
      results.push(await timeModel(entry, args, manifest, input));
    } catch (error) {
      results.push({ variant: entry.variant, ms: null, error: String(error.message || error) });
    }
  }
  console.log(JSON.stringify({
    ort_version: ort.env.versions ? ort.env.versions.node : null,
    node_version: process.version,
    threads: args.threads,
    repeats: args.repeats,
    batch: manifest.batch,
    tokens: manifest.tokens,
    results,
  }));
}

main().catch((error) => {
  console.error(error);
  process.exit(1);
});
