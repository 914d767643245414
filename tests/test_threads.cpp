// Tapes on several threads at once: one tape per thread and nothing mutable shared, so four
// threads computing NT-Xent together get bit for bit what one thread gets alone. The suite is
// also built with -fsanitize=thread (see .ci/run), which reports any data race it provokes.
#include <doctest/doctest.h>

#include <cstdint>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

#include <cblas.h>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

constexpr int thread_count = 4;
constexpr int steps_per_thread = 3;

// The loss and dz of one NT-Xent step, as raw bytes, so that comparing them is bit for bit (a
// comparison of doubles would call -0 and 0 equal).
struct StepBytes {
  std::vector<unsigned char> loss;
  std::vector<unsigned char> grad;

  bool operator==(const StepBytes&) const = default;
};

std::vector<unsigned char> bytes_of(const tg::Tensor& tensor) {
  const auto size = static_cast<std::size_t>(tensor.numel() * tg::dtype_size(tensor.dtype()));
  std::vector<unsigned char> bytes(size);
  std::memcpy(bytes.data(), tensor.raw_data(), size);
  return bytes;
}

struct Problem {
  tg::Tensor z;
  tg::NtXentOptions options;
};

// Rows 2N = 600 make three tiles of 256 rows in the fused path, so its tile pairs are spread over
// OpenMP threads inside each calling thread; D = 24 keeps the sanitizer build quick.
Problem make_problem(std::uint64_t seed, tg::Dtype dtype, tg::NtXentImplementation implementation) {
  return {.z = tg::Tensor::randn({600, 24}, seed, dtype),
          .options = {.temperature = 0.2, .reduction = tg::Reduction::mean, .implementation = implementation}};
}

// Runs the step on `tape`, clearing it afterwards so the next step reuses its buffers.
StepBytes run_step(tg::Tape& tape, const Problem& problem) {
  tg::Var z = tape.leaf(problem.z);
  tg::Var loss = tg::nt_xent(z, problem.options);
  tape.backward(loss);
  StepBytes result{bytes_of(loss.value()), bytes_of(z.grad())};
  tape.clear();
  return result;
}

// Each thread runs steps_per_thread steps on a tape of its own, on problems[t], and keeps every
// step's bytes.
std::vector<std::vector<StepBytes>> run_concurrently(const std::vector<Problem>& problems) {
  std::vector<std::vector<StepBytes>> results(problems.size());
  std::vector<std::string> failures(problems.size());
  std::vector<std::thread> threads;
  for (std::size_t t = 0; t < problems.size(); ++t) {
    threads.emplace_back([&, t] {
      try {
        tg::Tape tape;
        for (int step = 0; step < steps_per_thread; ++step) {
          results[t].push_back(run_step(tape, problems[t]));
        }
      } catch (const std::exception& error) {
        failures[t] = error.what();
      }
    });
  }
  for (std::thread& thread : threads) {
    thread.join();
  }
  for (std::size_t t = 0; t < problems.size(); ++t) {
    CAPTURE(t);
    REQUIRE(failures[t].empty());
  }
  return results;
}

void check_against_single_thread(const std::vector<Problem>& problems) {
  const std::vector<std::vector<StepBytes>> concurrent = run_concurrently(problems);
  for (std::size_t t = 0; t < problems.size(); ++t) {
    tg::Tape tape;
    const StepBytes alone = run_step(tape, problems[t]);
    REQUIRE(concurrent[t].size() == steps_per_thread);
    for (int step = 0; step < steps_per_thread; ++step) {
      CAPTURE(t);
      CAPTURE(step);
      CHECK(concurrent[t][static_cast<std::size_t>(step)] == alone);
    }
  }
}

}  // namespace

TEST_CASE("four threads on one problem match one thread") {
  for (const auto implementation : {tg::NtXentImplementation::fused, tg::NtXentImplementation::composed}) {
    for (const auto dtype : {tg::Dtype::f32, tg::Dtype::f64}) {
      CAPTURE(static_cast<int>(implementation));
      CAPTURE(dtype);
      check_against_single_thread(std::vector<Problem>(thread_count, make_problem(7, dtype, implementation)));
    }
  }
}

// Sets OpenBLAS to one thread for one test. OpenBLAS rounds differently with another thread count,
// and a fused call sets the process-wide count to one while it runs. So a composed loss that runs
// beside a fused one is bit-identical only when OpenBLAS runs one thread throughout.
class OneBlasThread {
 public:
  OneBlasThread() : previous_(openblas_get_num_threads()) { openblas_set_num_threads(1); }
  OneBlasThread(const OneBlasThread&) = delete;
  OneBlasThread& operator=(const OneBlasThread&) = delete;
  ~OneBlasThread() { openblas_set_num_threads(previous_); }

 private:
  int previous_;
};

TEST_CASE("four threads on four problems match one thread") {
  // Different inputs, dtypes and paths on each thread, so that a buffer or scratch array shared by
  // mistake would mix one thread's values into another's.
  const OneBlasThread one_blas_thread;
  const std::vector<Problem> problems = {
      make_problem(1, tg::Dtype::f32, tg::NtXentImplementation::fused),
      make_problem(2, tg::Dtype::f64, tg::NtXentImplementation::fused),
      make_problem(3, tg::Dtype::f32, tg::NtXentImplementation::composed),
      make_problem(4, tg::Dtype::f64, tg::NtXentImplementation::composed),
  };
  check_against_single_thread(problems);
}

TEST_CASE("byte comparison separates 0 and -0") {
  // Guards the check above: equal doubles with different bits (0 and -0) must compare unequal.
  const tg::Tensor zero = tg::Tensor::from_values({1}, {0.0});
  const tg::Tensor negative_zero = tg::Tensor::from_values({1}, {-0.0});
  CHECK(bytes_of(zero) != bytes_of(negative_zero));
  CHECK(bytes_of(zero) == bytes_of(tg::Tensor::from_values({1}, {0.0})));
}
