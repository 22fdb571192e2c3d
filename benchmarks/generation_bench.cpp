// Text generation with the book's GPT-2 124M (GPT_CONFIG_124M, weights of torch.manual_seed(123),
// eval mode, float32): tokens per second generating greedily from "Hello, I am" with and
// without the KV cache, and the machine's memory read bandwidth, which bounds a cached step
// (each new token reads every weight of the blocks and the head once).
//
// One timed run per process, as generation_peer.py times PyTorch, so that
// benchmarks/generation_report.py can alternate the two and take medians:
//   bench_generation --threads 2 --tokens 200 --cache on      tokens/s and the ids, as JSON
//   bench_generation ... --weights bfloat16                   the same, weights held in bfloat16
//   bench_generation ... --compute bfloat16                   products under attn::Autocast
//   bench_generation ... --checkpoint gpt2/model.safetensors  the weights of a Hugging Face
//                                                             GPT-2 file instead (streamed in by
//                                                             load_gpt2_checkpoint, in the
//                                                             --weights format), with the load's
//                                                             seconds
//   bench_generation --threads 2 --bandwidth                  GB/s reading a 1 GiB buffer
// Both print one JSON object on stdout.
#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <sstream>
#include <string>
#include <vector>

#include <attn/attn.hpp>
#ifdef ATTN_BENCH_CHECKPOINTS
#include <attn/io/gpt2_checkpoint.hpp>
#endif
#ifdef _OPENMP
#include <omp.h>
#endif

namespace {

using attn::Index;
using Clock = std::chrono::steady_clock;

double seconds_since(Clock::time_point start) {
  return std::chrono::duration<double>(Clock::now() - start).count();
}

struct Arguments {
  int threads = 2;
  Index tokens = 200;
  bool cache = true;
  bool bfloat16 = false;  // --weights float32|bfloat16
  bool autocast = false;  // --compute float32|bfloat16
  bool bandwidth = false;
  std::string checkpoint;  // a Hugging Face GPT-2 model.safetensors; empty: seed 123
  std::vector<Index> prompt{15496, 11, 314, 716};  // "Hello, I am"
};

Arguments parse(int argc, char** argv) {
  Arguments args;
  for (int i = 1; i < argc; ++i) {
    const std::string flag = argv[i];
    const auto value = [&]() -> std::string {
      if (i + 1 >= argc) throw std::invalid_argument(flag + " needs a value");
      return argv[++i];
    };
    if (flag == "--threads") {
      args.threads = std::stoi(value());
    } else if (flag == "--tokens") {
      args.tokens = std::stol(value());
    } else if (flag == "--cache") {
      args.cache = value() == "on";
    } else if (flag == "--weights") {
      const std::string weights = value();
      if (weights != "float32" && weights != "bfloat16") {
        throw std::invalid_argument("--weights must be float32 or bfloat16, not " + weights);
      }
      args.bfloat16 = weights == "bfloat16";
    } else if (flag == "--compute") {
      const std::string compute = value();
      if (compute != "float32" && compute != "bfloat16") {
        throw std::invalid_argument("--compute must be float32 or bfloat16, not " + compute);
      }
      args.autocast = compute == "bfloat16";
    } else if (flag == "--checkpoint") {
#ifdef ATTN_BENCH_CHECKPOINTS
      args.checkpoint = value();
#else
      throw std::invalid_argument("--checkpoint needs attn::io (nlohmann-json3-dev) at build time");
#endif
    } else if (flag == "--bandwidth") {
      args.bandwidth = true;
    } else if (flag == "--prompt") {
      args.prompt.clear();
      std::stringstream ids(value());
      for (std::string id; std::getline(ids, id, ',');) args.prompt.push_back(std::stol(id));
    } else {
      throw std::invalid_argument(
          "unknown argument " + flag +
          " (--threads N --tokens N --cache on|off --weights float32|bfloat16 "
          "--compute float32|bfloat16 "
          "--checkpoint model.safetensors --prompt ids | "
          "--bandwidth)");
    }
  }
  return args;
}

// The best of several sums of a 1 GiB float buffer, split over `threads` threads, each thread
// reading four parts of its share side by side (as a matrix-vector product reads several rows;
// one stream per thread reads ~20 % slower here): the rate at which this machine streams memory
// it has not got cached.
double read_bandwidth_gb_per_s(int threads) {
  const Index count = Index{1} << 28;
  std::vector<float> buffer(static_cast<std::size_t>(count), 1.0f);
  double best = 1e30, total = 0;
  for (int pass = 0; pass < 6; ++pass) {
    const auto start = Clock::now();
    double sum = 0;
#ifdef _OPENMP
#pragma omp parallel num_threads(threads) reduction(+ : sum)
#endif
    {
      int part = 0, parts = 1;
#ifdef _OPENMP
      part = omp_get_thread_num();
      parts = omp_get_num_threads();
#endif
      const Index begin = count * part / parts, quarter = (count * (part + 1) / parts - begin) / 4;
      const Eigen::Map<const Eigen::ArrayXf> all(buffer.data() + begin, 4 * quarter);
      sum += (all.segment(0, quarter) + all.segment(quarter, quarter) +
              all.segment(2 * quarter, quarter) + all.segment(3 * quarter, quarter))
                 .sum();
    }
    best = std::min(best, seconds_since(start));
    total += sum;
  }
  if (!(total > 0)) throw std::logic_error("bandwidth: the sums were not computed");
  return static_cast<double>(count) * sizeof(float) / best * 1e-9;
}

}  // namespace

int main(int argc, char** argv) {
  try {
    const Arguments args = parse(argc, argv);
    attn::set_num_threads(args.threads);
    if (args.bandwidth) {
      std::printf("{\"threads\": %d, \"read_gb_per_s\": %.3f}\n", args.threads,
                  read_bandwidth_gb_per_s(args.threads));
      return 0;
    }
    // Built (or loaded) in bfloat16 from the start: never more than the 2-byte weights in
    // memory.
    const auto format = args.bfloat16 ? attn::WeightFormat::bfloat16 : attn::WeightFormat::scalar;
    const auto load_start = Clock::now();
    attn::GPTModel<float> model = [&] {
#ifdef ATTN_BENCH_CHECKPOINTS
      if (!args.checkpoint.empty()) {
        attn::io::Gpt2LoadOptions load;
        load.weight_format = format;
        return attn::io::load_gpt2_checkpoint(args.checkpoint, load);
      }
#endif
      return attn::GPTModel<float>(attn::gpt_config_124m, attn::Generator(123), format);
    }();
    const double load_seconds = seconds_since(load_start);
    model.eval();
    const attn::Autocast autocast(args.autocast ? attn::Compute::bfloat16 : attn::Compute::scalar);
    attn::Tensor<Index, 2> prompt({1, static_cast<Index>(args.prompt.size())});
    std::copy(args.prompt.begin(), args.prompt.end(), prompt.data());
    attn::GenerationOptions options;
    options.use_cache = args.cache;
    attn::Generator unused;      // greedy
    options.max_new_tokens = 2;  // warm-up: buffer pool, threads, page faults
    attn::generate(model, prompt.view(), options, unused);
    options.max_new_tokens = args.tokens;
    const auto start = Clock::now();
    const attn::Tensor<Index, 2> ids = attn::generate(model, prompt.view(), options, unused);
    const double seconds = seconds_since(start);
    std::ostringstream json;
    json << "{\"threads\": " << args.threads << ", \"cache\": \"" << (args.cache ? "on" : "off")
         << "\", \"weights\": \"" << (args.bfloat16 ? "bfloat16" : "float32")
         << "\", \"compute\": \"" << (args.autocast ? "bfloat16" : "float32") << "\", \"model\": \""
         << (args.checkpoint.empty() ? "seed 123" : args.checkpoint)
         << "\", \"load_seconds\": " << load_seconds << ", \"isa\": \""
         << attn::isa_name(attn::isa()) << "\", \"tokens\": " << args.tokens
         << ", \"seconds\": " << seconds
         << ", \"tokens_per_second\": " << static_cast<double>(args.tokens) / seconds
         << ", \"ids\": [";
    for (Index i = 0; i < ids.size(1); ++i) json << (i ? ", " : "") << ids(0, i);
    json << "]}";
    std::cout << json.str() << '\n';
  } catch (const std::exception& error) {
    std::cerr << "bench_generation: " << error.what() << '\n';
    return 1;
  }
  return 0;
}
