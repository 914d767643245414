// Elementwise exp and log: values, gradients, IEEE edges and the zero-cotangent rule.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
const tg::Dtype floating_dtypes[] = {tg::Dtype::f64, tg::Dtype::f32};

// Relative tolerance against float64 references: a few ulps of the dtype.
double tolerance(tg::Dtype dtype) { return dtype == tg::Dtype::f64 ? 1e-15 : 1e-6; }

void check_tensor(const tg::Tensor& actual, const std::vector<double>& expected, tg::Dtype dtype) {
  REQUIRE(actual.dtype() == dtype);
  REQUIRE(actual.numel() == static_cast<std::int64_t>(expected.size()));
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("flat index ", i);
    CHECK(actual.flat(static_cast<std::int64_t>(i)) == doctest::Approx(expected[i]).epsilon(tolerance(dtype)));
  }
}

const std::initializer_list<double> seed_values = {1, -2, 0.5, 3, -1, 0.25};

}  // namespace

TEST_CASE("exp values and gradient") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {-1.5, -0.25, 0, 0.5, 2, 3.25}, dtype));
    tg::Var y = tg::exp(x);
    CHECK(y.shape() == tg::Shape{2, 3});
    // Computed with python3 in float64: [math.exp(v) for v in x].
    check_tensor(y.value(),
                 {0.22313016014842982, 0.7788007830714049, 1.0, 1.6487212707001282, 7.38905609893065,
                  25.790339917193062},
                 dtype);
    tape.backward(y, tg::Tensor::from_values({2, 3}, seed_values, dtype));
    // Computed with python3 in float64: [s * math.exp(v) for s, v in zip(seed, x)].
    check_tensor(x.grad(),
                 {0.22313016014842982, -1.5576015661428098, 0.5, 4.946163812100385, -7.38905609893065,
                  6.447584979298266},
                 dtype);
  }
}

TEST_CASE("log values and gradient") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({6}, {0.25, 0.5, 1, 2, 10, 1e-3}, dtype));
    tg::Var y = tg::log(x);
    // Computed with python3 in float64: [math.log(v) for v in x].
    check_tensor(y.value(),
                 {-1.3862943611198906, -0.6931471805599453, 0.0, 0.6931471805599453, 2.302585092994046,
                  -6.907755278982137},
                 dtype);
    tape.backward(y, tg::Tensor::from_values({6}, seed_values, dtype));
    check_tensor(x.grad(), {4, -4, 0.5, 1.5, -0.1, 250}, dtype);  // seed / x
  }
}

TEST_CASE("exp of log is the identity") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({4}, {0.1, 1, 3.5, 42}));
  tg::Var y = tg::exp(tg::log(x));
  tape.backward(y, tg::Tensor::ones({4}));
  check_tensor(y.value(), {0.1, 1, 3.5, 42}, tg::Dtype::f64);
  check_tensor(x.grad(), {1, 1, 1, 1}, tg::Dtype::f64);
}

TEST_CASE("IEEE edges of log and exp") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({3}, {0, -1, 1000}));
  tg::Var logs = tg::log(x);
  CHECK(logs.value().flat(0) == -inf);
  CHECK(std::isnan(logs.value().flat(1)));
  tg::Var exps = tg::exp(x);
  CHECK(exps.value().flat(0) == 1.0);
  CHECK(exps.value().flat(1) == doctest::Approx(0.36787944117144233).epsilon(1e-15));  // math.exp(-1)
  CHECK(exps.value().flat(2) == inf);

  // With a non-zero cotangent, log's gradient is ȳ / x: inf at 0 and finite at −1.
  tape.backward(logs, tg::Tensor::ones({3}));
  CHECK(x.grad().flat(0) == inf);
  CHECK(x.grad().flat(1) == -1.0);
  CHECK(x.grad().flat(2) == 1e-3);

  tg::Var x32 = tape.leaf(tg::Tensor::from_values({2}, {100, 88}, tg::Dtype::f32));
  tg::Var exps32 = tg::exp(x32);
  CHECK(exps32.value().flat(0) == inf);  // e^100 > FLT_MAX ≈ 3.4e38
  CHECK(std::isfinite(exps32.value().flat(1)));  // e^88 ≈ 1.65e38 still fits
}

TEST_CASE("zero cotangent through overflowed exp gives zero") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({3}, {1000, 0.5, -2}));
  tg::Var y = tg::exp(x);
  REQUIRE(y.value().flat(0) == inf);
  tape.backward(y, tg::Tensor::from_values({3}, {0, 1, 0}));
  CHECK(x.grad().flat(0) == 0.0);  // 0 · inf would be NaN
  CHECK(x.grad().flat(1) == doctest::Approx(1.6487212707001282).epsilon(1e-15));  // math.exp(0.5)
  CHECK(x.grad().flat(2) == 0.0);

  tg::Var x32 = tape.leaf(tg::Tensor::from_values({2}, {100, 1}, tg::Dtype::f32));
  tg::Var y32 = tg::exp(x32);
  REQUIRE(y32.value().flat(0) == inf);
  tape.backward(y32, tg::Tensor::from_values({2}, {0, 2}, tg::Dtype::f32));
  CHECK(x32.grad().flat(0) == 0.0);
  CHECK(x32.grad().flat(1) == doctest::Approx(2 * 2.718281828459045).epsilon(1e-6));
}

TEST_CASE("zero cotangent through an unselected exp keeps the gradient finite") {
  // y = Σ wᵢ · exp(xᵢ) with weights 0 at the entries a later selection drops. The product's VJP
  // hands exp a cotangent of exactly 0 there, and exp(1000) = inf must not turn it into NaN.
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({3}, {1000, 0, 1}));
  tg::Var weights = tape.constant(tg::Tensor::from_values({3}, {0, 1, 1}));
  tg::Var weighted = tg::exp(x) * weights;
  tape.backward(weighted, tg::Tensor::ones({3}));
  CHECK(x.grad().flat(0) == 0.0);
  CHECK(x.grad().flat(1) == 1.0);
  CHECK(x.grad().flat(2) == doctest::Approx(2.718281828459045).epsilon(1e-15));
}

TEST_CASE("zero cotangent at log of 0 gives zero") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {0, 4}, dtype));
    tape.backward(tg::log(x), tg::Tensor::from_values({2}, {0, 1}, dtype));
    CHECK(x.grad().flat(0) == 0.0);  // 0 / 0 would be NaN
    CHECK(x.grad().flat(1) == 0.25);
  }
}

TEST_CASE("anomaly mode reports log of 0") {
  tg::Tape tape({.detect_anomaly = true});
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {0, 1}));
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_AS(tg::log(x), tg::ValueError);
  CHECK_THROWS_WITH(tg::log(x), doctest::Contains("log: anomaly mode"));
  CHECK(tape.size() == size_before);
}

TEST_CASE("boolean input raises DtypeError") {
  tg::Tape tape;
  tg::Var mask = tape.constant(tg::Tensor::from_values({2}, {1, 0}, tg::Dtype::boolean));
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_AS(tg::exp(mask), tg::DtypeError);
  CHECK_THROWS_WITH(tg::log(mask), doctest::Contains("log: the argument must be f32 or f64, but got x of dtype boolean and shape [2]"));
  CHECK(tape.size() == size_before);
}

TEST_CASE("exp and log gradcheck cases pass") {
  tg::GradcheckRegistry registry;
  tg::register_exp_log_cases(registry);
  for (const char* op : {"exp", "log"}) {
    INFO("op ", op);
    const auto cases = registry.cases_of(op);
    CHECK(cases.size() >= 4);
    for (const tg::GradcheckCase* gradcheck_case : cases) {
      INFO("case ", gradcheck_case->name);
      const tg::GradcheckResult result = tg::gradcheck(*gradcheck_case);
      INFO("max abs error ", result.max_abs_error());
      CHECK(result.passed());
    }
  }
}
