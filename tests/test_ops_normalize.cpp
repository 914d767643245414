// normalize: values and gradients along each axis, zero and tiny lines, f32, errors, gradcheck.
//
// Reference gradients were computed with python3 in float64 from the derivative of y = x / n
// written out directly, x̄ₖ = Σᵢ ȳᵢ (δᵢₖ / n − xᵢ xₖ / n³), not from the formula the op uses,
// and ȳ / eps for lines with n ≤ eps.
#include <doctest/doctest.h>

#include <cmath>
#include <limits>
#include <span>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

const tg::Dtype floating_dtypes[] = {tg::Dtype::f64, tg::Dtype::f32};

// Relative tolerance against float64 references: about 45 ulps in f64, because norms and dot
// products round several times, and 8 ulps in f32.
double tolerance(tg::Dtype dtype) { return dtype == tg::Dtype::f64 ? 1e-14 : 1e-6; }

void check_tensor(const tg::Tensor& actual, const tg::Shape& shape, const std::vector<double>& expected,
                  tg::Dtype dtype) {
  INFO("shape ", tg::to_string(actual.shape()), " expected ", tg::to_string(shape));
  REQUIRE(actual.shape() == shape);
  REQUIRE(actual.dtype() == dtype);
  REQUIRE(actual.numel() == static_cast<std::int64_t>(expected.size()));
  for (std::size_t i = 0; i < expected.size(); ++i) {
    INFO("flat index ", i);
    CHECK(actual.flat(static_cast<std::int64_t>(i)) == doctest::Approx(expected[i]).epsilon(tolerance(dtype)));
  }
}

// Rows with norms 5, 3, 0 and 7, and a cotangent for them.
const std::initializer_list<double> rows_values = {3, 4, 0, 1, -2, 2, 0, 0, 0, 2, 3, 6};
const std::initializer_list<double> rows_seed = {1, 2, 3, 0.5, -1, 2, 1, -2, 0.5, -1, 0.25, 2};

// M = [[3, 1], [4, -2], [0, 2]]: columns with norms 5 and 3, rows with norms √10, √20 and 2.
const std::initializer_list<double> matrix_values = {3, 1, 4, -2, 0, 2};
const std::initializer_list<double> matrix_seed = {1, 0.5, -1, 3, 2, -2};

}  // namespace

TEST_CASE("rows with a zero row") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({4, 3}, rows_values, dtype));
    tg::Var y = tg::normalize(x);
    CHECK(y.op() == "normalize");
    check_tensor(y.value(), {4, 3},
                 {0.6, 0.8, 0, 1.0 / 3.0, -2.0 / 3.0, 2.0 / 3.0, 0, 0, 0, 2.0 / 7.0, 3.0 / 7.0, 6.0 / 7.0}, dtype);
    tape.backward(y, tg::Tensor::from_values({4, 3}, rows_seed, dtype));
    check_tensor(x.grad(), {4, 3},
                 {-0.064, 0.048, 0.6,                                              // row of norm 5
                  -0.07407407407407407, 0.14814814814814814, 0.18518518518518517,  // row of norm 3
                  1e12, -2e12, 5e11,                                               // zero row: ȳ / eps
                  -0.2055393586005831, -0.05830903790087464, 0.097667638483965},   // row of norm 7
                 dtype);
  }
}

TEST_CASE("zero row gradient is exactly cotangent over eps") {
  for (double eps : {1e-12, 0.5, 3.0}) {
    INFO("eps ", eps);
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({4, 3}, rows_values));
    tg::Var y = tg::normalize(x, -1, eps);
    const tg::Tensor seed = tg::Tensor::from_values({4, 3}, rows_seed);
    tape.backward(y, seed);
    for (std::int64_t k = 0; k < 3; ++k) {
      CHECK(y.value().at({2, k}) == 0.0);
      CHECK(x.grad().at({2, k}) == seed.at({2, k}) / eps);
    }
  }
}

TEST_CASE("row with norm between 0 and eps is divided by eps") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 2}, {3e-13, 4e-13, 3, 4}));
  tg::Var y = tg::normalize(x, 1, 1e-12);
  // The first row has norm 5e-13 < eps, so y = x / 1e-12, not a unit row.
  CHECK(y.value().at({0, 0}) == doctest::Approx(0.3).epsilon(1e-15));
  CHECK(y.value().at({0, 1}) == doctest::Approx(0.4).epsilon(1e-15));
  CHECK(y.value().at({1, 0}) == doctest::Approx(0.6).epsilon(1e-15));
  tape.backward(y, tg::Tensor::from_values({2, 2}, {1, -2, 4, -3}));
  CHECK(x.grad().at({0, 0}) == 1.0 / 1e-12);
  CHECK(x.grad().at({0, 1}) == -2.0 / 1e-12);
  // The second row's cotangent [4, −3] is orthogonal to y = [0.6, 0.8], so x̄ = ȳ / n = ȳ / 5.
  CHECK(x.grad().at({1, 0}) == doctest::Approx(0.8).epsilon(1e-15));
  CHECK(x.grad().at({1, 1}) == doctest::Approx(-0.6).epsilon(1e-15));
}

TEST_CASE("cotangent orthogonal or parallel to the row") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 2}, {3, 4, 3, 4}));
  tg::Var y = tg::normalize(x);
  // Row 0: ȳ ⟂ y passes through scaled by 1 / n. Row 1: ȳ ∥ y changes only the length, so x̄ = 0.
  tape.backward(y, tg::Tensor::from_values({2, 2}, {4, -3, 3, 4}));
  CHECK(x.grad().at({0, 0}) == doctest::Approx(0.8).epsilon(1e-15));
  CHECK(x.grad().at({0, 1}) == doctest::Approx(-0.6).epsilon(1e-15));
  CHECK(std::abs(x.grad().at({1, 0})) < 1e-15);
  CHECK(std::abs(x.grad().at({1, 1})) < 1e-15);
}

TEST_CASE("axis 0 normalizes columns") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    for (std::int64_t axis : {0, -2}) {
      INFO("axis ", axis);
      tg::Tape tape;
      tg::Var x = tape.leaf(tg::Tensor::from_values({3, 2}, matrix_values, dtype));
      tg::Var y = tg::normalize(x, axis);
      check_tensor(y.value(), {3, 2}, {0.6, 1.0 / 3.0, 0.8, -2.0 / 3.0, 0, 2.0 / 3.0}, dtype);
      tape.backward(y, tg::Tensor::from_values({3, 2}, matrix_seed, dtype));
      check_tensor(x.grad(), {3, 2},
                   {0.224, 0.5185185185185185, -0.168, 0.2962962962962963, 0.4, 0.037037037037037035}, dtype);
    }
  }
}

TEST_CASE("axis 1 and -1 normalize rows") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    for (std::int64_t axis : {1, -1}) {
      INFO("axis ", axis);
      tg::Tape tape;
      tg::Var x = tape.leaf(tg::Tensor::from_values({3, 2}, matrix_values, dtype));
      tg::Var y = tg::normalize(x, axis);
      check_tensor(y.value(), {3, 2},
                   {0.9486832980505138, 0.31622776601683794, 0.8944271909999159, -0.4472135954999579, 0, 1}, dtype);
      tape.backward(y, tg::Tensor::from_values({3, 2}, matrix_seed, dtype));
      // The last row [0, 2] has y = [0, 1] and ȳ = [2, −2]: x̄ = ([2, −2] − [0, 1]·(−2)) / 2 = [1, 0].
      check_tensor(x.grad(), {3, 2},
                   {-0.015811388300841847, 0.04743416490252572, 0.2236067977499789, 0.447213595499958, 1, 0},
                   dtype);
    }
  }
}

TEST_CASE("rank 3 along the middle axis") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3, 2}, {1, 2, 2, -1, 2, 2, 0.5, 0, -1, 1, 0.25, -3}));
  tg::Var y = tg::normalize(x, 1);
  check_tensor(y.value(), {2, 3, 2},
               {0.3333333333333333, 0.6666666666666666, 0.6666666666666666, -0.3333333333333333, 0.6666666666666666,
                0.6666666666666666, 0.4364357804719848, 0.0, -0.8728715609439696, 0.31622776601683794,
                0.2182178902359924, -0.9486832980505138},
               tg::Dtype::f64);
  tape.backward(y, tg::Tensor::from_values({2, 3, 2}, {1, 0, 0, 1, 2, -1, 1, 1, -1, 2, 0.5, 0.5}));
  check_tensor(x.grad(), {2, 3, 2},
               {0.14814814814814814, 0.2222222222222222, -0.37037037037037035, 0.2222222222222222, 0.2962962962962963,
                -0.1111111111111111, 0.3325224994072265, 0.31622776601683794, 0.20782656212951656, 0.616644143732834,
                0.16626124970361322, 0.20554804791094464},
               tg::Dtype::f64);
}

TEST_CASE("f32 stays finite at zero, tiny and huge rows") {
  tg::Tape tape;
  // Row 2 has squares near 1e61, beyond FLT_MAX ≈ 3.4e38, so an f32 sum of squares would overflow.
  tg::Var x = tape.leaf(tg::Tensor::from_values({4, 3}, {0, 0, 0, 1e-30, 0, 0, 3e30, 4e30, 0, 1, 2, 2}, tg::Dtype::f32));
  tg::Var y = tg::normalize(x);
  tape.backward(y, tg::Tensor::ones({4, 3}, tg::Dtype::f32));
  for (std::int64_t i = 0; i < 12; ++i) {
    INFO("flat index ", i);
    CHECK(std::isfinite(y.value().flat(i)));
    CHECK(std::isfinite(x.grad().flat(i)));
  }
  CHECK(y.value().at({1, 0}) == doctest::Approx(1e-18).epsilon(1e-6));  // 1e-30 / eps
  CHECK(y.value().at({2, 0}) == doctest::Approx(0.6).epsilon(1e-6));
  CHECK(y.value().at({2, 1}) == doctest::Approx(0.8).epsilon(1e-6));
  CHECK(x.grad().at({0, 0}) == doctest::Approx(1e12).epsilon(1e-6));
  // Computed with python3 in float64 from the direct derivative, for the row [1, 2, 2] and ȳ = 1.
  CHECK(x.grad().at({3, 0}) == doctest::Approx(0.14814814814814814).epsilon(1e-6));
  CHECK(x.grad().at({3, 1}) == doctest::Approx(-0.037037037037037035).epsilon(1e-6));
}

TEST_CASE("f64 rows past 1e154 still map to unit rows") {
  // The squares of 3e160 and 4e160 overflow double, so a plain sum of squares gives n = inf and
  // y = 0. The row [3e160, 4e160] must map to [0.6, 0.8] with the gradient of [3, 4] scaled by
  // 1e-160, along axis 0 and axis 1. A row with an infinite element keeps n = inf.
  for (const std::int64_t axis : {0, 1}) {
    CAPTURE(axis);
    tg::Tape tape;
    const tg::Tensor values = axis == 1 ? tg::Tensor::from_values({2, 2}, {3e160, 4e160, 3.0, 4.0})
                                        : tg::Tensor::from_values({2, 2}, {3e160, 3.0, 4e160, 4.0});
    tg::Var x = tape.leaf(values);
    tg::Var y = tg::normalize(x, axis);
    // ȳ = [1, -2] along each line.
    const tg::Tensor cotangent = axis == 1 ? tg::Tensor::from_values({2, 2}, {1.0, -2.0, 1.0, -2.0})
                                           : tg::Tensor::from_values({2, 2}, {1.0, 1.0, -2.0, -2.0});
    tape.backward(y, cotangent);
    auto at = [axis](const tg::Tensor& t, std::int64_t line, std::int64_t k) {
      return axis == 1 ? t.at({line, k}) : t.at({k, line});
    };
    CHECK(at(y.value(), 0, 0) == doctest::Approx(0.6).epsilon(1e-15));
    CHECK(at(y.value(), 0, 1) == doctest::Approx(0.8).epsilon(1e-15));
    CHECK(at(x.grad(), 0, 0) == doctest::Approx(at(x.grad(), 1, 0) * 1e-160).epsilon(1e-14));
    CHECK(at(x.grad(), 0, 1) == doctest::Approx(at(x.grad(), 1, 1) * 1e-160).epsilon(1e-14));
    CHECK(at(x.grad(), 1, 0) != 0.0);
  }
  tg::Tape tape;
  const tg::Var infinite = tape.leaf(tg::Tensor::from_values({1, 2}, {std::numeric_limits<double>::infinity(), 1.0}));
  CHECK(tg::normalize(infinite).value().at({0, 1}) == 0.0);
  // A NaN anywhere in the line, even before larger elements, makes the rescaled norm NaN.
  const double nan_first[] = {std::numeric_limits<double>::quiet_NaN(), 1e300, 1e300};
  CHECK(std::isnan(tg::detail::rescaled_norm(nan_first, 3, 1)));
  const double huge[] = {3e200, 0.0, 4e200};
  CHECK(tg::detail::rescaled_norm(huge, 2, 2) == doctest::Approx(5e200).epsilon(1e-15));
}

TEST_CASE("size-0 axes give empty outputs") {
  tg::Tape tape;
  tg::Var no_columns = tape.leaf(tg::Tensor::zeros({2, 0}));
  tg::Var y = tg::normalize(no_columns);
  CHECK(y.shape() == tg::Shape{2, 0});
  tape.backward(y, tg::Tensor::zeros({2, 0}));
  CHECK(no_columns.grad().shape() == tg::Shape{2, 0});

  tg::Var no_rows = tape.leaf(tg::Tensor::zeros({0, 3}));
  CHECK(tg::normalize(no_rows, 1).shape() == tg::Shape{0, 3});
  CHECK(tg::normalize(no_rows, 0).shape() == tg::Shape{0, 3});
}

TEST_CASE("invalid eps raises ValueError") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::ones({2, 3}));
  const std::int64_t size_before = tape.size();
  for (double eps : {0.0, -1.0, std::numeric_limits<double>::infinity(), std::numeric_limits<double>::quiet_NaN()}) {
    INFO("eps ", eps);
    CHECK_THROWS_AS(tg::normalize(x, -1, eps), tg::ValueError);
  }
  CHECK_THROWS_WITH(tg::normalize(x, -1, -1.0), doctest::Contains("normalize: eps must be positive and finite, but got eps -1"));
  CHECK_THROWS_WITH(tg::normalize(x, -1, 0.0), doctest::Contains("but got eps 0"));
  CHECK_THROWS_WITH(tg::normalize(x, -1, std::numeric_limits<double>::infinity()), doctest::Contains("but got eps inf"));
  CHECK(tape.size() == size_before);
}

TEST_CASE("invalid axis, rank and dtype raise") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::ones({2, 3}));
  tg::Var scalar = tape.leaf(tg::Tensor::ones({}));
  tg::Var mask = tape.constant(tg::Tensor::from_values({2}, {1, 0}, tg::Dtype::boolean));
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_AS(tg::normalize(x, 2), tg::ShapeError);
  CHECK_THROWS_WITH(tg::normalize(x, 2), doctest::Contains("normalize: axis must be in [-2, 2) for a tensor of rank 2, but got axis 2"));
  CHECK_THROWS_WITH(tg::normalize(x, -3), doctest::Contains("but got axis -3"));
  CHECK_THROWS_AS(tg::normalize(scalar), tg::ShapeError);
  CHECK_THROWS_WITH(tg::normalize(scalar), doctest::Contains("normalize: x must have at least one axis to normalize along, but got x of shape []"));
  CHECK_THROWS_AS(tg::normalize(mask), tg::DtypeError);
  CHECK_THROWS_WITH(tg::normalize(mask), doctest::Contains("normalize: the argument must be f32 or f64, but got x of dtype boolean"));
  CHECK(tape.size() == size_before);
}

TEST_CASE("normalize gradcheck cases pass") {
  tg::GradcheckRegistry registry;
  tg::register_normalize_cases(registry);
  const auto cases = registry.cases_of("normalize");
  CHECK(cases.size() >= 8);
  for (const tg::GradcheckCase* gradcheck_case : cases) {
    INFO("case ", gradcheck_case->name);
    CHECK_FALSE(gradcheck_case->override_reason.empty());
    const tg::GradcheckResult result = tg::gradcheck(*gradcheck_case);
    INFO("max abs error ", result.max_abs_error());
    CHECK(result.passed());
  }
}

TEST_CASE("gradcheck catches a VJP without the projection") {
  // A planted bug: x̄ = ȳ / n, dropping the term −y·⟨y, ȳ⟩ / n.
  auto unprojected = [](std::span<const tg::Var> inputs) {
    const tg::Var& x = inputs[0];
    tg::Tensor y = tg::normalize(x).value().clone();
    return x.tape().record("normalize_without_projection", y, {x}, [](tg::VjpContext& context) {
      const tg::Tensor& x = context.input(0);
      const tg::Tensor& g = context.cotangent();
      tg::Tensor x_grad = tg::Tensor::empty(x.shape());
      const std::int64_t columns = x.shape()[1];
      for (std::int64_t row = 0; row < x.shape()[0]; ++row) {
        double squares = 0.0;
        for (std::int64_t k = 0; k < columns; ++k) {
          squares += x.data<double>()[row * columns + k] * x.data<double>()[row * columns + k];
        }
        for (std::int64_t k = 0; k < columns; ++k) {
          x_grad.data<double>()[row * columns + k] = g.data<double>()[row * columns + k] / std::sqrt(squares);
        }
      }
      context.accumulate(0, std::move(x_grad));
    });
  };
  const tg::GradcheckCase planted{.op = "normalize_without_projection",
                                  .name = "rows",
                                  .inputs = {{.shape = {3, 4}, .low = 0.5, .high = 1.5}},
                                  .function = unprojected};
  const tg::GradcheckResult result = tg::gradcheck(planted);
  CHECK_FALSE(result.passed());
  REQUIRE(result.inputs.size() == 1);
  CHECK(result.inputs[0].verdict == tg::GradcheckVerdict::wrong_gradient);
}
