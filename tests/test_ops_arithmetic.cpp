// Elementwise add, sub, mul, div and neg: values, broadcasting, gradients, scalar forms, errors.
// Expected values are worked out by hand from the operands written beside them.
#include <doctest/doctest.h>

#include <algorithm>
#include <limits>
#include <span>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

constexpr double inf = std::numeric_limits<double>::infinity();
const tg::Dtype floating_dtypes[] = {tg::Dtype::f64, tg::Dtype::f32};

// Relative tolerance for comparing with exact decimal expectations: a few ulps of the dtype.
double tolerance(tg::Dtype dtype) { return dtype == tg::Dtype::f64 ? 1e-15 : 1e-6; }

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

tg::Tensor tensor(const tg::Shape& shape, std::initializer_list<double> values, tg::Dtype dtype = tg::Dtype::f64) {
  return tg::Tensor::from_values(shape, values, dtype);
}

// The operands most tests share: A = [[1, 2, 3], [4, 5, 6]], B of the same shape, and a seed S.
const std::initializer_list<double> a_values = {1, 2, 3, 4, 5, 6};
const std::initializer_list<double> b_values = {0.5, -1, 2, 3, 0.25, -4};
const std::initializer_list<double> seed_values = {1, -1, 2, 0.5, 3, -2};

}  // namespace

TEST_CASE("same-shape values and gradients") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    const tg::Tensor seed = tensor({2, 3}, seed_values, dtype);
    tg::Tape tape;
    tg::Var a = tape.leaf(tensor({2, 3}, a_values, dtype));
    tg::Var b = tape.leaf(tensor({2, 3}, b_values, dtype));

    tg::Var sum = a + b;
    check_tensor(sum.value(), {2, 3}, {1.5, 1, 5, 7, 5.25, 2}, dtype);
    CHECK(sum.op() == "add");
    tape.backward(sum, seed);
    check_tensor(a.grad(), {2, 3}, {1, -1, 2, 0.5, 3, -2}, dtype);
    check_tensor(b.grad(), {2, 3}, {1, -1, 2, 0.5, 3, -2}, dtype);

    tape.zero_grad();
    tg::Var difference = a - b;
    check_tensor(difference.value(), {2, 3}, {0.5, 3, 1, 1, 4.75, 10}, dtype);
    CHECK(difference.op() == "sub");
    tape.backward(difference, seed);
    check_tensor(a.grad(), {2, 3}, {1, -1, 2, 0.5, 3, -2}, dtype);
    check_tensor(b.grad(), {2, 3}, {-1, 1, -2, -0.5, -3, 2}, dtype);

    tape.zero_grad();
    tg::Var product = a * b;
    check_tensor(product.value(), {2, 3}, {0.5, -2, 6, 12, 1.25, -24}, dtype);
    CHECK(product.op() == "mul");
    tape.backward(product, seed);
    check_tensor(a.grad(), {2, 3}, {0.5, 1, 4, 1.5, 0.75, 8}, dtype);   // S · B
    check_tensor(b.grad(), {2, 3}, {1, -2, 6, 2, 15, -12}, dtype);      // S · A

    tape.zero_grad();
    tg::Var quotient = a / b;
    check_tensor(quotient.value(), {2, 3}, {2, -2, 1.5, 4.0 / 3.0, 20, -1.5}, dtype);
    CHECK(quotient.op() == "div");
    tape.backward(quotient, seed);
    check_tensor(a.grad(), {2, 3}, {2, 1, 1, 1.0 / 6.0, 12, 0.5}, dtype);      // S / B
    check_tensor(b.grad(), {2, 3}, {-4, 2, -1.5, -2.0 / 9.0, -240, 0.75}, dtype);  // −S · A / B²

    tape.zero_grad();
    tg::Var negated = -a;
    check_tensor(negated.value(), {2, 3}, {-1, -2, -3, -4, -5, -6}, dtype);
    CHECK(negated.op() == "neg");
    tape.backward(negated, seed);
    check_tensor(a.grad(), {2, 3}, {-1, 1, -2, -0.5, -3, 2}, dtype);
  }
}

TEST_CASE("named functions match the operators") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tensor({2, 3}, a_values));
  tg::Var b = tape.leaf(tensor({2, 3}, b_values));
  CHECK(tg::add(a, b).value().to_vector() == (a + b).value().to_vector());
  CHECK(tg::sub(a, b).value().to_vector() == (a - b).value().to_vector());
  CHECK(tg::mul(a, b).value().to_vector() == (a * b).value().to_vector());
  CHECK(tg::div(a, b).value().to_vector() == (a / b).value().to_vector());
  CHECK(tg::neg(a).value().to_vector() == (-a).value().to_vector());
}

TEST_CASE("broadcast row reduces over rows") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    const tg::Tensor seed = tensor({2, 3}, seed_values, dtype);
    tg::Tape tape;
    tg::Var a = tape.leaf(tensor({2, 3}, a_values, dtype));
    tg::Var row = tape.leaf(tensor({1, 3}, {10, 20, 30}, dtype));

    tg::Var sum = a + row;
    check_tensor(sum.value(), {2, 3}, {11, 22, 33, 14, 25, 36}, dtype);
    tape.backward(sum, seed);
    check_tensor(a.grad(), {2, 3}, {1, -1, 2, 0.5, 3, -2}, dtype);
    check_tensor(row.grad(), {1, 3}, {1.5, 2, 0}, dtype);  // column sums of S

    tape.zero_grad();
    tg::Var product = a * row;
    check_tensor(product.value(), {2, 3}, {10, 40, 90, 40, 100, 180}, dtype);
    tape.backward(product, seed);
    check_tensor(a.grad(), {2, 3}, {10, -20, 60, 5, 60, -60}, dtype);  // S · row
    check_tensor(row.grad(), {1, 3}, {3, 13, -6}, dtype);             // column sums of S · A
  }
}

TEST_CASE("broadcast column reduces over columns") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    tg::Tape tape;
    tg::Var a = tape.leaf(tensor({2, 3}, a_values, dtype));
    tg::Var column = tape.leaf(tensor({2, 1}, {10, 100}, dtype));
    tg::Var difference = a - column;
    check_tensor(difference.value(), {2, 3}, {-9, -8, -7, -96, -95, -94}, dtype);
    tape.backward(difference, tensor({2, 3}, seed_values, dtype));
    check_tensor(a.grad(), {2, 3}, {1, -1, 2, 0.5, 3, -2}, dtype);
    check_tensor(column.grad(), {2, 1}, {-2, -1.5}, dtype);  // minus the row sums of S
  }
}

TEST_CASE("broadcast column against row") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    tg::Tape tape;
    tg::Var column = tape.leaf(tensor({2, 1}, {1, 2}, dtype));
    tg::Var row = tape.leaf(tensor({1, 3}, {10, 20, 30}, dtype));
    tg::Var quotient = column / row;
    check_tensor(quotient.value(), {2, 3}, {0.1, 0.05, 1.0 / 30.0, 0.2, 0.1, 1.0 / 15.0}, dtype);
    tape.backward(quotient, tg::Tensor::ones({2, 3}, dtype));
    // column̄ᵢ = Σⱼ 1 / rowⱼ = 1/10 + 1/20 + 1/30 = 11/60 for both rows.
    check_tensor(column.grad(), {2, 1}, {11.0 / 60.0, 11.0 / 60.0}, dtype);
    // row̄ⱼ = −Σᵢ columnᵢ / rowⱼ² = −3 / rowⱼ².
    check_tensor(row.grad(), {1, 3}, {-0.03, -0.0075, -1.0 / 300.0}, dtype);
  }
}

TEST_CASE("scalar-shaped operand and rank extension") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    tg::Tape tape;
    tg::Var scalar = tape.leaf(tensor({}, {2}, dtype));
    tg::Var a = tape.leaf(tensor({2, 3}, a_values, dtype));
    tg::Var product = scalar * a;
    check_tensor(product.value(), {2, 3}, {2, 4, 6, 8, 10, 12}, dtype);
    tape.backward(product, tensor({2, 3}, seed_values, dtype));
    check_tensor(scalar.grad(), {}, {10}, dtype);  // Σ S · A = 1 − 2 + 6 + 2 + 15 − 12
    check_tensor(a.grad(), {2, 3}, {2, -2, 4, 1, 6, -4}, dtype);

    tg::Var cube = tape.leaf(tensor({2, 2, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}, dtype));
    tg::Var vector = tape.leaf(tensor({3}, {100, 200, 300}, dtype));
    tg::Var extended = cube * vector;
    check_tensor(extended.value(), {2, 2, 3},
                 {100, 400, 900, 400, 1000, 1800, 700, 1600, 2700, 1000, 2200, 3600}, dtype);
    tape.zero_grad();
    tape.backward(extended, tg::Tensor::ones({2, 2, 3}, dtype));
    check_tensor(vector.grad(), {3}, {22, 26, 30}, dtype);  // 1+4+7+10, 2+5+8+11, 3+6+9+12
    check_tensor(cube.grad(), {2, 2, 3}, {100, 200, 300, 100, 200, 300, 100, 200, 300, 100, 200, 300}, dtype);
  }
}

TEST_CASE("size-0 axes broadcast") {
  tg::Tape tape;
  tg::Var empty_rows = tape.leaf(tg::Tensor::zeros({0, 3}));
  tg::Var row = tape.leaf(tensor({1, 3}, {1, 2, 3}));
  tg::Var sum = empty_rows + row;
  CHECK(sum.shape() == tg::Shape{0, 3});
  tape.backward(sum, tg::Tensor::zeros({0, 3}));
  CHECK(empty_rows.grad().shape() == tg::Shape{0, 3});
  check_tensor(row.grad(), {1, 3}, {0, 0, 0}, tg::Dtype::f64);

  tg::Var empty_columns = tape.leaf(tg::Tensor::zeros({2, 0}));
  tg::Var column = tape.leaf(tensor({2, 1}, {4, 5}));
  tg::Var product = empty_columns * column;
  CHECK(product.shape() == tg::Shape{2, 0});
  tape.zero_grad();
  tape.backward(product, tg::Tensor::zeros({2, 0}));
  check_tensor(column.grad(), {2, 1}, {0, 0}, tg::Dtype::f64);
}

TEST_CASE("one Var feeding both operands accumulates") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    const tg::Tensor ones = tg::Tensor::ones({3}, dtype);
    tg::Tape tape;
    tg::Var x = tape.leaf(tensor({3}, {1, -2, 0.5}, dtype));

    tape.backward(x * x, ones);
    check_tensor(x.grad(), {3}, {2, -4, 1}, dtype);  // 2x

    tape.zero_grad();
    tape.backward(x + x, ones);
    check_tensor(x.grad(), {3}, {2, 2, 2}, dtype);

    tape.zero_grad();
    tg::Var difference = x - x;
    check_tensor(difference.value(), {3}, {0, 0, 0}, dtype);
    tape.backward(difference, ones);
    check_tensor(x.grad(), {3}, {0, 0, 0}, dtype);

    tape.zero_grad();
    tg::Var ratio = x / x;
    check_tensor(ratio.value(), {3}, {1, 1, 1}, dtype);
    tape.backward(ratio, ones);
    check_tensor(x.grad(), {3}, {0, 0, 0}, dtype);  // 1/x − x/x² = 0
  }
}

TEST_CASE("scalar forms on both sides") {
  for (tg::Dtype dtype : floating_dtypes) {
    INFO("dtype ", tg::dtype_name(dtype));
    const tg::Tensor seed = tensor({3}, {1, 2, 3}, dtype);
    tg::Tape tape;
    tg::Var x = tape.leaf(tensor({3}, {1, -2, 4}, dtype));

    struct Expected {
      const char* label;
      tg::Var y;
      std::vector<double> value;
      std::vector<double> grad;
    };
    const Expected cases[] = {
        {"x + 2", x + 2.0, {3, 0, 6}, {1, 2, 3}},
        {"2 + x", 2.0 + x, {3, 0, 6}, {1, 2, 3}},
        {"x - 2", x - 2.0, {-1, -4, 2}, {1, 2, 3}},
        {"2 - x", 2.0 - x, {1, 4, -2}, {-1, -2, -3}},
        {"x * 2", x * 2.0, {2, -4, 8}, {2, 4, 6}},
        {"2 * x", 2.0 * x, {2, -4, 8}, {2, 4, 6}},
        {"x / 2", x / 2.0, {0.5, -1, 2}, {0.5, 1, 1.5}},
        {"2 / x", 2.0 / x, {2, -1, 0.5}, {-2, -1, -0.375}},  // −seed · 2 / x²
        {"add(x, 2)", tg::add(x, 2.0), {3, 0, 6}, {1, 2, 3}},
        {"div(2, x)", tg::div(2.0, x), {2, -1, 0.5}, {-2, -1, -0.375}},
    };
    for (const Expected& expected : cases) {
      INFO(expected.label);
      check_tensor(expected.y.value(), {3}, expected.value, dtype);
      tape.zero_grad();
      tape.backward(expected.y, seed);
      check_tensor(x.grad(), {3}, expected.grad, dtype);
    }
  }
}

TEST_CASE("scalar forms record one input and the scalar") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tensor({3}, {1, -2, 4}));
  const tg::Var left = 2.5 - x;
  const tg::Var right = x / -0.5;
  const tg::Node& left_node = tape.node(left.index());
  const tg::Node& right_node = tape.node(right.index());
  CHECK(left_node.op == "sub");
  CHECK(left_node.inputs.size() == 1);
  CHECK(left_node.attributes.scalar == 2.5);
  CHECK(left_node.attributes.integer == 1);
  CHECK(right_node.op == "div");
  CHECK(right_node.inputs.size() == 1);
  CHECK(right_node.attributes.scalar == -0.5);
  CHECK(right_node.attributes.integer == 0);
}

TEST_CASE("zero cotangent gives zero gradient at poles") {
  tg::Tape tape;
  // mul by inf: ā = ȳ · b would be 0 · inf = NaN at the first element without the rule.
  tg::Var a = tape.leaf(tensor({2}, {1, 2}));
  tg::Var b = tape.leaf(tensor({2}, {inf, 3}));
  tape.backward(a * b, tensor({2}, {0, 1}));
  CHECK(a.grad().flat(0) == 0.0);
  CHECK(a.grad().flat(1) == 3.0);
  CHECK(b.grad().flat(0) == 0.0);
  CHECK(b.grad().flat(1) == 2.0);

  // div by 0: ā = ȳ / 0 and b̄ = −ȳ · y / 0 with ȳ = 0 at the first element.
  tape.zero_grad();
  tg::Var divisor = tape.leaf(tensor({2}, {0, 4}));
  tape.backward(a / divisor, tensor({2}, {0, 1}));
  CHECK(a.grad().flat(0) == 0.0);
  CHECK(a.grad().flat(1) == 0.25);
  CHECK(divisor.grad().flat(0) == 0.0);
  CHECK(divisor.grad().flat(1) == -0.125);  // −1 · (2 / 4) / 4

  // Scalar forms: x · inf, x / 0 and 1 / x at x = 0.
  tg::Var x = tape.leaf(tensor({2}, {0, 1}, tg::Dtype::f32));
  const tg::Tensor zero_seed = tg::Tensor::zeros({2}, tg::Dtype::f32);
  for (const tg::Var& y : {x * inf, x / 0.0, 1.0 / x}) {
    INFO("op ", y.op());
    tape.zero_grad();
    tape.backward(y, zero_seed);
    CHECK(x.grad().flat(0) == 0.0);
    CHECK(x.grad().flat(1) == 0.0);
  }
}

TEST_CASE("non-zero cotangent at a pole follows IEEE") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tensor({2}, {1, 2}));
  tg::Var b = tape.leaf(tensor({2}, {0, 4}));
  tg::Var quotient = a / b;
  CHECK(quotient.value().flat(0) == inf);
  tape.backward(quotient, tensor({2}, {1, 1}));
  CHECK(a.grad().flat(0) == inf);
  CHECK(b.grad().flat(0) == -inf);  // −a / b² = −1 / 0
}

TEST_CASE("shapes that do not broadcast raise ShapeError") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::ones({2, 3}));
  tg::Var b = tape.leaf(tg::Tensor::ones({4}));
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_AS(a + b, tg::ShapeError);
  CHECK_THROWS_WITH(a + b, doctest::Contains("add: shapes must broadcast"));
  CHECK_THROWS_WITH(a - b, doctest::Contains("but got [2, 3] and [4]"));
  CHECK_THROWS_WITH(a * b, doctest::Contains("mul:"));
  CHECK_THROWS_WITH(b / a, doctest::Contains("div: shapes must broadcast (aligned from the right, each pair of "
                                             "extents equal or one of them 1), but got [4] and [2, 3]"));
  CHECK(tape.size() == size_before);
}

TEST_CASE("mixed dtypes raise DtypeError naming both") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::ones({2, 3}, tg::Dtype::f32));
  tg::Var b = tape.leaf(tg::Tensor::ones({3}, tg::Dtype::f64));
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_AS(a * b, tg::DtypeError);
  CHECK_THROWS_WITH(a + b, doctest::Contains("add: both operands must have the same dtype"));
  CHECK_THROWS_WITH(a - b, doctest::Contains("but got f32 [2, 3] and f64 [3]"));
  CHECK_THROWS_WITH(b / a, doctest::Contains("but got f64 [3] and f32 [2, 3]"));
  CHECK_THROWS_WITH(b / a, doctest::Contains("Tensor::to"));
  CHECK(tape.size() == size_before);
}

TEST_CASE("boolean inputs raise DtypeError") {
  tg::Tape tape;
  tg::Var mask = tape.constant(tensor({3}, {1, 0, 1}, tg::Dtype::boolean));
  tg::Var x = tape.leaf(tg::Tensor::ones({3}));
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_AS(mask + x, tg::DtypeError);
  CHECK_THROWS_WITH(x * mask, doctest::Contains("mul: the argument must be f32 or f64, but got b of dtype boolean and shape [3]"));
  CHECK_THROWS_AS(mask * 2.0, tg::DtypeError);
  CHECK_THROWS_WITH(1.0 / mask, doctest::Contains("div: the argument must be f32 or f64"));
  CHECK_THROWS_AS(-mask, tg::DtypeError);
  CHECK(tape.size() == size_before);
}

TEST_CASE("arithmetic gradcheck cases pass") {
  tg::GradcheckRegistry registry;
  tg::register_arithmetic_cases(registry);
  for (const char* op : {"add", "sub", "mul", "div", "neg"}) {
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
  const auto div_cases = registry.cases_of("div");
  for (const char* name : {"one_row", "one_column", "broadcast_row", "broadcast_column", "broadcast_both",
                           "scalar_operand", "rank_extension", "scalar_left", "scalar_right"}) {
    INFO("case ", name);
    const auto found = std::find_if(div_cases.begin(), div_cases.end(),
                                    [&](const tg::GradcheckCase* candidate) { return candidate->name == name; });
    CHECK(found != div_cases.end());
  }
}

TEST_CASE("gradcheck catches a planted sign error in b̄") {
  // The div VJP with the sign of b̄ flipped: gradcheck must report input 1.
  auto wrong_div = [](std::span<const tg::Var> inputs) {
    const tg::Var& a = inputs[0];
    const tg::Var& b = inputs[1];
    tg::Tensor y = (a / b).value().clone();
    return a.tape().record("wrong_div", y, {a, b}, [](tg::VjpContext& context) {
      const tg::Tensor& a = context.input(0);
      const tg::Tensor& b = context.input(1);
      tg::Tensor a_grad = tg::Tensor::empty(a.shape());
      tg::Tensor b_grad = tg::Tensor::empty(b.shape());
      for (std::int64_t i = 0; i < a.numel(); ++i) {
        const double g = context.cotangent().data<double>()[i];
        a_grad.data<double>()[i] = g / b.data<double>()[i];
        b_grad.data<double>()[i] = g * a.data<double>()[i] / (b.data<double>()[i] * b.data<double>()[i]);
      }
      context.accumulate(0, std::move(a_grad));
      context.accumulate(1, std::move(b_grad));
    });
  };
  const tg::GradcheckCase planted{.op = "wrong_div",
                                  .name = "same_shape",
                                  .inputs = {{.shape = {2, 3}}, {.shape = {2, 3}, .low = 0.5, .high = 2}},
                                  .function = wrong_div};
  const tg::GradcheckResult result = tg::gradcheck(planted);
  CHECK_FALSE(result.passed());
  REQUIRE(result.inputs.size() == 2);
  CHECK(result.inputs[0].verdict == tg::GradcheckVerdict::passed);
  CHECK(result.inputs[1].verdict == tg::GradcheckVerdict::wrong_gradient);
}
