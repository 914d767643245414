// The fused NT-Xent against float64 references computed outside tapegrad, against the composed
// loss built from the library's ops, and against finite differences. Its vectorized exp is
// checked against std::exp.
#include <doctest/doctest.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstdint>
#include <fstream>
#include <limits>
#include <vector>

#include <nlohmann/json.hpp>
#include <omp.h>
#include <tapegrad/losses/nt_xent_fused.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using nlohmann::json;

namespace {

const tg::Layout layouts[] = {tg::Layout::concatenated, tg::Layout::interleaved};
const tg::Reduction reductions[] = {tg::Reduction::mean, tg::Reduction::sum, tg::Reduction::none};

struct LossAndGradient {
  std::vector<double> loss;  // one value for mean and sum, 2N for none
  std::vector<double> grad;  // d(sum of the loss values)/dz, row-major
};

// Evaluates NT-Xent and its gradient with every output element seeded with 1.
LossAndGradient evaluate(const tg::Tensor& z, tg::NtXentOptions options, tg::NtXentImplementation implementation) {
  options.implementation = implementation;
  tg::Tape tape;
  tg::Var leaf = tape.leaf(z);
  tg::Var loss = tg::nt_xent(leaf, options);
  tape.backward(loss, tg::Tensor::ones(loss.shape(), loss.dtype()));
  return {loss.value().to_vector(), leaf.grad().to_vector()};
}

// The same through nt_xent_fused, the op itself.
LossAndGradient evaluate_fused(const tg::Tensor& z, const tg::NtXentOptions& options) {
  tg::Tape tape;
  tg::Var leaf = tape.leaf(z);
  tg::Var loss = tg::nt_xent_fused(leaf, options);
  tape.backward(loss, tg::Tensor::ones(loss.shape(), loss.dtype()));
  return {loss.value().to_vector(), leaf.grad().to_vector()};
}

double max_abs(const std::vector<double>& values) {
  double largest = 0.0;
  for (double value : values) {
    largest = std::max(largest, std::abs(value));
  }
  return largest;
}

double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b) {
  REQUIRE(a.size() == b.size());
  double largest = 0.0;
  for (std::size_t i = 0; i < a.size(); ++i) {
    largest = std::max(largest, std::abs(a[i] - b[i]));
  }
  return largest;
}

bool all_finite(const std::vector<double>& values) {
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

tg::Layout parse_layout(const std::string& name) {
  return name == "interleaved" ? tg::Layout::interleaved : tg::Layout::concatenated;
}

tg::Reduction parse_reduction(const std::string& name) {
  if (name == "sum") {
    return tg::Reduction::sum;
  }
  return name == "none" ? tg::Reduction::none : tg::Reduction::mean;
}

std::vector<double> flatten(const json& rows) {
  std::vector<double> values;
  for (const json& row : rows) {
    for (const json& value : row) {
      values.push_back(value.get<double>());
    }
  }
  return values;
}

json load_golden_cases() {
  std::ifstream file(std::string(TAPEGRAD_TEST_DATA) + "/nt_xent_cases.json");
  REQUIRE(file.good());
  return json::parse(file).at("cases");
}

tg::Tensor golden_z(const json& reference, tg::Dtype dtype) {
  const json& rows = reference.at("z");
  return tg::Tensor::from_values({static_cast<std::int64_t>(rows.size()), static_cast<std::int64_t>(rows[0].size())},
                                 flatten(rows), dtype);
}

tg::NtXentOptions golden_options(const json& reference) {
  return {.temperature = reference.at("temperature").get<double>(),
          .layout = parse_layout(reference.at("layout")),
          .reduction = parse_reduction(reference.at("reduction"))};
}

std::vector<double> golden_loss(const json& reference) {
  if (reference.at("loss").is_array()) {
    return reference.at("loss").get<std::vector<double>>();
  }
  return {reference.at("loss").get<double>()};
}

// Per-anchor losses straight from the formula, in float64 with std::exp and std::log and no
// tiling: the independent reference for batches larger than one tile.
std::vector<double> reference_per_anchor(const tg::Tensor& z, double temperature, tg::Layout layout) {
  const std::int64_t rows = z.size(0);
  const std::int64_t features = z.size(1);
  const std::vector<double> values = z.to_vector();
  std::vector<double> u(values.size());
  for (std::int64_t a = 0; a < rows; ++a) {
    double squares = 0.0;
    for (std::int64_t k = 0; k < features; ++k) {
      squares += values[a * features + k] * values[a * features + k];
    }
    const double divisor = std::max(std::sqrt(squares), 1e-12);
    for (std::int64_t k = 0; k < features; ++k) {
      u[a * features + k] = values[a * features + k] / divisor;
    }
  }
  std::vector<double> losses(static_cast<std::size_t>(rows));
  std::vector<double> logits(static_cast<std::size_t>(rows));
  for (std::int64_t a = 0; a < rows; ++a) {
    double maximum = -std::numeric_limits<double>::infinity();
    for (std::int64_t b = 0; b < rows; ++b) {
      double dot = 0.0;
      for (std::int64_t k = 0; k < features; ++k) {
        dot += u[a * features + k] * u[b * features + k];
      }
      logits[b] = dot / temperature;
      if (b != a) {
        maximum = std::max(maximum, logits[b]);
      }
    }
    double sum = 0.0;
    for (std::int64_t b = 0; b < rows; ++b) {
      if (b != a) {
        sum += std::exp(logits[b] - maximum);
      }
    }
    const std::int64_t partner = layout == tg::Layout::concatenated ? (a + rows / 2) % rows : (a ^ 1);
    losses[a] = maximum + std::log(sum) - logits[partner];
  }
  return losses;
}

// Distance in units in the last place between two finite floats of one sign.
std::int64_t ulp_distance(float a, float b) {
  return std::abs(static_cast<std::int64_t>(std::bit_cast<std::int32_t>(a)) -
                  static_cast<std::int64_t>(std::bit_cast<std::int32_t>(b)));
}

std::int64_t ulp_distance(double a, double b) {
  const std::int64_t x = std::bit_cast<std::int64_t>(a);
  const std::int64_t y = std::bit_cast<std::int64_t>(b);
  return x > y ? x - y : y - x;
}

}  // namespace

// ---- exp ---------------------------------------------------------------------------------------

TEST_CASE("exp float32 within 1 ulp") {
  // Every 97th float32 bit pattern from -110 to 95, which spans underflow to 0 (below about
  // -103.97), the subnormal results, the normal range and overflow to +inf (above about 88.72).
  std::vector<float> x;
  for (float v = -110.0F; v < 95.0F;) {
    x.push_back(v);
    const auto bits = std::bit_cast<std::uint32_t>(v);
    v = v < 0.0F ? std::bit_cast<float>(bits >= 97 ? bits - 97 : 0U) : std::bit_cast<float>(bits + 97);
    if (v == 0.0F && x.back() < 0.0F) {
      x.push_back(-0.0F);
      v = std::bit_cast<float>(std::uint32_t{1});
    }
  }
  REQUIRE(x.size() > 2'000'000);
  std::vector<float> y(x.size());
  tg::detail::exp_elements(x.data(), y.data(), static_cast<std::int64_t>(x.size()));

  std::int64_t worst_normal = 0;
  float worst_subnormal = 0.0F;
  std::int64_t mismatched_special = 0;
  for (std::size_t i = 0; i < x.size(); ++i) {
    const float expected = std::exp(x[i]);
    if (std::isinf(expected) || expected == 0.0F) {
      // Overflow and full underflow are exact, except within one step of the thresholds.
      mismatched_special += (y[i] != expected && ulp_distance(y[i], expected) > 1) ? 1 : 0;
    } else if (expected < std::numeric_limits<float>::min()) {
      worst_subnormal = std::max(worst_subnormal, std::abs(y[i] - expected));
    } else {
      worst_normal = std::max(worst_normal, ulp_distance(y[i], expected));
    }
  }
  CHECK(worst_normal <= 1);
  // A subnormal result is rounded once to the subnormal grid: at most one grid step off.
  CHECK(worst_subnormal <= std::numeric_limits<float>::denorm_min());
  CHECK(mismatched_special == 0);
}

TEST_CASE("exp float64 within 4 ulp") {
  std::vector<double> x;
  const std::int64_t count = 3'000'000;
  for (std::int64_t i = 0; i < count; ++i) {
    x.push_back(-750.0 + 1465.0 * static_cast<double>(i) / static_cast<double>(count - 1));
  }
  std::vector<double> y(x.size());
  tg::detail::exp_elements(x.data(), y.data(), count);
  std::int64_t worst_normal = 0;
  double worst_relative = 0.0;
  double worst_subnormal = 0.0;
  std::int64_t mismatched_special = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    const double expected = std::exp(x[i]);
    if (std::isinf(expected) || expected == 0.0) {
      mismatched_special += (y[i] != expected && ulp_distance(y[i], expected) > 1) ? 1 : 0;
    } else if (expected < std::numeric_limits<double>::min()) {
      worst_subnormal = std::max(worst_subnormal, std::abs(y[i] - expected));
    } else {
      worst_normal = std::max(worst_normal, ulp_distance(y[i], expected));
      worst_relative = std::max(worst_relative, std::abs(y[i] - expected) / expected);
    }
  }
  // The degree-12 polynomial and its rounding stay within 4 ulp, which is below 1e-15 relative.
  CHECK(worst_normal <= 4);
  CHECK(worst_relative <= 1e-15);
  CHECK(worst_subnormal <= std::numeric_limits<double>::denorm_min());
  CHECK(mismatched_special == 0);
}

TEST_CASE("exp special values") {
  const float inf_f = std::numeric_limits<float>::infinity();
  const double inf_d = std::numeric_limits<double>::infinity();
  const std::vector<float> x_f = {0.0F, -0.0F, -inf_f, inf_f, std::numeric_limits<float>::quiet_NaN(), 1.0F};
  const std::vector<double> x_d = {0.0, -0.0, -inf_d, inf_d, std::numeric_limits<double>::quiet_NaN(), 1.0};
  std::vector<float> y_f(x_f.size());
  std::vector<double> y_d(x_d.size());
  tg::detail::exp_elements(x_f.data(), y_f.data(), static_cast<std::int64_t>(x_f.size()));
  tg::detail::exp_elements(x_d.data(), y_d.data(), static_cast<std::int64_t>(x_d.size()));
  CHECK(y_f[0] == 1.0F);
  CHECK(y_f[1] == 1.0F);
  CHECK(y_f[2] == 0.0F);
  CHECK(y_f[3] == inf_f);
  CHECK(std::isnan(y_f[4]));
  CHECK(ulp_distance(y_f[5], 2.71828182845904523536F) <= 1);
  CHECK(y_d[0] == 1.0);
  CHECK(y_d[1] == 1.0);
  CHECK(y_d[2] == 0.0);
  CHECK(y_d[3] == inf_d);
  CHECK(std::isnan(y_d[4]));
  CHECK(ulp_distance(y_d[5], 2.71828182845904523536) <= 1);
}

// ---- Golden cases ------------------------------------------------------------------------------

TEST_CASE("fused golden cases in float64") {
  const json cases = load_golden_cases();
  REQUIRE(cases.size() == 14);
  for (const json& reference : cases) {
    CAPTURE(reference.at("name").get<std::string>());
    const LossAndGradient result = evaluate_fused(golden_z(reference, tg::Dtype::f64), golden_options(reference));
    const std::vector<double> expected_loss = golden_loss(reference);
    REQUIRE(result.loss.size() == expected_loss.size());
    for (std::size_t i = 0; i < expected_loss.size(); ++i) {
      // Relative 1e-12, with an absolute floor of 1e-14 for the zero losses of N = 1.
      CHECK(std::abs(result.loss[i] - expected_loss[i]) <= 1e-12 * std::abs(expected_loss[i]) + 1e-14);
    }
    if (reference.contains("grad_z")) {
      const std::vector<double> expected_grad = flatten(reference.at("grad_z"));
      // Within 1e-10 of the largest entry (the zero row's entries are about 5e11), with a floor
      // for the all-zero gradient of N = 1.
      CHECK(max_abs_difference(result.grad, expected_grad) <= 1e-10 * std::max(max_abs(expected_grad), 1e-4));
    }
  }
}

TEST_CASE("fused golden cases in float32") {
  const json cases = load_golden_cases();
  for (const json& reference : cases) {
    const std::string name = reference.at("name");
    CAPTURE(name);
    if (name == "zero_row") {
      continue;  // its gradient, ū/1e-12, magnifies float32 rounding of ū by 1e12: float64 only
    }
    const tg::NtXentOptions options = golden_options(reference);
    const LossAndGradient result = evaluate_fused(golden_z(reference, tg::Dtype::f32), options);
    const std::vector<double> expected_loss = golden_loss(reference);
    // A float32 logit s/temperature carries an absolute rounding error of a few ulp of
    // 1/temperature, and the loss sums 2N of them: 64·FLT_EPSILON/temperature bounds it with room.
    const double loss_tolerance = 64 * std::numeric_limits<float>::epsilon() / options.temperature;
    CHECK(all_finite(result.loss));
    for (std::size_t i = 0; i < expected_loss.size(); ++i) {
      CHECK(std::abs(result.loss[i] - expected_loss[i]) <= loss_tolerance * (1.0 + std::abs(expected_loss[i])));
    }
    if (reference.contains("grad_z")) {
      const std::vector<double> expected_grad = flatten(reference.at("grad_z"));
      CHECK(all_finite(result.grad));
      CHECK(max_abs_difference(result.grad, expected_grad) <=
            loss_tolerance * std::max(max_abs(expected_grad), 1e-4));
    }
  }
}

TEST_CASE("fused matches composed on golden inputs") {
  const json cases = load_golden_cases();
  for (const json& reference : cases) {
    const std::string name = reference.at("name");
    CAPTURE(name);
    const tg::NtXentOptions options = golden_options(reference);
    for (tg::Dtype dtype : {tg::Dtype::f64, tg::Dtype::f32}) {
      CAPTURE(dtype);
      if (dtype == tg::Dtype::f32 && name == "zero_row") {
        continue;  // ū/1e-12 amplifies float32 rounding of ū by 1e12 on both paths
      }
      const tg::Tensor z = golden_z(reference, dtype);
      const LossAndGradient fused = evaluate(z, options, tg::NtXentImplementation::fused);
      const LossAndGradient composed = evaluate(z, options, tg::NtXentImplementation::composed);
      const double tolerance = dtype == tg::Dtype::f64
                                   ? 1e-12
                                   : 64 * std::numeric_limits<float>::epsilon() / options.temperature;
      REQUIRE(fused.loss.size() == composed.loss.size());
      for (std::size_t i = 0; i < fused.loss.size(); ++i) {
        CHECK(std::abs(fused.loss[i] - composed.loss[i]) <= tolerance * (1.0 + std::abs(composed.loss[i])));
      }
      CHECK(max_abs_difference(fused.grad, composed.grad) <= tolerance * std::max(max_abs(composed.grad), 1e-4));
    }
  }
}

// ---- Several tiles -----------------------------------------------------------------------------

TEST_CASE("fused several tiles match float64 formula") {
  // 2·300 = 600 rows: blocks of 256, 256 and 88 rows, so diagonal, off-diagonal and ragged tiles
  // all occur, and with more than one OpenMP thread the pairs are split between threads.
  for (tg::Layout layout : layouts) {
    CAPTURE(layout);
    const tg::Tensor z = tg::Tensor::randn({600, 7}, 11);
    const std::vector<double> expected = reference_per_anchor(z, 0.2, layout);
    const LossAndGradient result =
        evaluate_fused(z, {.temperature = 0.2, .layout = layout, .reduction = tg::Reduction::none});
    REQUIRE(result.loss.size() == expected.size());
    CHECK(max_abs_difference(result.loss, expected) <= 1e-12 * max_abs(expected));

    const tg::Tensor z32 = z.to(tg::Dtype::f32);
    const LossAndGradient result32 =
        evaluate_fused(z32, {.temperature = 0.2, .layout = layout, .reduction = tg::Reduction::none});
    CHECK(max_abs_difference(result32.loss, expected) <= 64 * std::numeric_limits<float>::epsilon() / 0.2 *
                                                              (1.0 + max_abs(expected)));
  }
}

TEST_CASE("fused several tiles directional derivative") {
  // A central difference along a random direction d in float64 against ⟨∇L, d⟩, at 600 rows.
  const tg::Tensor z = tg::Tensor::randn({600, 5}, 21);
  const tg::Tensor direction = tg::Tensor::randn({600, 5}, 22);
  for (tg::Layout layout : layouts) {
    for (tg::Reduction reduction : {tg::Reduction::mean, tg::Reduction::sum}) {
      CAPTURE(layout);
      CAPTURE(reduction);
      const tg::NtXentOptions options{.temperature = 0.5, .layout = layout, .reduction = reduction};
      const LossAndGradient at_z = evaluate_fused(z, options);
      const double h = 1e-6;
      std::vector<double> plus = z.to_vector();
      std::vector<double> minus = z.to_vector();
      const std::vector<double> d = direction.to_vector();
      double analytical = 0.0;
      for (std::size_t i = 0; i < plus.size(); ++i) {
        plus[i] += h * d[i];
        minus[i] -= h * d[i];
        analytical += at_z.grad[i] * d[i];
      }
      const double loss_plus = evaluate_fused(tg::Tensor::from_values(z.shape(), plus), options).loss[0];
      const double loss_minus = evaluate_fused(tg::Tensor::from_values(z.shape(), minus), options).loss[0];
      const double numerical = (loss_plus - loss_minus) / (2 * h);
      // Rounding error of the difference is about 1e-16·|L|/h = 1e-10 and truncation about h², so
      // 1e-6 relative leaves room while a wrong term of the VJP would show at the percent level.
      CHECK(std::abs(analytical - numerical) <= 1e-6 * std::max(1.0, std::abs(numerical)));
    }
  }
}

TEST_CASE("fused several tiles match composed") {
  const tg::Tensor z = tg::Tensor::randn({520, 6}, 31);
  for (tg::Layout layout : layouts) {
    for (tg::Reduction reduction : reductions) {
      CAPTURE(layout);
      CAPTURE(reduction);
      const tg::NtXentOptions options{.temperature = 0.1, .layout = layout, .reduction = reduction};
      const LossAndGradient fused = evaluate(z, options, tg::NtXentImplementation::fused);
      const LossAndGradient composed = evaluate(z, options, tg::NtXentImplementation::composed);
      CHECK(max_abs_difference(fused.loss, composed.loss) <= 1e-12 * std::max(1.0, max_abs(composed.loss)));
      CHECK(max_abs_difference(fused.grad, composed.grad) <= 1e-12 * std::max(1.0, max_abs(composed.grad)));
    }
  }
}

TEST_CASE("fused backward is bit-reproducible") {
  const tg::Tensor z = tg::Tensor::randn({600, 9}, 41, tg::Dtype::f32);
  const LossAndGradient first = evaluate_fused(z, {});
  const LossAndGradient second = evaluate_fused(z, {});
  CHECK(first.loss == second.loss);
  CHECK(first.grad == second.grad);
}

TEST_CASE("fused second backward doubles the gradient") {
  // A batch of one tile (R = 6) and one of several (R = 600), with the tiles kept (the default)
  // and computed again (fused_cache_bytes = 0). A second backward must find kept tiles unchanged.
  for (const std::int64_t rows : {6, 600}) {
    for (const std::int64_t cache_bytes : {tg::NtXentOptions{}.fused_cache_bytes, std::int64_t{0}}) {
      CAPTURE(rows);
      CAPTURE(cache_bytes);
      tg::NtXentOptions options;
      options.fused_cache_bytes = cache_bytes;
      const tg::Tensor z = tg::Tensor::randn({rows, 5}, 43, tg::Dtype::f64);
      tg::Tape tape;
      tg::Var leaf = tape.leaf(z);
      tg::Var loss = tg::nt_xent_fused(leaf, options);
      tape.backward(loss);
      const std::vector<double> once = leaf.grad().to_vector();
      tape.backward(loss);
      const std::vector<double> twice = leaf.grad().to_vector();
      REQUIRE(once.size() == twice.size());
      for (std::size_t i = 0; i < once.size(); ++i) {
        CHECK(twice[i] == 2.0 * once[i]);
      }
    }
  }
}

// ---- Paths: bounded shift or running maximum, kept or recomputed tiles --------------------------

// Temperatures on both sides of each dtype's limit for the bounded shift (2/temperature ≤ 80 in
// float32 and ≤ 700 in float64), and far below it.
struct PathCase {
  tg::Dtype dtype;
  double temperature;
};
const PathCase path_cases[] = {{tg::Dtype::f32, 0.5},   {tg::Dtype::f32, 0.025},  {tg::Dtype::f32, 0.0249},
                               {tg::Dtype::f32, 0.01},  {tg::Dtype::f64, 0.5},    {tg::Dtype::f64, 0.003},
                               {tg::Dtype::f64, 0.0028}, {tg::Dtype::f64, 0.001}};

TEST_CASE("fused kept and recomputed tiles agree bit for bit") {
  // 600 rows: diagonal, off-diagonal and ragged tiles. The forward pass is the same either way,
  // and the backward reads the kept tiles or computes the same values again.
  for (const PathCase& path : path_cases) {
    for (tg::Layout layout : layouts) {
      CAPTURE(path.dtype);
      CAPTURE(path.temperature);
      CAPTURE(layout);
      const tg::Tensor z = tg::Tensor::randn({600, 9}, 45, path.dtype);
      const tg::NtXentOptions kept{.temperature = path.temperature, .layout = layout, .reduction = tg::Reduction::none};
      tg::NtXentOptions recomputed = kept;
      recomputed.fused_cache_bytes = 0;
      const LossAndGradient with_cache = evaluate_fused(z, kept);
      const LossAndGradient without_cache = evaluate_fused(z, recomputed);
      CHECK(all_finite(with_cache.loss));
      CHECK(all_finite(with_cache.grad));
      CHECK(with_cache.loss == without_cache.loss);
      CHECK(with_cache.grad == without_cache.grad);
    }
  }
}

TEST_CASE("fused_cache_bytes decides whether the tiles are kept") {
  // 600 float32 rows make tiles of 256² (three), 256·88 (two) and 88² elements: 249,408 in all.
  const std::int64_t cache_bytes = 249408 * 4;
  const tg::Tensor z = tg::Tensor::randn({600, 4}, 47, tg::Dtype::f32);
  auto live_bytes_after_forward = [&](std::int64_t limit) {
    tg::NtXentOptions options;
    options.fused_cache_bytes = limit;
    tg::Tape tape;
    const tg::Var loss = tg::nt_xent_fused(tape.leaf(z), options);
    CHECK(std::isfinite(loss.value().item()));
    return tg::memory_stats().live_bytes;
  };
  const std::int64_t recomputing = live_bytes_after_forward(cache_bytes - 1);
  const std::int64_t keeping = live_bytes_after_forward(cache_bytes);
  // Keeping the tiles adds them and drops the per-thread tile buffers of the forward pass. The
  // tracker also counts each buffer's header, a few dozen bytes.
  const std::int64_t threads = std::min<std::int64_t>(omp_get_max_threads(), 6);
  const std::int64_t expected = cache_bytes - threads * tg::fused_tile_rows * tg::fused_tile_rows * 4;
  CHECK(keeping - recomputing >= expected);
  CHECK(keeping - recomputing <= expected + 256);
  CHECK(live_bytes_after_forward(0) == recomputing);
}

TEST_CASE("fused paths match the float64 formula on either side of the limit") {
  for (const PathCase& path : path_cases) {
    CAPTURE(path.dtype);
    CAPTURE(path.temperature);
    const tg::Tensor z = tg::Tensor::randn({600, 7}, 49, path.dtype);
    const std::vector<double> expected =
        reference_per_anchor(z.to(tg::Dtype::f64), path.temperature, tg::Layout::concatenated);
    const LossAndGradient result = evaluate_fused(z, {.temperature = path.temperature, .reduction = tg::Reduction::none});
    const double epsilon = path.dtype == tg::Dtype::f32 ? 64 * std::numeric_limits<float>::epsilon() : 1e-12;
    CHECK(max_abs_difference(result.loss, expected) <= epsilon / path.temperature * (1.0 + max_abs(expected)));
  }
}

TEST_CASE("fused far-apart rows keep full precision at every temperature") {
  // D = 1 and rows (1, -1, -1, -1), concatenated: row 0's positive is row 2, and every other row
  // points the opposite way, so each of its three logits is -c = -1/temperature, 2c below the
  // largest possible logit. Its loss is log Σ exp(-c) − (-c) = log 3 exactly, at any temperature.
  // Under the bounded shift each term is e^(−2c), a normal float32 number up to 2c = 87. A limit
  // set past that would lose the terms and return -inf or NaN.
  for (const PathCase& path : path_cases) {
    CAPTURE(path.dtype);
    CAPTURE(path.temperature);
    const tg::Tensor z = tg::Tensor::from_values({4, 1}, {1.0, -1.0, -1.0, -1.0}, path.dtype);
    const LossAndGradient result = evaluate_fused(z, {.temperature = path.temperature, .reduction = tg::Reduction::none});
    const double epsilon = path.dtype == tg::Dtype::f32 ? 4 * std::numeric_limits<float>::epsilon() : 1e-14;
    CHECK(std::abs(result.loss[0] - std::log(3.0)) <= epsilon * std::log(3.0) / path.temperature);
    const std::vector<double> expected = reference_per_anchor(z.to(tg::Dtype::f64), path.temperature, tg::Layout::concatenated);
    CHECK(max_abs_difference(result.loss, expected) <= epsilon / path.temperature * (1.0 + max_abs(expected)));
  }
}

// ---- Edges ----------------------------------------------------------------------------------------

TEST_CASE("fused one pair is exactly zero") {
  for (tg::Dtype dtype : {tg::Dtype::f64, tg::Dtype::f32}) {
    for (tg::Layout layout : layouts) {
      for (tg::Reduction reduction : reductions) {
        CAPTURE(dtype);
        const tg::Tensor z = tg::Tensor::from_values({2, 3}, {0.3, -1.2, 2.5, 1.1, 0.4, -0.7}, dtype);
        const LossAndGradient result = evaluate_fused(z, {.temperature = 0.07, .layout = layout, .reduction = reduction});
        CHECK(max_abs(result.loss) == 0.0);
        CHECK(max_abs(result.grad) == 0.0);
      }
    }
  }
}

TEST_CASE("fused zero row stays finite") {
  tg::Tensor z = tg::Tensor::randn({6, 4}, 51);
  std::vector<double> values = z.to_vector();
  std::fill_n(values.begin() + 8, 4, 0.0);  // row 2
  z = tg::Tensor::from_values({6, 4}, values);
  const LossAndGradient result = evaluate_fused(z, {});
  CHECK(all_finite(result.loss));
  CHECK(all_finite(result.grad));
  // The loss is that of the same rows with cosine 0 for the zero row, from the float64 formula.
  const std::vector<double> expected = reference_per_anchor(z, 0.5, tg::Layout::concatenated);
  double mean = 0.0;
  for (double value : expected) {
    mean += value / 6.0;
  }
  CHECK(std::abs(result.loss[0] - mean) <= 1e-12 * std::abs(mean));
}

TEST_CASE("fused float32 at temperature 0.01 stays finite") {
  // exp(1/0.01) = exp(100) overflows float32 (above about 3.4e38 = exp(88.7)); the running
  // maximum keeps every exponent at or below 0.
  const tg::Tensor z = tg::Tensor::randn({64, 8}, 61, tg::Dtype::f32);
  for (tg::Reduction reduction : reductions) {
    const LossAndGradient result = evaluate_fused(z, {.temperature = 0.01, .reduction = reduction});
    CHECK(all_finite(result.loss));
    CHECK(all_finite(result.grad));
  }
  const std::vector<double> expected = reference_per_anchor(z.to(tg::Dtype::f64), 0.01, tg::Layout::concatenated);
  const LossAndGradient none = evaluate_fused(z, {.temperature = 0.01, .reduction = tg::Reduction::none});
  CHECK(max_abs_difference(none.loss, expected) <= 64 * std::numeric_limits<float>::epsilon() / 0.01 *
                                                       (1.0 + max_abs(expected)));
}

TEST_CASE("fused zero cotangent gives zero gradient") {
  const tg::Tensor z = tg::Tensor::randn({600, 4}, 71);
  tg::Tape tape;
  tg::Var leaf = tape.leaf(z);
  tg::Var loss = tg::nt_xent_fused(leaf, {.reduction = tg::Reduction::none});
  tape.backward(loss, tg::Tensor::zeros(loss.shape()));
  CHECK(max_abs(leaf.grad().to_vector()) == 0.0);
}

TEST_CASE("fused invalid input raises and leaves the tape unchanged") {
  tg::Tape tape;
  const tg::Var vector = tape.leaf(tg::Tensor::zeros({4}));
  const tg::Var three_rows = tape.leaf(tg::Tensor::zeros({3, 2}));
  const tg::Var empty = tape.leaf(tg::Tensor::zeros({0, 3}));
  const tg::Var no_features = tape.leaf(tg::Tensor::zeros({4, 0}));
  const tg::Var mask = tape.constant(tg::Tensor::zeros({4, 2}, tg::Dtype::boolean));
  const tg::Var good = tape.leaf(tg::Tensor::randn({4, 2}, 81));
  const std::int64_t size = tape.size();

  CHECK_THROWS_AS(tg::nt_xent_fused(vector), tg::ShapeError);
  CHECK_THROWS_WITH(tg::nt_xent_fused(vector), doctest::Contains("nt_xent_fused: embeddings must be 2-D"));
  CHECK_THROWS_WITH(tg::nt_xent_fused(vector), doctest::Contains("z of shape [4]"));
  CHECK_THROWS_AS(tg::nt_xent_fused(three_rows), tg::ShapeError);
  CHECK_THROWS_WITH(tg::nt_xent_fused(three_rows), doctest::Contains("even number of rows"));
  CHECK_THROWS_WITH(tg::nt_xent_fused(three_rows), doctest::Contains("z of shape [3, 2]"));
  CHECK_THROWS_AS(tg::nt_xent_fused(empty), tg::ShapeError);
  CHECK_THROWS_WITH(tg::nt_xent_fused(empty), doctest::Contains("must not be empty, but got z of shape [0, 3]"));
  CHECK_THROWS_AS(tg::nt_xent_fused(no_features), tg::ShapeError);
  CHECK_THROWS_WITH(tg::nt_xent_fused(no_features), doctest::Contains("at least one feature, but got z of shape [4, 0]"));
  CHECK_THROWS_AS(tg::nt_xent_fused(mask), tg::DtypeError);
  CHECK_THROWS_WITH(tg::nt_xent_fused(mask), doctest::Contains("z of dtype boolean and shape [4, 2]"));
  for (double temperature : {0.0, -0.5, std::numeric_limits<double>::infinity(), std::nan("")}) {
    CAPTURE(temperature);
    CHECK_THROWS_AS(tg::nt_xent_fused(good, {.temperature = temperature}), tg::ValueError);
  }
  CHECK_THROWS_WITH(tg::nt_xent_fused(good, {.temperature = -0.5}),
                    doctest::Contains("temperature must be positive and finite, but got temperature -0.5"));
  CHECK_THROWS_AS(tg::nt_xent_fused(good, {.layout = static_cast<tg::Layout>(7)}), tg::ValueError);
  CHECK_THROWS_WITH(tg::nt_xent_fused(good, {.layout = static_cast<tg::Layout>(7)}), doctest::Contains("layout value 7"));
  CHECK_THROWS_AS(tg::nt_xent_fused(good, {.reduction = static_cast<tg::Reduction>(9)}), tg::ValueError);
  CHECK_THROWS_WITH(tg::nt_xent_fused(good, {.reduction = static_cast<tg::Reduction>(9)}),
                    doctest::Contains("reduction value 9"));
  CHECK(tape.size() == size);

  tg::Tape other;
  CHECK_THROWS_AS(tg::nt_xent_fused(tg::Var()), tg::TapeError);
  tape.clear();
  CHECK_THROWS_AS(tg::nt_xent_fused(good), tg::TapeError);
}

TEST_CASE("fused steady step allocates no buffers") {
  const tg::Tensor z = tg::Tensor::randn({600, 16}, 91, tg::Dtype::f32);
  tg::Tape tape;
  auto step = [&] {
    tg::Var leaf = tape.leaf(z);
    tape.backward(tg::nt_xent_fused(leaf));
    tape.clear();
  };
  step();
  step();
  const std::int64_t before = tg::memory_stats().system_allocations;
  for (int i = 0; i < 3; ++i) {
    step();
  }
  CHECK(tg::memory_stats().system_allocations == before);
}

// ---- gradcheck ---------------------------------------------------------------------------------

TEST_CASE("fused gradcheck cases pass") {
  tg::GradcheckRegistry registry;
  tg::register_nt_xent_fused_cases(registry);
  REQUIRE(registry.cases_of("nt_xent_fused").size() >= 30);
  for (const tg::GradcheckCase* gradcheck_case : registry.cases_of("nt_xent_fused")) {
    const tg::GradcheckResult result = tg::gradcheck(*gradcheck_case);
    CAPTURE(tg::format_report(result));
    CHECK(result.passed());
  }
}
