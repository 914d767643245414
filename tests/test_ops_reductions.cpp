// sum, mean and max over all elements and along one axis: values, VJPs (ties included), the
// double accumulator, argument checks, and every registered gradcheck case.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

constexpr tg::Dtype floating_dtypes[] = {tg::Dtype::f32, tg::Dtype::f64};
constexpr double infinity = std::numeric_limits<double>::infinity();

// f32 results are compared with float64 expectations, so they get the f32 rounding error.
double rtol_of(tg::Dtype dtype) { return dtype == tg::Dtype::f32 ? 1e-6 : 1e-14; }

// Checks each element: zeros and infinities exactly, others within rtol of the expectation.
void check_elements(const tg::Tensor& actual, const std::vector<double>& expected, double rtol) {
  REQUIRE(actual.numel() == static_cast<std::int64_t>(expected.size()));
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    const double value = actual.flat(static_cast<std::int64_t>(i));
    CAPTURE(value);
    CAPTURE(expected[i]);
    if (expected[i] == 0.0 || std::isinf(expected[i])) {
      CHECK(value == expected[i]);
    } else {
      CHECK(std::abs(value - expected[i]) <= rtol * std::abs(expected[i]));
    }
  }
}

using AxisReduction = tg::Var (*)(const tg::Var&, std::int64_t, bool);
using AllReduction = tg::Var (*)(const tg::Var&);

// One reduction along an axis: the value and the gradient for a given seed.
struct AxisCase {
  AxisReduction reduce;
  std::int64_t axis;
  std::vector<double> values;
  std::vector<double> seed;
  std::vector<double> gradient;
};

// Runs a case for both dtypes, keepdim both ways, and the axis counted from both ends.
void check_axis_case(const tg::Shape& shape, const std::vector<double>& x_values, const AxisCase& expected) {
  for (tg::Dtype dtype : floating_dtypes) {
    for (bool keepdim : {false, true}) {
      for (std::int64_t axis : {expected.axis, expected.axis - shape.rank()}) {
        CAPTURE(dtype);
        CAPTURE(keepdim);
        CAPTURE(axis);
        tg::Tape tape;
        tg::Var x = tape.leaf(tg::Tensor::from_values(shape, x_values, dtype));
        tg::Var y = expected.reduce(x, axis, keepdim);

        tg::Shape expected_shape;
        for (std::int64_t a = 0; a < shape.rank(); ++a) {
          if (a != expected.axis) {
            expected_shape.push_back(shape[a]);
          } else if (keepdim) {
            expected_shape.push_back(1);
          }
        }
        CHECK(y.shape() == expected_shape);
        CHECK(y.dtype() == dtype);
        check_elements(y.value(), expected.values, rtol_of(dtype));

        tape.backward(y, tg::Tensor::from_values(y.shape(), expected.seed, dtype));
        check_elements(x.grad(), expected.gradient, rtol_of(dtype));
      }
    }
  }
}

// x = [[1, 2, 3], [4, 5, 6]]: every value below is a hand sum of these entries.
const tg::Shape small_shape{2, 3};
const std::vector<double> small_values{1, 2, 3, 4, 5, 6};

}  // namespace

TEST_CASE("sum along each axis") {
  check_axis_case(small_shape, small_values, {tg::sum, 0, {5, 7, 9}, {1, 2, 3}, {1, 2, 3, 1, 2, 3}});
  check_axis_case(small_shape, small_values, {tg::sum, 1, {6, 15}, {10, 20}, {10, 10, 10, 20, 20, 20}});
}

TEST_CASE("mean along each axis") {
  check_axis_case(small_shape, small_values, {tg::mean, 0, {2.5, 3.5, 4.5}, {2, 4, 6}, {1, 2, 3, 1, 2, 3}});
  check_axis_case(small_shape, small_values, {tg::mean, 1, {2, 5}, {3, 6}, {1, 1, 1, 2, 2, 2}});
}

TEST_CASE("max along each axis without ties") {
  check_axis_case(small_shape, small_values, {tg::max, 0, {4, 5, 6}, {1, 2, 3}, {0, 0, 0, 1, 2, 3}});
  check_axis_case(small_shape, {5, 1, 2, 0, 3, 4}, {tg::max, 1, {5, 4}, {7, 9}, {7, 0, 0, 0, 0, 9}});
}

TEST_CASE("max splits ties evenly along each axis") {
  // Two-way ties in both columns 0 and 1 along axis 0, and in both rows along axis 1.
  check_axis_case(small_shape, {3, 1, 3, 3, 1, 0}, {tg::max, 0, {3, 1, 3}, {1, 1, 1}, {0.5, 0.5, 1, 0.5, 0.5, 0}});
  check_axis_case(small_shape, {3, 1, 3, 2, 2, 0}, {tg::max, 1, {3, 2}, {2, 4}, {1, 0, 1, 2, 2, 0}});
  // A three-way tie gives 1/3 to each entry.
  check_axis_case({1, 3}, {-1, -1, -1}, {tg::max, 1, {-1}, {1}, {1.0 / 3, 1.0 / 3, 1.0 / 3}});
  // A tie at -inf is still a tie.
  check_axis_case({2, 2}, {-infinity, -infinity, 1, 2}, {tg::max, 1, {-infinity, 2}, {1, 1}, {0.5, 0.5, 0, 1}});
}

TEST_CASE("reductions of all elements") {
  struct AllCase {
    AllReduction reduce;
    std::vector<double> x;
    double value;
    std::vector<double> gradient;
  };
  const std::vector<AllCase> cases{
      {tg::sum, small_values, 21, {1, 1, 1, 1, 1, 1}},
      {tg::mean, small_values, 3.5, std::vector<double>(6, 1.0 / 6)},
      {tg::max, small_values, 6, {0, 0, 0, 0, 0, 1}},
      {tg::max, {3, 1, 3, 2, 2, 0}, 3, {0.5, 0, 0.5, 0, 0, 0}},
      {tg::max, {2, 2, 2, 2, 2, 2}, 2, std::vector<double>(6, 1.0 / 6)},
  };
  for (tg::Dtype dtype : floating_dtypes) {
    for (std::size_t c = 0; c < cases.size(); ++c) {
      CAPTURE(dtype);
      CAPTURE(c);
      tg::Tape tape;
      tg::Var x = tape.leaf(tg::Tensor::from_values(small_shape, cases[c].x, dtype));
      tg::Var y = cases[c].reduce(x);
      CHECK(y.shape() == tg::Shape{});
      check_elements(y.value(), {cases[c].value}, rtol_of(dtype));
      tape.backward(y);
      check_elements(x.grad(), cases[c].gradient, rtol_of(dtype));
    }
  }
}

TEST_CASE("middle axis of a rank-3 tensor") {
  // x[i, j, k] = 100i + 10j + k with shape [2, 3, 4]. Along j: the sum is 300i + 30 + 3k, the
  // mean 100i + 10 + k, and the max 100i + 20 + k at j = 2.
  const tg::Shape shape{2, 3, 4};
  std::vector<double> x_values;
  std::vector<double> sums;
  std::vector<double> means;
  std::vector<double> maxima;
  std::vector<double> max_gradient;
  for (int i = 0; i < 2; ++i) {
    for (int j = 0; j < 3; ++j) {
      for (int k = 0; k < 4; ++k) {
        x_values.push_back(100 * i + 10 * j + k);
        max_gradient.push_back(j == 2 ? 1 : 0);
      }
    }
    for (int k = 0; k < 4; ++k) {
      sums.push_back(300 * i + 30 + 3 * k);
      means.push_back(100 * i + 10 + k);
      maxima.push_back(100 * i + 20 + k);
    }
  }
  const std::vector<double> ones(8, 1.0);
  check_axis_case(shape, x_values, {tg::sum, 1, sums, ones, std::vector<double>(24, 1.0)});
  check_axis_case(shape, x_values, {tg::mean, 1, means, ones, std::vector<double>(24, 1.0 / 3)});
  check_axis_case(shape, x_values, {tg::max, 1, maxima, ones, max_gradient});
}

TEST_CASE("max propagates NaN") {
  for (tg::Dtype dtype : floating_dtypes) {
    CAPTURE(dtype);
    const double nan = std::numeric_limits<double>::quiet_NaN();
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {1, nan, 3, 4, 5, 6}, dtype));
    tg::Var y = tg::max(x, 1);
    CHECK(std::isnan(y.value().flat(0)));
    CHECK(y.value().flat(1) == 6);
    tape.backward(y, tg::Tensor::ones({2}, dtype));
    check_elements(x.grad(), {0, 1, 0, 0, 0, 1}, 0.0);
  }
}

TEST_CASE("f32 sums accumulate in double") {
  // 1e8, then 1000 ones, then -1e8. An f32 accumulator rounds 1e8 + 1 back to 1e8 (its ulp there
  // is 8), so it would return 0. A double accumulator returns 1000 exactly.
  const std::int64_t count = 1002;
  std::vector<double> row(static_cast<std::size_t>(count), 1.0);
  row.front() = 1e8;
  row.back() = -1e8;
  std::vector<double> two_columns;
  for (double value : row) {
    two_columns.push_back(value);
    two_columns.push_back(value);
  }
  tg::Tape tape;
  tg::Var x_row = tape.leaf(tg::Tensor::from_values({1, count}, row, tg::Dtype::f32));
  tg::Var x_columns = tape.leaf(tg::Tensor::from_values({count, 2}, two_columns, tg::Dtype::f32));

  CHECK(tg::sum(x_row).value().item() == 1000.0);
  CHECK(tg::sum(x_row, 1).value().item() == 1000.0);
  // Along axis 0 of [count, 2] the running sums of both columns live in a double buffer.
  check_elements(tg::sum(x_columns, 0).value(), {1000.0, 1000.0}, 0.0);
  const double mean = static_cast<double>(static_cast<float>(1000.0 / count));
  check_elements(tg::mean(x_columns, 0).value(), {mean, mean}, 0.0);
}

TEST_CASE("reductions of zero elements") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::zeros({0, 3}));

  SUBCASE("sum is zero") {
    CHECK(tg::sum(x).value().item() == 0.0);
    tg::Var by_column = tg::sum(x, 0);
    CHECK(by_column.shape() == tg::Shape{3});
    check_elements(by_column.value(), {0, 0, 0}, 0.0);
    CHECK(tg::sum(x, 1).shape() == tg::Shape{0});
  }

  SUBCASE("mean and max raise ValueError") {
    const std::int64_t size_before = tape.size();
    for (AllReduction reduce : {AllReduction{tg::mean}, AllReduction{tg::max}}) {
      try {
        reduce(x);
        FAIL("an empty tensor was reduced");
      } catch (const tg::ValueError& error) {
        const std::string message = error.what();
        CAPTURE(message);
        CHECK(message.find("[0, 3]") != std::string::npos);
        CHECK(message.find("at least one element") != std::string::npos);
      }
    }
    for (AxisReduction reduce : {AxisReduction{tg::mean}, AxisReduction{tg::max}}) {
      try {
        reduce(x, 0, false);
        FAIL("an axis of extent 0 was reduced");
      } catch (const tg::ValueError& error) {
        const std::string message = error.what();
        CAPTURE(message);
        CHECK(message.find("axis 0 of extent 0") != std::string::npos);
        CHECK(message.find("[0, 3]") != std::string::npos);
      }
      // Along axis 1 every row is empty, but there are no rows, so the result is [0].
      CHECK(reduce(x, 1, false).shape() == tg::Shape{0});
    }
    CHECK(tape.size() == size_before + 2);
  }
}

TEST_CASE("invalid axis raises ShapeError") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::zeros({2, 3}));
  tg::Var scalar = tape.leaf(tg::Tensor::zeros({}));
  const std::int64_t size_before = tape.size();
  for (AxisReduction reduce : {AxisReduction{tg::sum}, AxisReduction{tg::mean}, AxisReduction{tg::max}}) {
    for (std::int64_t axis : {2, -3, 100}) {
      CAPTURE(axis);
      try {
        reduce(x, axis, false);
        FAIL("an invalid axis was accepted");
      } catch (const tg::ShapeError& error) {
        const std::string message = error.what();
        CAPTURE(message);
        CHECK(message.find("axis " + std::to_string(axis)) != std::string::npos);
        CHECK(message.find("[2, 3]") != std::string::npos);
        CHECK(message.find("[-2, 2)") != std::string::npos);
      }
    }
    CHECK_THROWS_AS(reduce(scalar, 0, false), tg::ShapeError);
  }
  CHECK(tape.size() == size_before);
}

TEST_CASE("boolean input raises DtypeError") {
  tg::Tape tape;
  tg::Var flags = tape.constant(tg::Tensor::from_values({2}, {1, 0}, tg::Dtype::boolean));
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_WITH_AS(tg::sum(flags), doctest::Contains("dtype boolean"), tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::mean(flags, 0), doctest::Contains("dtype boolean"), tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::max(flags, 0, true), doctest::Contains("dtype boolean"), tg::DtypeError);
  CHECK(tape.size() == size_before);
}

TEST_CASE("gradients of finite inputs are finite") {
  // Values up to 1e30 in magnitude, with repeated entries so that max has ties.
  std::vector<double> values = tg::Tensor::uniform({4, 5, 3}, -1e30, 1e30, 7).to_vector();
  values[3] = values[0];
  values[15] = values[0];
  for (tg::Dtype dtype : floating_dtypes) {
    for (AxisReduction reduce : {AxisReduction{tg::sum}, AxisReduction{tg::mean}, AxisReduction{tg::max}}) {
      for (std::int64_t axis = -3; axis < 3; ++axis) {
        for (bool keepdim : {false, true}) {
          CAPTURE(dtype);
          CAPTURE(axis);
          CAPTURE(keepdim);
          tg::Tape tape;
          tg::Var x = tape.leaf(tg::Tensor::from_values({4, 5, 3}, values, dtype));
          tg::Var y = reduce(x, axis, keepdim);
          tape.backward(y, tg::Tensor::ones(y.shape(), dtype));
          const std::vector<double> gradient = x.grad().to_vector();
          CHECK(std::all_of(gradient.begin(), gradient.end(), [](double g) { return std::isfinite(g); }));
        }
      }
    }
  }
}

TEST_CASE("every reduction case passes gradcheck") {
  tg::GradcheckRegistry registry;
  tg::register_reduction_cases(registry);
  for (const char* op : {"sum", "mean", "max"}) {
    CAPTURE(op);
    const auto cases = registry.cases_of(op);
    CHECK(cases.size() >= 6);
    for (const tg::GradcheckCase* gradcheck_case : cases) {
      CAPTURE(gradcheck_case->name);
      const tg::GradcheckResult result = tg::gradcheck(*gradcheck_case);
      CAPTURE(tg::verdict_name(result.verdict));
      CAPTURE(result.max_abs_error());
      CHECK(result.passed());
    }
  }
}

TEST_CASE("gradcheck of max at a tie reports a non-differentiable point") {
  // The reason max cases are sampled away from ties: at the three-way tie [2, 2, 2, 1] the
  // central difference of the first entry is (1 + 0) / 2 = 0.5, the average of the one-sided
  // derivatives 1 and 0, while the even split gives 1/3. Neither is wrong, and gradcheck must
  // call the point non-differentiable rather than pass it or call the gradient wrong.
  tg::GradcheckCase tie{.op = "max",
                        .name = "three_way_tie",
                        .inputs = {{.shape = {4}, .values = tg::Tensor::from_values({4}, {2, 2, 2, 1})}},
                        .function = [](std::span<const tg::Var> inputs) { return tg::max(inputs[0]); }};
  const tg::GradcheckResult result = tg::gradcheck(tie);
  CAPTURE(tg::verdict_name(result.verdict));
  CHECK(result.verdict == tg::GradcheckVerdict::non_differentiable_point);
}
