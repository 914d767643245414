// tapegrad-bench-libtorch: the NT-Xent configurations of tapegrad-bench, written the usual way in
// libtorch (F::normalize, z·zᵀ / temperature, the diagonal masked with -inf, cross-entropy against
// the positives), so that both run on one machine one after the other. Records carry the same
// keys as tapegrad-bench with implementation "libtorch". Peak extra memory is the peak resident
// set size of a fresh process minus its size before the first step. libtorch has no counter like
// tapegrad::memory_stats, so peak_extra_mib repeats that number.

#include <iostream>
#include <limits>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <torch/torch.h>

#include "bench_common.hpp"

namespace {

namespace F = torch::nn::functional;

constexpr double mebibyte = 1024.0 * 1024.0;

nlohmann::json run_configuration(const bench::Configuration& configuration, double min_time) {
  const auto dtype = configuration.dtype == "f32" ? torch::kFloat32 : torch::kFloat64;
  const std::int64_t n = configuration.n;
  const std::int64_t rows = 2 * n;
  const double temperature = 0.5;
  torch::manual_seed(1);
  const torch::Tensor z = torch::randn({rows, configuration.d}, torch::TensorOptions().dtype(dtype)).requires_grad_();
  // Concatenated layout: row a's positive is row (a + N) mod 2N.
  const torch::Tensor positives = (torch::arange(rows) + n) % rows;
  const torch::Tensor diagonal = torch::eye(rows, torch::TensorOptions().dtype(torch::kBool));

  const std::int64_t resident_baseline = bench::resident_bytes();
  const bool peak_resident_reset = bench::reset_peak_resident();

  std::vector<double> forward_times;
  std::vector<double> step_times;
  auto step = [&] {
    const double t0 = bench::now_seconds();
    const torch::Tensor u = F::normalize(z, F::NormalizeFuncOptions().dim(1));
    const torch::Tensor logits =
        torch::mm(u, u.t()).div(temperature).masked_fill(diagonal, -std::numeric_limits<double>::infinity());
    const torch::Tensor loss = F::cross_entropy(logits, positives);
    const double t1 = bench::now_seconds();
    loss.backward();
    const double t2 = bench::now_seconds();
    z.mutable_grad().reset();
    forward_times.push_back((t1 - t0) * 1e3);
    step_times.push_back((t2 - t0) * 1e3);
  };
  step();
  if (step_times.back() < 1e3 * min_time / 4) {
    step();
  }
  forward_times.clear();
  step_times.clear();
  const double start = bench::now_seconds();
  do {
    step();
  } while (bench::now_seconds() - start < min_time);

  const double peak_resident = static_cast<double>(bench::peak_resident_bytes() - resident_baseline) / mebibyte;
  const double forward_backward_ms = bench::median(step_times);
  const double rows_f = static_cast<double>(rows);
  const double floor_flops = 3.0 * rows_f * rows_f * static_cast<double>(configuration.d);
  const nlohmann::json peak = peak_resident_reset ? nlohmann::json(peak_resident) : nlohmann::json(nullptr);
  return {
      {"n", configuration.n},
      {"d", configuration.d},
      {"dtype", configuration.dtype},
      {"implementation", "libtorch"},
      {"forward_ms", bench::median(forward_times)},
      {"forward_backward_ms", forward_backward_ms},
      {"gflops", floor_flops / (forward_backward_ms * 1e-3) / 1e9},
      {"floor_ms", nullptr},
      {"floor_share", nullptr},
      {"peak_extra_mib", peak},
      {"peak_rss_extra_mib", peak},
      {"allocations_per_step", nullptr},
      {"steps", step_times.size()},
      {"torch_threads", torch::get_num_threads()},
  };
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Times NT-Xent forward and forward+backward written the usual way in libtorch."};
  std::string n_list = "16,1024,4096";
  std::string d_list = "128";
  std::string dtype_list = "f32";
  // The numbers stay text until parse_positive checks them, as in tapegrad-bench.
  std::string min_time_text = "2";
  std::string format = "table";
  std::string memory_limit_text = "4096";
  bool child = false;
  app.add_option("--n", n_list, "Comma-separated pair counts N (the batch has 2N rows)")->capture_default_str();
  app.add_option("--d", d_list, "Comma-separated feature counts D")->capture_default_str();
  app.add_option("--dtype", dtype_list, "Comma-separated dtypes: f32, f64")->capture_default_str();
  app.add_option("--min-time", min_time_text,
                 "Seconds of timed steps per configuration, after the warm-up (a positive finite number)")
      ->capture_default_str();
  app.add_option("--format", format, "Output format: table (one line per configuration) or json (an array with one "
                                     "record per configuration)")
      ->check(CLI::IsMember({"table", "json"}))
      ->capture_default_str();
  app.add_option("--memory-limit-mib", memory_limit_text,
                 "Skip configurations whose estimated peak memory (six [2N, 2N] matrices) exceeds this, in MiB")
      ->capture_default_str();
  if (const std::optional<int> status = bench::parse_command_line(app, child, argc, argv)) {
    return *status;
  }

  try {
    const double min_time = bench::parse_positive("--min-time", min_time_text);
    const double memory_limit_mib = bench::parse_positive("--memory-limit-mib", memory_limit_text);
    const std::vector<std::int64_t> ns = bench::parse_sizes("--n", n_list);
    const std::vector<std::int64_t> ds = bench::parse_sizes("--d", d_list);
    const std::vector<std::string> dtypes = bench::parse_names("--dtype", dtype_list, {"f32", "f64"});
    if (child) {
      std::cout << run_configuration({ns.front(), ds.front(), dtypes.front(), "libtorch"}, min_time).dump()
                << std::endl;
      return 0;
    }
    nlohmann::json records = nlohmann::json::array();
    for (const std::string& dtype : dtypes) {
      for (std::int64_t d : ds) {
        for (std::int64_t n : ns) {
          // libtorch keeps the logits, the masked logits, the softmax and their gradients: an
          // estimate of six [2N, 2N] matrices.
          const double rows = 2.0 * static_cast<double>(n);
          const double estimate = 6.0 * rows * rows * (dtype == "f32" ? 4.0 : 8.0);
          if (estimate > memory_limit_mib * mebibyte) {
            std::cerr << "skipping N=" << n << " D=" << d << " " << dtype << " libtorch: it needs about "
                      << bench::format_significant(estimate / mebibyte) << " MiB, more than --memory-limit-mib "
                      << memory_limit_text << "\n";
            continue;
          }
          std::cerr << "running N=" << n << " D=" << d << " " << dtype << " libtorch\n";
          const std::string output =
              bench::run_child("/proc/self/exe", {"--child", "--n", std::to_string(n), "--d", std::to_string(d),
                                                  "--dtype", dtype, "--min-time", min_time_text});
          records.push_back(nlohmann::json::parse(output));
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
  } catch (const std::exception& error) {
    std::cerr << "tapegrad-bench-libtorch: " << error.what() << "\n";
    return 1;
  }
  return 0;
}
