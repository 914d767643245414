// tapegrad-bench: times NT-Xent forward and forward+backward, compares them with the time of
// the matrix products alone, and reports peak extra memory and heap allocations per step.
//
// Each configuration runs in a fresh child process (this executable with --child), see
// bench_common.hpp. Heap allocations are counted by replacing the global operator new below:
// every allocation through new, plus every tensor buffer tapegrad takes from the system
// (tapegrad::memory_stats), per steady-state step. malloc calls made inside OpenBLAS and libgomp
// are not counted.

#include <algorithm>
#include <atomic>
#include <cblas.h>
#include <cstdio>
#include <cstdlib>
#include <iostream>
#include <new>
#include <omp.h>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <tapegrad/losses/nt_xent_fused.hpp>
#include <tapegrad/tapegrad.hpp>

#include "bench_common.hpp"

namespace {

std::atomic<std::int64_t> new_calls{0};

void* counted_allocate(std::size_t bytes, std::size_t alignment) {
  new_calls.fetch_add(1, std::memory_order_relaxed);
  const std::size_t size = bytes == 0 ? 1 : bytes;
  void* memory = alignment <= alignof(std::max_align_t)
                     ? std::malloc(size)
                     : std::aligned_alloc(alignment, (size + alignment - 1) / alignment * alignment);
  if (memory == nullptr) {
    throw std::bad_alloc();
  }
  return memory;
}

}  // namespace

void* operator new(std::size_t bytes) { return counted_allocate(bytes, alignof(std::max_align_t)); }
void* operator new[](std::size_t bytes) { return counted_allocate(bytes, alignof(std::max_align_t)); }
void* operator new(std::size_t bytes, std::align_val_t alignment) {
  return counted_allocate(bytes, static_cast<std::size_t>(alignment));
}
void* operator new[](std::size_t bytes, std::align_val_t alignment) {
  return counted_allocate(bytes, static_cast<std::size_t>(alignment));
}
void* operator new(std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return counted_allocate(bytes, alignof(std::max_align_t));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void* operator new[](std::size_t bytes, const std::nothrow_t&) noexcept {
  try {
    return counted_allocate(bytes, alignof(std::max_align_t));
  } catch (const std::bad_alloc&) {
    return nullptr;
  }
}
void operator delete(void* memory) noexcept { std::free(memory); }
void operator delete[](void* memory) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::align_val_t) noexcept { std::free(memory); }
void operator delete(void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }
void operator delete[](void* memory, std::size_t, std::align_val_t) noexcept { std::free(memory); }

namespace {

namespace tg = tapegrad;

constexpr double mebibyte = 1024.0 * 1024.0;

std::int64_t element_bytes(const std::string& dtype) { return dtype == "f32" ? 4 : 8; }

// Bytes the composed path needs at its peak: about ten [2N, 2N] matrices (the logits, their
// scaled copy, the mask, the exponentials and the gradients of each), an estimate from the graph.
double composed_bytes_estimate(std::int64_t n, const std::string& dtype) {
  const double rows = 2.0 * static_cast<double>(n);
  return 10.0 * rows * rows * static_cast<double>(element_bytes(dtype));
}

// Bytes the fused path needs at its peak, z included: about four [2N, D] matrices (z, u, the
// gradient and one partial gradient per extra thread, two threads here) and, for batches small
// enough, the kept tiles within NtXentOptions::fused_cache_bytes. Measured: 25.4 MiB beyond z at
// N = 8192, D = 128 in float32, where z is 8 MiB.
double fused_bytes_estimate(std::int64_t n, std::int64_t d, const std::string& dtype) {
  const double rows = 2.0 * static_cast<double>(n);
  const double bytes = static_cast<double>(element_bytes(dtype));
  const double kept_tiles = std::min(rows * rows / 2.0 * bytes, static_cast<double>(tg::NtXentOptions{}.fused_cache_bytes));
  return 4.0 * rows * static_cast<double>(d) * bytes + kept_tiles;
}

// Median time of z zᵀ by ?syrk plus one [2N, 2N]·[2N, D] ?gemm: the products NT-Xent cannot avoid.
// Returns a negative value when the [2N, 2N] buffer would exceed limit_bytes.
double time_matrix_product_floor(const tg::Tensor& z, double limit_bytes, double min_time) {
  const std::int64_t rows = z.size(0);
  const std::int64_t features = z.size(1);
  const bool single = z.dtype() == tg::Dtype::f32;
  const double bytes = static_cast<double>(rows) * static_cast<double>(rows) * (single ? 4.0 : 8.0);
  if (bytes > limit_bytes) {
    return -1.0;
  }
  const tg::Tensor square = tg::Tensor::zeros({rows, rows}, z.dtype());
  const tg::Tensor product = tg::Tensor::zeros({rows, features}, z.dtype());
  const auto r = static_cast<blasint>(rows);
  const auto d = static_cast<blasint>(features);
  auto run = [&] {
    if (single) {
      cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, r, d, 1.0F, z.data<float>(), d, 0.0F,
                  static_cast<float*>(square.raw_data()), r);
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, d, r, 1.0F, static_cast<float*>(square.raw_data()), r,
                  z.data<float>(), d, 0.0F, static_cast<float*>(product.raw_data()), d);
    } else {
      cblas_dsyrk(CblasRowMajor, CblasUpper, CblasNoTrans, r, d, 1.0, z.data<double>(), d, 0.0,
                  static_cast<double*>(square.raw_data()), r);
      cblas_dgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, r, d, r, 1.0, static_cast<double*>(square.raw_data()), r,
                  z.data<double>(), d, 0.0, static_cast<double*>(product.raw_data()), d);
    }
  };
  run();  // warm-up: OpenBLAS starts its threads and allocates its buffers
  std::vector<double> times;
  const double start = bench::now_seconds();
  while (times.size() < 3 || (bench::now_seconds() - start < min_time && times.size() < 1000)) {
    const double t0 = bench::now_seconds();
    run();
    times.push_back(bench::now_seconds() - t0);
  }
  return bench::median(times) * 1e3;
}

// Runs one configuration in this process and prints its record as one line of JSON.
nlohmann::json run_configuration(const bench::Configuration& configuration, double min_time, double floor_limit_bytes) {
  const tg::Dtype dtype = configuration.dtype == "f32" ? tg::Dtype::f32 : tg::Dtype::f64;
  const tg::NtXentOptions options{.temperature = 0.5,
                                  .layout = tg::Layout::concatenated,
                                  .reduction = tg::Reduction::mean,
                                  .implementation = configuration.implementation == "fused"
                                                        ? tg::NtXentImplementation::fused
                                                        : tg::NtXentImplementation::composed};
  const tg::Tensor z = tg::Tensor::randn({2 * configuration.n, configuration.d}, 1, dtype);

  const std::int64_t tracked_baseline = tg::memory_stats().live_bytes;
  tg::reset_peak_memory();
  const std::int64_t resident_baseline = bench::resident_bytes();
  const bool peak_resident_reset = bench::reset_peak_resident();

  tg::Tape tape;
  std::vector<double> forward_times;
  std::vector<double> step_times;
  auto step = [&] {
    const double t0 = bench::now_seconds();
    const tg::Var leaf = tape.leaf(z);
    const tg::Var loss = tg::nt_xent(leaf, options);
    const double t1 = bench::now_seconds();
    tape.backward(loss);
    const double t2 = bench::now_seconds();
    tape.clear();
    forward_times.push_back((t1 - t0) * 1e3);
    step_times.push_back((t2 - t0) * 1e3);
  };

  // Warm-up: the first step fills the tape's buffer pool, the second checks nothing is missing.
  step();
  if (step_times.back() < 1e3 * min_time / 4) {
    step();
  }
  forward_times.clear();
  step_times.clear();

  // Room for every timed step, so the bench's own bookkeeping allocates nothing while counting.
  forward_times.reserve(1 << 20);
  step_times.reserve(1 << 20);
  const std::int64_t new_calls_before = new_calls.load();
  const std::int64_t buffers_before = tg::memory_stats().system_allocations;
  const double start = bench::now_seconds();
  do {
    step();
  } while (bench::now_seconds() - start < min_time);
  const auto steps = static_cast<double>(step_times.size());
  const double allocations =
      static_cast<double>(new_calls.load() - new_calls_before + tg::memory_stats().system_allocations - buffers_before);

  const double peak_tracked = static_cast<double>(tg::memory_stats().peak_bytes - tracked_baseline);
  const double peak_resident = static_cast<double>(bench::peak_resident_bytes() - resident_baseline);
  const double rows = 2.0 * static_cast<double>(configuration.n);
  // Floating-point operations of the products at the floor: R²·D for syrk and 2·R²·D for gemm.
  const double floor_flops = 3.0 * rows * rows * static_cast<double>(configuration.d);
  const double forward_backward_ms = bench::median(step_times);
  const double floor_ms = time_matrix_product_floor(z, floor_limit_bytes, std::min(min_time, 1.0));

  nlohmann::json record = {
      {"n", configuration.n},
      {"d", configuration.d},
      {"dtype", configuration.dtype},
      {"implementation", configuration.implementation},
      {"forward_ms", bench::median(forward_times)},
      {"forward_backward_ms", forward_backward_ms},
      {"gflops", floor_flops / (forward_backward_ms * 1e-3) / 1e9},
      {"floor_ms", nullptr},
      {"floor_share", nullptr},
      {"peak_extra_mib", peak_tracked / mebibyte},
      {"peak_rss_extra_mib", peak_resident_reset ? nlohmann::json(peak_resident / mebibyte) : nlohmann::json(nullptr)},
      {"allocations_per_step", allocations / steps},
      {"steps", step_times.size()},
      {"openmp_threads", omp_get_max_threads()},
  };
  if (floor_ms > 0) {
    record["floor_ms"] = floor_ms;
    record["floor_share"] = floor_ms / forward_backward_ms;
  }
  return record;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times NT-Xent forward and forward+backward in tapegrad against the matrix-product floor."};
  std::string n_list = "16,1024,4096";
  std::string d_list = "128";
  std::string dtype_list = "f32";
  std::string implementation_list = "fused,composed";
  // The numbers stay text until parse_positive checks them, so that every invalid value gets the
  // same message and exit status.
  std::string min_time_text = "2";
  std::string format = "table";
  std::string memory_limit_text = "4096";
  std::string floor_limit_text = "2048";
  bool child = false;
  app.add_option("--n", n_list, "Comma-separated pair counts N (the batch has 2N rows)")->capture_default_str();
  app.add_option("--d", d_list, "Comma-separated feature counts D")->capture_default_str();
  app.add_option("--dtype", dtype_list, "Comma-separated dtypes: f32, f64")->capture_default_str();
  app.add_option("--implementation", implementation_list, "Comma-separated implementations: fused, composed")
      ->capture_default_str();
  app.add_option("--min-time", min_time_text,
                 "Seconds of timed steps per configuration, after the warm-up (a positive finite number)")
      ->capture_default_str();
  app.add_option("--format", format, "Output format: table (one line per configuration) or json (an array with one "
                                     "record per configuration)")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--memory-limit-mib", memory_limit_text,
                 "Skip configurations whose estimated peak memory exceeds this, in MiB: ten [2N, 2N] matrices "
                 "for composed, four [2N, D] matrices and up to 32 MiB of kept tiles for fused")
      ->capture_default_str();
  app.add_option("--floor-limit-mib", floor_limit_text,
                 "Measure the matrix-product floor only when its [2N, 2N] buffer fits in this many MiB")
      ->capture_default_str();
  if (const std::optional<int> status = bench::parse_command_line(app, child, argc, argv)) {
    return *status;
  }

  try {
    const double min_time = bench::parse_positive("--min-time", min_time_text);
    const double memory_limit_mib = bench::parse_positive("--memory-limit-mib", memory_limit_text);
    const double floor_limit_mib = bench::parse_positive("--floor-limit-mib", floor_limit_text);
    const std::vector<std::int64_t> ns = bench::parse_sizes("--n", n_list);
    const std::vector<std::int64_t> ds = bench::parse_sizes("--d", d_list);
    const std::vector<std::string> dtypes = bench::parse_names("--dtype", dtype_list, {"f32", "f64"});
    const std::vector<std::string> implementations =
        bench::parse_names("--implementation", implementation_list, {"fused", "composed"});

    if (child) {
      const bench::Configuration configuration{ns.front(), ds.front(), dtypes.front(), implementations.front()};
      std::cout << run_configuration(configuration, min_time, floor_limit_mib * mebibyte).dump() << std::endl;
      return 0;
    }

    nlohmann::json records = nlohmann::json::array();
    for (const std::string& dtype : dtypes) {
      for (std::int64_t d : ds) {
        for (std::int64_t n : ns) {
          for (const std::string& implementation : implementations) {
            const double estimate =
                implementation == "composed" ? composed_bytes_estimate(n, dtype) : fused_bytes_estimate(n, d, dtype);
            if (estimate > memory_limit_mib * mebibyte) {
              std::cerr << "skipping N=" << n << " D=" << d << " " << dtype << " " << implementation
                        << ": it needs about " << bench::format_significant(estimate / mebibyte)
                        << " MiB, more than --memory-limit-mib " << memory_limit_text
                        << " (raise it, or choose a smaller --n or --d)\n";
              continue;
            }
            std::cerr << "running N=" << n << " D=" << d << " " << dtype << " " << implementation << "\n";
            const std::string output = bench::run_child(
                "/proc/self/exe",
                {"--child", "--n", std::to_string(n), "--d", std::to_string(d), "--dtype", dtype, "--implementation",
                 implementation, "--min-time", min_time_text, "--floor-limit-mib", floor_limit_text});
            records.push_back(nlohmann::json::parse(output));
          }
        }
      }
    }
    if (records.empty()) {
      throw std::invalid_argument(
          "every configuration was skipped, see the messages above; raise --memory-limit-mib or choose a smaller --n");
    }
    if (format == "json") {
      std::cout << records.dump(1) << std::endl;
    } else {
      bench::print_table(records);
    }
  } catch (const std::bad_alloc&) {
    std::cerr << "tapegrad-bench: out of memory; choose a smaller --n or --d, or a lower --memory-limit-mib so "
                 "that such configurations are skipped\n";
    return 1;
  } catch (const std::exception& error) {
    std::cerr << "tapegrad-bench: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
