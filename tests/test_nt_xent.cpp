// NT-Xent against float64 references computed outside tapegrad, and the published faults of
// other NT-Xent code, each generalised to its whole kind.
#include <doctest/doctest.h>

#include <cfloat>
#include <cmath>
#include <fstream>
#include <limits>
#include <numeric>
#include <vector>

#include <nlohmann/json.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;
using nlohmann::json;

namespace {

const tg::Layout layouts[] = {tg::Layout::concatenated, tg::Layout::interleaved};
const tg::Reduction reductions[] = {tg::Reduction::mean, tg::Reduction::sum, tg::Reduction::none};
const tg::Dtype dtypes[] = {tg::Dtype::f64, tg::Dtype::f32};

tg::Tensor matrix(const std::vector<std::vector<double>>& rows, tg::Dtype dtype = tg::Dtype::f64) {
  std::vector<double> values;
  for (const auto& row : rows) {
    values.insert(values.end(), row.begin(), row.end());
  }
  const auto columns = rows.empty() ? 0 : static_cast<std::int64_t>(rows.front().size());
  return tg::Tensor::from_values({static_cast<std::int64_t>(rows.size()), columns}, values, dtype);
}

struct LossAndGradient {
  std::vector<double> loss;  // one value for mean and sum, 2N for none
  std::vector<double> grad;  // d(sum of the loss values)/dz, row-major
};

// Evaluates the one-tensor form and its gradient with one implementation, seeding every output
// element with 1.
LossAndGradient evaluate_with(const tg::Tensor& z, tg::NtXentOptions options, tg::NtXentImplementation implementation) {
  options.implementation = implementation;
  tg::Tape tape;
  tg::Var leaf = tape.leaf(z);
  tg::Var loss = tg::nt_xent(leaf, options);
  tape.backward(loss, tg::Tensor::ones(loss.shape(), loss.dtype()));
  return {loss.value().to_vector(), leaf.grad().to_vector()};
}

double max_abs(const std::vector<double>& values);
double max_abs_difference(const std::vector<double>& a, const std::vector<double>& b);

// The smallest Euclidean norm among the rows of a 2-D tensor.
double min_row_norm(const tg::Tensor& z) {
  double smallest = HUGE_VAL;
  for (std::int64_t row = 0; row < z.size(0); ++row) {
    double squares = 0.0;
    for (std::int64_t c = 0; c < z.size(1); ++c) {
      squares += z.at({row, c}) * z.at({row, c});
    }
    smallest = std::min(smallest, std::sqrt(squares));
  }
  return smallest;
}

// Evaluates the composed path, the reference, and checks that the fused path, the default,
// agrees with it: within 1e-12 relative in float64, and within 64 float32 roundings of a logit
// of size 1/temperature in float32. Gradients are compared relative to their largest entry, or
// to 1/(smallest row norm), the scale at which rounding enters a gradient that is zero.
// Every test below therefore covers both paths.
LossAndGradient evaluate(const tg::Tensor& z, const tg::NtXentOptions& options) {
  const LossAndGradient composed = evaluate_with(z, options, tg::NtXentImplementation::composed);
  const LossAndGradient fused = evaluate_with(z, options, tg::NtXentImplementation::fused);
  const double unit =
      z.dtype() == tg::Dtype::f64 ? 1e-12 : 64 * std::ldexp(1.0, -24) * std::max(1.0, 1.0 / options.temperature);
  const double gradient_scale = std::max(max_abs(composed.grad), std::min(1.0 / min_row_norm(z), 1e3));
  CHECK(max_abs_difference(fused.loss, composed.loss) <= unit * std::max(1.0, max_abs(composed.loss)));
  CHECK(max_abs_difference(fused.grad, composed.grad) <= unit * gradient_scale);
  return composed;
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

// The rows of z reordered from the concatenated layout to the interleaved one: x0 y0 x1 y1 …
tg::Tensor interleave(const tg::Tensor& concatenated) {
  const std::int64_t rows = concatenated.size(0);
  const std::int64_t columns = concatenated.size(1);
  const std::vector<double> values = concatenated.to_vector();
  std::vector<double> reordered(values.size());
  for (std::int64_t i = 0; i < rows / 2; ++i) {
    for (std::int64_t c = 0; c < columns; ++c) {
      reordered[static_cast<std::size_t>((2 * i) * columns + c)] = values[static_cast<std::size_t>(i * columns + c)];
      reordered[static_cast<std::size_t>((2 * i + 1) * columns + c)] =
          values[static_cast<std::size_t>((rows / 2 + i) * columns + c)];
    }
  }
  return tg::Tensor::from_values(concatenated.shape(), reordered, concatenated.dtype());
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

}  // namespace

TEST_CASE("golden cases in float64") {
  const json cases = load_golden_cases();
  REQUIRE(cases.size() == 14);
  for (const json& reference : cases) {
    CAPTURE(reference.at("name").get<std::string>());
    const tg::Tensor z = matrix(reference.at("z").get<std::vector<std::vector<double>>>());
    const tg::NtXentOptions options{.temperature = reference.at("temperature").get<double>(),
                                    .layout = parse_layout(reference.at("layout")),
                                    .reduction = parse_reduction(reference.at("reduction"))};
    const LossAndGradient result = evaluate(z, options);
    std::vector<double> expected_loss;
    if (reference.at("loss").is_array()) {
      expected_loss = reference.at("loss").get<std::vector<double>>();
    } else {
      expected_loss = {reference.at("loss").get<double>()};
    }
    REQUIRE(result.loss.size() == expected_loss.size());
    for (std::size_t i = 0; i < expected_loss.size(); ++i) {
      // Relative 1e-12, with an absolute floor of 1e-14 for the zero losses of N = 1.
      CHECK(std::abs(result.loss[i] - expected_loss[i]) <= 1e-12 * std::abs(expected_loss[i]) + 1e-14);
    }
    if (reference.contains("grad_z")) {
      const std::vector<double> expected_grad = flatten(reference.at("grad_z"));
      // Within 1e-10 of the largest entry, with a floor for the all-zero gradient of N = 1.
      const double tolerance = 1e-10 * std::max(max_abs(expected_grad), 1e-4);
      CHECK(max_abs_difference(result.grad, expected_grad) <= tolerance);
    }
  }
}

TEST_CASE("golden cases in float32") {
  // float32 carries a relative rounding of 2⁻²⁴ ≈ 6e-8 per operation. The logits are cosines
  // times 1/temperature, so their absolute error grows like 1/temperature, and the loss and the
  // gradient inherit it. The bounds below allow 64 roundings of that size, which every case
  // meets with a margin, while a float32 path without max-stabilization gives inf or NaN.
  const json cases = load_golden_cases();
  for (const json& reference : cases) {
    CAPTURE(reference.at("name").get<std::string>());
    const double temperature = reference.at("temperature").get<double>();
    const tg::Tensor z = matrix(reference.at("z").get<std::vector<std::vector<double>>>(), tg::Dtype::f32);
    const tg::NtXentOptions options{.temperature = temperature,
                                    .layout = parse_layout(reference.at("layout")),
                                    .reduction = parse_reduction(reference.at("reduction"))};
    const LossAndGradient result = evaluate(z, options);
    const double unit = 64 * std::ldexp(1.0, -24) * std::max(1.0, 1.0 / temperature);
    std::vector<double> expected_loss;
    if (reference.at("loss").is_array()) {
      expected_loss = reference.at("loss").get<std::vector<double>>();
    } else {
      expected_loss = {reference.at("loss").get<double>()};
    }
    REQUIRE(all_finite(result.loss));
    REQUIRE(all_finite(result.grad));
    for (std::size_t i = 0; i < expected_loss.size(); ++i) {
      CHECK(std::abs(result.loss[i] - expected_loss[i]) <= unit * std::max(1.0, std::abs(expected_loss[i])));
    }
    if (reference.contains("grad_z")) {
      const std::vector<double> expected_grad = flatten(reference.at("grad_z"));
      // Row norms scale the gradient by 1/‖z_a‖, which the largest entry already reflects.
      CHECK(max_abs_difference(result.grad, expected_grad) <= unit * std::max(max_abs(expected_grad), 1e-3));
    }
  }
}

// ---- Layout: the positive of each row ------------------------------------------------------
// A gathered batch ordered pair by pair was fed to code that assumed all first views, then all
// second views (Spijkervet/SimCLR, multi-node training): anchors were paired with the wrong row
// and training ran on without an error. Feeding the interleaved rows to the concatenated rule
// gives 2.6918582153 and the reverse gives 2.3162717097 for the inputs below, instead of
// 0.6966387664.

TEST_CASE("layout reference pairs") {
  const std::vector<std::vector<double>> zi = {{1.0, 0.2, -0.3}, {0.1, 1.0, 0.4}, {-0.5, 0.3, 0.9}};
  const std::vector<std::vector<double>> zj = {{0.8, 0.4, -0.1}, {-0.2, 0.9, 0.6}, {-0.3, 0.1, 1.0}};
  const std::vector<double> expected_grad_zi = {0.002429614536910709, 0.047968730087815444, 0.040077868514912664,
                                                0.1719600013344359,   -0.026376651166355895, 0.022951627582280767,
                                                0.04454247976401516,  0.27411310015575374,  -0.06662521129413171};
  const std::vector<double> expected_grad_zj = {-0.09315996860930495, 0.23490543948233686,  0.19434200905490787,
                                                -0.09154225422989634, -0.15119512143814642, 0.19627859741392087,
                                                0.12308877843880184,  0.1599078700084257,   0.020935846530797976};
  for (tg::Layout layout : layouts) {
    CAPTURE(tg::layout_name(layout));
    tg::Tape tape;
    tg::Var first = tape.leaf(matrix(zi));
    tg::Var second = tape.leaf(matrix(zj));
    tg::Var loss = tg::nt_xent(first, second, {.temperature = 0.5, .layout = layout});
    tape.backward(loss);
    CHECK(loss.value().item() == doctest::Approx(0.6966387663523801).epsilon(1e-12));
    CHECK(max_abs_difference(first.grad().to_vector(), expected_grad_zi) <= 1e-12);
    CHECK(max_abs_difference(second.grad().to_vector(), expected_grad_zj) <= 1e-12);
  }
  // The wrong rule on each matrix gives the faulty values, so the layouts really differ.
  std::vector<std::vector<double>> concatenated = zi;
  concatenated.insert(concatenated.end(), zj.begin(), zj.end());
  const tg::Tensor z = matrix(concatenated);
  CHECK(evaluate(interleave(z), {.temperature = 0.5, .layout = tg::Layout::concatenated}).loss[0] ==
        doctest::Approx(2.6918582153).epsilon(1e-10));
  CHECK(evaluate(z, {.temperature = 0.5, .layout = tg::Layout::interleaved}).loss[0] ==
        doctest::Approx(2.3162717097).epsilon(1e-10));
}

TEST_CASE("layouts agree on the same pairs") {
  // For random batches, the concatenated rows under the concatenated rule and the same rows
  // interleaved under the interleaved rule describe the same pairs: every reduction agrees,
  // per-anchor losses and gradient rows are permuted with the rows. Both dtypes.
  for (tg::Dtype dtype : dtypes) {
    const double tolerance = dtype == tg::Dtype::f64 ? 1e-12 : 1e-5;
    for (std::int64_t n : {1, 2, 5}) {
      const tg::Tensor z = tg::Tensor::randn({2 * n, 4}, static_cast<std::uint64_t>(n), dtype);
      const tg::Tensor z_interleaved = interleave(z);
      for (tg::Reduction reduction : reductions) {
        CAPTURE(tg::dtype_name(dtype));
        CAPTURE(n);
        CAPTURE(tg::reduction_name(reduction));
        const LossAndGradient concatenated =
            evaluate(z, {.temperature = 0.3, .layout = tg::Layout::concatenated, .reduction = reduction});
        const LossAndGradient interleaved =
            evaluate(z_interleaved, {.temperature = 0.3, .layout = tg::Layout::interleaved, .reduction = reduction});
        const tg::Tensor loss_rows = tg::Tensor::from_values({static_cast<std::int64_t>(concatenated.loss.size()), 1},
                                                             concatenated.loss);
        const std::vector<double> expected_loss =
            reduction == tg::Reduction::none ? interleave(loss_rows).to_vector() : concatenated.loss;
        CHECK(max_abs_difference(interleaved.loss, expected_loss) <= tolerance);
        const tg::Tensor grad_rows = tg::Tensor::from_values(z.shape(), concatenated.grad);
        CHECK(max_abs_difference(interleaved.grad, interleave(grad_rows).to_vector()) <= tolerance);
      }
    }
  }
}

TEST_CASE("two-view form equals the stacked rows") {
  for (tg::Layout layout : layouts) {
    for (tg::Reduction reduction : reductions) {
      const tg::Tensor zi = tg::Tensor::randn({3, 5}, 11);
      const tg::Tensor zj = tg::Tensor::randn({3, 5}, 12);
      tg::Tape tape;
      tg::Var first = tape.leaf(zi);
      tg::Var second = tape.leaf(zj);
      const tg::NtXentOptions options{.temperature = 0.7, .layout = layout, .reduction = reduction};
      tg::Var loss = tg::nt_xent(first, second, options);
      // The same rows stacked by hand: zi then zj, then reordered for the interleaved layout.
      std::vector<double> stacked = zi.to_vector();
      const std::vector<double> second_rows = zj.to_vector();
      stacked.insert(stacked.end(), second_rows.begin(), second_rows.end());
      tg::Tensor z = tg::Tensor::from_values({6, 5}, stacked);
      if (layout == tg::Layout::interleaved) {
        z = interleave(z);
      }
      const LossAndGradient expected = evaluate(z, options);
      CHECK(max_abs_difference(loss.value().to_vector(), expected.loss) <= 1e-14);
    }
  }
}

TEST_CASE("empty braces mean default options") {
  // `{}` could also make a Var, the second view, but nt_xent(z, {}) must be the one-tensor form.
  tg::Tape tape;
  const tg::Var z = tape.leaf(tg::Tensor::randn({6, 4}, 13));
  const tg::Var zi = tape.leaf(tg::Tensor::randn({3, 4}, 14));
  const tg::Var zj = tape.leaf(tg::Tensor::randn({3, 4}, 15));
  CHECK(tg::nt_xent(z, {}).value().item() == tg::nt_xent(z).value().item());
  CHECK(tg::nt_xent(zi, zj, {}).value().item() == tg::nt_xent(zi, zj).value().item());
  const tg::NtXentOptions cold{.temperature = 0.2};
  CHECK(tg::nt_xent(z, {.temperature = 0.2}).value().item() == tg::nt_xent(z, cold).value().item());
}

// ---- Temperature: all-parallel embeddings ----------------------------------------------------
// When every embedding points the same way, each anchor's softmax over its 2N − 1 candidates is
// uniform, so the loss is log(2N − 1) for any temperature and any lengths, and the gradient is
// zero. SupContrast multiplied the loss by temperature / base_temperature and got 11.495985
// instead of log(5) for the lengths below.

TEST_CASE("parallel embeddings give log(2N-1)") {
  for (tg::Dtype dtype : dtypes) {
    for (tg::Layout layout : layouts) {
      for (std::int64_t n : {2, 3, 6}) {
        for (double temperature : {0.07, 0.5, 2.0}) {
          CAPTURE(tg::dtype_name(dtype));
          CAPTURE(n);
          CAPTURE(temperature);
          // Rows along (3, 4) with lengths from 0.05 to 50.
          std::vector<double> values;
          for (std::int64_t row = 0; row < 2 * n; ++row) {
            const double length = 0.05 * std::pow(10.0, 3.0 * static_cast<double>(row) / static_cast<double>(2 * n - 1));
            values.push_back(0.6 * length);
            values.push_back(0.8 * length);
          }
          const tg::Tensor z = tg::Tensor::from_values({2 * n, 2}, values, dtype);
          const double expected = std::log(static_cast<double>(2 * n - 1));
          const double tolerance = dtype == tg::Dtype::f64 ? 1e-12 : 1e-5 / temperature;
          for (tg::Reduction reduction : reductions) {
            const LossAndGradient result = evaluate(z, {.temperature = temperature, .layout = layout, .reduction = reduction});
            const double scale = reduction == tg::Reduction::sum ? static_cast<double>(2 * n) : 1.0;
            for (double loss : result.loss) {
              CHECK(loss == doctest::Approx(expected * scale).epsilon(tolerance));
            }
            // The gradient is zero up to rounding, which 1/length amplifies for the shortest row.
            CHECK(max_abs(result.grad) <= tolerance * 20.0 / 0.05);
          }
        }
      }
    }
  }
  // The reference input itself: log(5) with a zero gradient, float64 round-off 1e-12.
  const tg::Tensor z = matrix({{3.0, 4.0}, {0.3, 0.4}, {6.0, 8.0}, {1.5, 2.0}, {30.0, 40.0}, {0.03, 0.04}});
  const LossAndGradient result = evaluate(z, {.temperature = 0.5});
  CHECK(result.loss[0] == doctest::Approx(1.6094379124341003).epsilon(1e-12));
  CHECK(max_abs(result.grad) <= 1e-12);
}

// ---- Small temperatures: overflow and underflow ----------------------------------------------

TEST_CASE("float32 at temperature 0.01 stays finite") {
  // Logits near 1/0.01 = 100 overflow exp in float32 (the maximum is exp(88.7)), so code that
  // exponentiates raw logits gets inf/inf = NaN (lightning-bolts at temperature 0.01). Shifting by
  // the row maximum over unmasked entries makes it exact. Reference in float64: 0.5256615360434089.
  const tg::Tensor z64 = matrix({{1.0, 0.1, 0.0}, {1.0, 0.0, 0.1}, {1.0, 0.12, 0.02}, {1.0, 0.01, 0.13}});
  const std::vector<double> expected_grad = {
      0.23091014015634478, -2.309101401563448,  1.8891499351330774, 0.2549276440275087, 2.195365131984056,
      -2.549276440275087,  0.181725819229371,   -1.8978971949721393, 2.3010922083642846, 0.18581482708731062,
      2.058389725145563,   -1.5876824949135866};
  const LossAndGradient exact = evaluate(z64, {.temperature = 0.01});
  CHECK(exact.loss[0] == doctest::Approx(0.5256615360434089).epsilon(1e-10));
  CHECK(max_abs_difference(exact.grad, expected_grad) <= 1e-8 * max_abs(expected_grad));
  const LossAndGradient single = evaluate(z64.to(tg::Dtype::f32), {.temperature = 0.01});
  REQUIRE(all_finite(single.loss));
  REQUIRE(all_finite(single.grad));
  CHECK(std::abs(single.loss[0] - 0.5256615360434089) <= 1e-4);
  CHECK(max_abs_difference(single.grad, expected_grad) <= 1e-3 * max_abs(expected_grad));
}

TEST_CASE("float32 nearly parallel batches match float64") {
  // The whole kind: random nearly parallel batches (cosines above 0.97) at temperatures whose
  // raw logits overflow float32, every layout and reduction, compared with the float64 loss.
  for (double temperature : {0.01, 0.005}) {
    for (std::int64_t n : {2, 4, 8}) {
      std::vector<double> values;
      const tg::Tensor noise = tg::Tensor::randn({2 * n, 6}, static_cast<std::uint64_t>(n) + 100);
      for (std::int64_t row = 0; row < 2 * n; ++row) {
        for (std::int64_t c = 0; c < 6; ++c) {
          values.push_back((c == 0 ? 1.0 : 0.0) + 0.05 * noise.at({row, c}));
        }
      }
      const tg::Tensor z = tg::Tensor::from_values({2 * n, 6}, values);
      for (tg::Layout layout : layouts) {
        for (tg::Reduction reduction : reductions) {
          CAPTURE(temperature);
          CAPTURE(n);
          const tg::NtXentOptions options{.temperature = temperature, .layout = layout, .reduction = reduction};
          const LossAndGradient exact = evaluate(z, options);
          const LossAndGradient single = evaluate(z.to(tg::Dtype::f32), options);
          REQUIRE(all_finite(single.loss));
          REQUIRE(all_finite(single.grad));
          // 64 float32 roundings of a logit of size 1/temperature, as in the golden float32 test.
          const double unit = 64 * std::ldexp(1.0, -24) / temperature;
          CHECK(max_abs_difference(single.loss, exact.loss) <= unit * std::max(1.0, max_abs(exact.loss)));
          CHECK(max_abs_difference(single.grad, exact.grad) <= unit * max_abs(exact.grad));
        }
      }
    }
  }
}

TEST_CASE("masked maximum avoids underflow") {
  // SupContrast subtracted the maximum of the whole row, which is the masked self-similarity
  // 1/temperature, so at temperature 0.001 every kept exp underflowed to 0 and log gave -inf
  // (1312.610067 with +1e-9 inside the log). The vertices of a regular tetrahedron have pairwise
  // cosine -1/3, so the exact loss is log(3) for every temperature, with gradients ±111.1 and ±222.2.
  const tg::Tensor z = matrix({{1.0, 1.0, 1.0}, {1.0, -1.0, -1.0}, {-1.0, 1.0, -1.0}, {-1.0, -1.0, 1.0}});
  const std::vector<double> expected_grad = {
      111.11111111111111,  -222.22222222222223, 111.11111111111111,  111.11111111111111,
      222.22222222222223,  -111.11111111111111, -111.11111111111111, -222.22222222222223,
      -111.11111111111111, -111.11111111111111, 222.22222222222223,  111.11111111111111};
  const LossAndGradient result = evaluate(z, {.temperature = 0.001});
  CHECK(result.loss[0] == doctest::Approx(1.0986122886681098).epsilon(1e-10));
  CHECK(max_abs_difference(result.grad, expected_grad) <= 1e-7 + 1e-7 * max_abs(expected_grad));

  // The whole kind: 2N vertices of a regular simplex (the standard basis of R^{2N} minus its
  // centroid) have equal pairwise cosines, so the loss is log(2N − 1) at any temperature,
  // including ones where a wrong shift underflows, in both dtypes and layouts.
  for (std::int64_t n : {2, 3, 5}) {
    const std::int64_t rows = 2 * n;
    std::vector<double> values;
    for (std::int64_t row = 0; row < rows; ++row) {
      for (std::int64_t c = 0; c < rows; ++c) {
        values.push_back((row == c ? 1.0 : 0.0) - 1.0 / static_cast<double>(rows));
      }
    }
    for (tg::Dtype dtype : dtypes) {
      for (tg::Layout layout : layouts) {
        for (double temperature : {0.001, 0.0005}) {
          const tg::Tensor simplex = tg::Tensor::from_values({rows, rows}, values, dtype);
          const LossAndGradient simplex_result = evaluate(simplex, {.temperature = temperature, .layout = layout});
          REQUIRE(all_finite(simplex_result.grad));
          const double tolerance = dtype == tg::Dtype::f64 ? 1e-9 : 1e-2;
          CHECK(simplex_result.loss[0] == doctest::Approx(std::log(static_cast<double>(rows - 1))).epsilon(tolerance));
        }
      }
    }
  }
}

TEST_CASE("masked entries are excluded exactly") {
  // DCL removed the anchor's self-similarity by adding log(1e-45) ≈ -103.6 to its logit instead of
  // excluding it; at temperature 0.005 the self logit is 200 and still dominates (96.383671 instead
  // of log(3)). Mutually orthogonal rows of different lengths have every non-self cosine 0, so
  // the exact loss is log(2N − 1) at any temperature.
  const tg::Tensor z = matrix({{2.0, 0.0, 0.0, 0.0}, {0.0, 0.5, 0.0, 0.0}, {0.0, 0.0, 3.0, 0.0}, {0.0, 0.0, 0.0, 1.0}});
  const std::vector<double> expected_grad = {
      0.0,  16.666666666666668, -33.333333333333336, 16.666666666666668, 66.66666666666667, 0.0,
      66.66666666666667, -133.33333333333334, -22.22222222222222, 11.11111111111111, 0.0, 11.11111111111111,
      33.333333333333336, -66.66666666666667, 33.333333333333336, 0.0};
  const LossAndGradient result = evaluate(z, {.temperature = 0.005});
  CHECK(result.loss[0] == doctest::Approx(1.0986122886681098).epsilon(1e-12));
  CHECK(max_abs_difference(result.grad, expected_grad) <= 1e-8 + 1e-8 * max_abs(expected_grad));

  for (std::int64_t n : {1, 2, 4}) {
    const std::int64_t rows = 2 * n;
    std::vector<double> values(static_cast<std::size_t>(rows * rows), 0.0);
    for (std::int64_t row = 0; row < rows; ++row) {
      values[static_cast<std::size_t>(row * rows + row)] = 0.5 + static_cast<double>(row);
    }
    for (tg::Dtype dtype : dtypes) {
      for (tg::Reduction reduction : reductions) {
        for (double temperature : {0.005, 0.001, 1.0}) {
          const tg::Tensor orthogonal = tg::Tensor::from_values({rows, rows}, values, dtype);
          const LossAndGradient orthogonal_result =
              evaluate(orthogonal, {.temperature = temperature, .reduction = reduction});
          const double scale = reduction == tg::Reduction::sum ? static_cast<double>(rows) : 1.0;
          for (double loss : orthogonal_result.loss) {
            CHECK(loss == doctest::Approx(std::log(static_cast<double>(rows - 1)) * scale).epsilon(1e-6));
          }
        }
      }
    }
  }
}

TEST_CASE("zero row stays finite") {
  // normalize maps a zero row to zero, so it has cosine 0 with every row. The gradients of the
  // other rows do not depend on the clamp convention. Reference loss 1.5035851906253774.
  tg::Tape tape;
  tg::Var z = tape.leaf(matrix({{0.0, 0.0, 0.0}, {1.0, 2.0, 0.0}, {0.5, 0.5, 1.0}, {1.0, 0.0, 1.0}}));
  tg::Var loss = tg::nt_xent(z, {.temperature = 0.5});
  tape.backward(loss);
  CHECK(loss.value().item() == doctest::Approx(1.5035851906253774).epsilon(1e-10));
  const tg::Tensor grad = z.grad();
  const std::vector<double> expected_rows = {-0.15462618420163035, 0.07731309210081518, -0.08108856958201033,
                                             0.25499404088182653,  0.044190387571580426, -0.1495922142267035,
                                             -0.20543935878859432, -0.2811636338489528,  0.20543935878859432};
  for (std::int64_t row = 1; row < 4; ++row) {
    for (std::int64_t c = 0; c < 3; ++c) {
      CHECK(grad.at({row, c}) ==
            doctest::Approx(expected_rows[static_cast<std::size_t>((row - 1) * 3 + c)]).epsilon(1e-8));
    }
  }
  // The zero row's gradient under the clamp x / max(‖x‖, 1e-12) is the gradient with respect
  // to its normalized vector divided by 1e-12.
  const std::vector<double> expected_zero_row = {-47149565299.91839, -93816285875.18715, -478798778543.21045};
  for (std::int64_t c = 0; c < 3; ++c) {
    CHECK(grad.at({0, c}) == doctest::Approx(expected_zero_row[static_cast<std::size_t>(c)]).epsilon(1e-6));
  }
}

TEST_CASE("one pair has zero loss and gradient") {
  // N = 1 has no negatives: the only other row is the positive, so each l_a is exactly 0.
  for (tg::Dtype dtype : dtypes) {
    for (tg::Layout layout : layouts) {
      for (tg::Reduction reduction : reductions) {
        const tg::Tensor z = tg::Tensor::randn({2, 7}, 3, dtype);
        const LossAndGradient result = evaluate(z, {.temperature = 0.1, .layout = layout, .reduction = reduction});
        CHECK(result.loss.size() == (reduction == tg::Reduction::none ? 2u : 1u));
        CHECK(max_abs(result.loss) == 0.0);
        CHECK(max_abs(result.grad) == 0.0);
      }
    }
  }
}

// ---- Invalid input ---------------------------------------------------------------------------
// A user paired 64 queries with 24 keys and a broadcasting formula "worked"; with unequal views
// there is no pairing, so the loss raises before recording anything.

TEST_CASE("invalid input raises and leaves the tape unchanged") {
  tg::Tape tape;
  tg::Var three_by_two = tape.leaf(matrix({{1.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}}));
  tg::Var two_by_two = tape.leaf(matrix({{1.0, 0.1}, {0.1, 1.0}}));
  tg::Var two_by_three = tape.leaf(matrix({{1.0, 0.0, 0.0}, {0.0, 1.0, 0.0}}));
  tg::Var vector = tape.leaf(tg::Tensor::from_values({2}, {1.0, 0.0}));
  tg::Var empty = tape.leaf(tg::Tensor::zeros({0, 3}));
  tg::Var no_features = tape.leaf(tg::Tensor::zeros({4, 0}));
  tg::Var single = tape.leaf(matrix({{1.0, 0.1}, {0.1, 1.0}}, tg::Dtype::f32));
  tg::Var mask = tape.constant(tg::Tensor::ones({2, 2}, tg::Dtype::boolean));
  const std::int64_t recorded = tape.size();

  CHECK_THROWS_AS(tg::nt_xent(three_by_two, two_by_two), tg::ShapeError);
  CHECK_THROWS_WITH(tg::nt_xent(three_by_two, two_by_two), doctest::Contains("zi of shape [3, 2] and zj of shape [2, 2]"));
  CHECK_THROWS_WITH(tg::nt_xent(two_by_three, two_by_two), doctest::Contains("zi of shape [2, 3] and zj of shape [2, 2]"));
  CHECK_THROWS_AS(tg::nt_xent(vector, vector), tg::ShapeError);
  CHECK_THROWS_WITH(tg::nt_xent(vector, vector), doctest::Contains("must be 2-D"));
  CHECK_THROWS_WITH(tg::nt_xent(vector), doctest::Contains("z of shape [2]"));
  CHECK_THROWS_AS(tg::nt_xent(three_by_two), tg::ShapeError);
  CHECK_THROWS_WITH(tg::nt_xent(three_by_two), doctest::Contains("even number of rows"));
  CHECK_THROWS_WITH(tg::nt_xent(empty), doctest::Contains("must not be empty"));
  CHECK_THROWS_WITH(tg::nt_xent(empty, empty), doctest::Contains("zi of shape [0, 3]"));
  CHECK_THROWS_WITH(tg::nt_xent(no_features), doctest::Contains("at least one feature"));
  CHECK_THROWS_AS(tg::nt_xent(two_by_two, single), tg::DtypeError);
  CHECK_THROWS_WITH(tg::nt_xent(two_by_two, single), doctest::Contains("zi of dtype f64 and zj of dtype f32"));
  CHECK_THROWS_AS(tg::nt_xent(mask), tg::DtypeError);
  for (double temperature : {0.0, -0.1, std::nan(""), HUGE_VAL, -HUGE_VAL}) {
    CAPTURE(temperature);
    CHECK_THROWS_AS(tg::nt_xent(two_by_two, {.temperature = temperature}), tg::ValueError);
    CHECK_THROWS_AS(tg::nt_xent(two_by_two, two_by_two, {.temperature = temperature}), tg::ValueError);
    CHECK_THROWS_WITH(tg::nt_xent(two_by_two, {.temperature = temperature}),
                      doctest::Contains(fmt::format("temperature {}", temperature).c_str()));
  }
  CHECK_THROWS_WITH(tg::nt_xent(two_by_two, {.temperature = -0.1}),
                    doctest::Contains("nt_xent: the temperature must be positive and finite"));
  CHECK(tape.size() == recorded);
}

TEST_CASE("f64 rows past 1e154 give the loss of the unscaled rows") {
  // Cosines do not depend on the rows' lengths, so rows scaled by 1e160, whose squares overflow
  // double, must give the loss and the gradient (times 1e-160) of the rows at scale 1.
  const tg::Tensor z = tg::Tensor::randn({6, 4}, 17);
  std::vector<double> scaled = z.to_vector();
  for (double& value : scaled) {
    value *= 1e160;
  }
  for (auto implementation : {tg::NtXentImplementation::composed, tg::NtXentImplementation::fused}) {
    CAPTURE(implementation);
    const LossAndGradient plain = evaluate_with(z, {}, implementation);
    const LossAndGradient huge = evaluate_with(tg::Tensor::from_values({6, 4}, scaled), {}, implementation);
    CHECK(std::abs(huge.loss[0] - plain.loss[0]) <= 1e-14 * plain.loss[0]);
    REQUIRE(huge.grad.size() == plain.grad.size());
    for (std::size_t i = 0; i < plain.grad.size(); ++i) {
      CHECK(huge.grad[i] * 1e160 == doctest::Approx(plain.grad[i]).epsilon(1e-12));
    }
  }
}

TEST_CASE("temperature too small for the dtype raises") {
  // Logits reach ±1/temperature, so below 4/(largest value) their differences overflow and the loss
  // is inf or NaN: f64 at 1e-308 gave inf and at 4.9e-324 NaN, f32 at 1e-39 NaN. Both paths must
  // reject such temperatures before recording anything, and accept those just above the bound.
  struct Case {
    tg::Dtype dtype;
    double rejected;
    double accepted;
  };
  const Case cases[] = {{tg::Dtype::f64, std::numeric_limits<double>::denorm_min(), 4.0 / DBL_MAX * 1.001},
                        {tg::Dtype::f64, 1e-308, 1e-300},
                        {tg::Dtype::f32, 1e-39, 1e-37}};
  const tg::Tensor values = matrix({{1.0, 0.0}, {0.0, 1.0}, {1.0, 1.0}, {1.0, -1.0}});
  for (const Case& c : cases) {
    for (auto implementation : {tg::NtXentImplementation::composed, tg::NtXentImplementation::fused}) {
      CAPTURE(c.dtype);
      CAPTURE(c.rejected);
      CAPTURE(implementation);
      tg::Tape tape;
      const tg::Var z = tape.leaf(values.to(c.dtype));
      const std::int64_t size = tape.size();
      const tg::NtXentOptions rejected{.temperature = c.rejected, .implementation = implementation};
      CHECK_THROWS_AS(tg::nt_xent(z, rejected), tg::ValueError);
      CHECK_THROWS_WITH(tg::nt_xent(z, rejected), doctest::Contains("temperature must be at least"));
      CHECK(tape.size() == size);
      const tg::Var loss = tg::nt_xent(z, {.temperature = c.accepted, .implementation = implementation});
      CHECK(std::isfinite(loss.value().item()));
    }
  }
  tg::Tape tape;
  const tg::Var zi = tape.leaf(tg::Tensor::randn({2, 3}, 5, tg::Dtype::f32));
  CHECK_THROWS_WITH(tg::nt_xent(zi, zi, {.temperature = 1e-39}),
                    doctest::Contains("at least 1.18e-38 for f32 embeddings"));
}
