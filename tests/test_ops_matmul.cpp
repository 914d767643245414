// matmul: values through BLAS for every flag combination, gradients against closed forms,
// size-0 extents, argument errors, and the registered gradcheck cases.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

// A = [[1, 2, 3], [4, 5, 6]] ([2, 3]) and B = [[7, 8, 9, 10], [11, 12, 13, 14], [15, 16, 17, 18]]
// ([3, 4]). The expected values below were computed by hand and confirmed with a plain triple
// loop in python3 (float64): C = A·B, and for the cotangent G, Ā = G·Bᵀ and B̄ = Aᵀ·G.
const std::vector<double> a_values = {1, 2, 3, 4, 5, 6};
const std::vector<double> b_values = {7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18};
const std::vector<double> c_expected = {74, 80, 86, 92, 173, 188, 203, 218};
const std::vector<double> g_values = {1, 0, -1, 2, 0.5, 1, 0, -2};
const std::vector<double> a_grad_expected = {18, 26, 34, -8.5, -10.5, -12.5};
const std::vector<double> b_grad_expected = {3, 4, -1, -6, 4.5, 5, -2, -6, 6, 6, -3, -6};

// Row-major values of the transpose of a [rows, cols] matrix.
std::vector<double> transposed(const std::vector<double>& values, std::int64_t rows, std::int64_t cols) {
  std::vector<double> result(values.size());
  for (std::int64_t i = 0; i < rows; ++i) {
    for (std::int64_t j = 0; j < cols; ++j) {
      result[static_cast<std::size_t>(j * rows + i)] = values[static_cast<std::size_t>(i * cols + j)];
    }
  }
  return result;
}

void check_values(const tg::Tensor& actual, const tg::Shape& shape, const std::vector<double>& expected) {
  REQUIRE(actual.shape() == shape);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(actual.flat(static_cast<std::int64_t>(i)) == expected[i]);
  }
}

std::string message_of(const std::exception& error) { return error.what(); }

}  // namespace

TEST_CASE("matmul values for every flag combination") {
  for (tg::Dtype dtype : {tg::Dtype::f64, tg::Dtype::f32}) {
    for (bool transpose_a : {false, true}) {
      for (bool transpose_b : {false, true}) {
        CAPTURE(tg::dtype_name(dtype));
        CAPTURE(transpose_a);
        CAPTURE(transpose_b);
        // A transposed operand is stored transposed, so op(A)·op(B) is the same product each time.
        const tg::Tensor a0 = transpose_a ? tg::Tensor::from_values({3, 2}, transposed(a_values, 2, 3), dtype)
                                          : tg::Tensor::from_values({2, 3}, a_values, dtype);
        const tg::Tensor b0 = transpose_b ? tg::Tensor::from_values({4, 3}, transposed(b_values, 3, 4), dtype)
                                          : tg::Tensor::from_values({3, 4}, b_values, dtype);
        tg::Tape tape;
        tg::Var a = tape.leaf(a0);
        tg::Var b = tape.leaf(b0);
        tg::Var c = tg::matmul(a, b, {.transpose_a = transpose_a, .transpose_b = transpose_b});
        CHECK(c.dtype() == dtype);
        CHECK(c.op() == "matmul");
        check_values(c.value(), {2, 4}, c_expected);

        tape.backward(c, tg::Tensor::from_values({2, 4}, g_values, dtype));
        // The gradient of a stored transpose is the transpose of the gradient of op(A).
        if (transpose_a) {
          check_values(a.grad(), {3, 2}, transposed(a_grad_expected, 2, 3));
        } else {
          check_values(a.grad(), {2, 3}, a_grad_expected);
        }
        if (transpose_b) {
          check_values(b.grad(), {4, 3}, transposed(b_grad_expected, 3, 4));
        } else {
          check_values(b.grad(), {3, 4}, b_grad_expected);
        }
      }
    }
  }
}

TEST_CASE("matmul one row, one column and K = 1") {
  tg::Tape tape;
  // [1, 3]·[3, 1]: 1·7 + 2·11 + 3·15 = 74.
  tg::Var row = tape.leaf(tg::Tensor::from_values({1, 3}, {1, 2, 3}));
  tg::Var column = tape.leaf(tg::Tensor::from_values({3, 1}, {7, 11, 15}));
  tg::Var dot = tg::matmul(row, column);
  check_values(dot.value(), {1, 1}, {74});
  tape.backward(dot);
  check_values(row.grad(), {1, 3}, {7, 11, 15});
  check_values(column.grad(), {3, 1}, {1, 2, 3});

  // K = 1, an outer product: [3, 1]·[1, 2].
  tg::Var u = tape.leaf(tg::Tensor::from_values({3, 1}, {1, 2, 3}, tg::Dtype::f32));
  tg::Var v = tape.leaf(tg::Tensor::from_values({1, 2}, {4, 5}, tg::Dtype::f32));
  tg::Var outer = tg::matmul(u, v);
  check_values(outer.value(), {3, 2}, {4, 5, 8, 10, 12, 15});
  // With seed G = [[1, 0], [0, 1], [1, 1]]: ū = G·vᵀ = [4, 5, 9] and v̄ = uᵀ·G = [4, 5].
  tape.backward(outer, tg::Tensor::from_values({3, 2}, {1, 0, 0, 1, 1, 1}, tg::Dtype::f32));
  check_values(u.grad(), {3, 1}, {4, 5, 9});
  check_values(v.grad(), {1, 2}, {4, 5});

  // A column times a row with both flags: op(A) = [1, 3] from A [3, 1], op(B) = [3, 1] from B [1, 3].
  tg::Var a = tape.leaf(tg::Tensor::from_values({3, 1}, {1, 2, 3}));
  tg::Var b = tape.leaf(tg::Tensor::from_values({1, 3}, {7, 11, 15}));
  check_values(tg::matmul(a, b, {.transpose_a = true, .transpose_b = true}).value(), {1, 1}, {74});
}

TEST_CASE("matmul of one leaf with itself") {
  // z = [[1, 2], [3, 4], [5, 6]]. With seed H, C = z·zᵀ has z̄ = (H + Hᵀ)·z, because both input
  // gradients, H·z and Hᵀ·z, add into the one leaf. Values from python3 (float64).
  tg::Tape tape;
  tg::Var z = tape.leaf(tg::Tensor::from_values({3, 2}, {1, 2, 3, 4, 5, 6}));
  tg::Var gram = tg::matmul(z, z, {.transpose_b = true});
  check_values(gram.value(), {3, 3}, {5, 11, 17, 11, 25, 39, 17, 39, 61});
  tape.backward(gram, tg::Tensor::from_values({3, 3}, {1, -1, 0.5, 2, 0, -3, 0.25, 1, 1}));
  check_values(z.grad(), {3, 2}, {8.75, 12.5, -9, -10, 4.75, 5.5});

  // zᵀ·z is [2, 2], with z̄ = z·(H + Hᵀ) for the seed H = [[1, 2], [0, 1]]:
  // H + Hᵀ = [[2, 2], [2, 2]], so each row of z̄ is 2·(z₀ + z₁) in both columns.
  tg::Var inner = tg::matmul(z, z, {.transpose_a = true});
  check_values(inner.value(), {2, 2}, {35, 44, 44, 56});
  tape.zero_grad();
  tape.backward(inner, tg::Tensor::from_values({2, 2}, {1, 2, 0, 1}));
  check_values(z.grad(), {3, 2}, {6, 6, 14, 14, 22, 22});
}

TEST_CASE("matmul with a constant operand") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::from_values({2, 3}, a_values));
  tg::Var b = tape.constant(tg::Tensor::from_values({3, 4}, b_values));
  tg::Var c = tg::matmul(a, b);
  CHECK(c.requires_grad());
  tape.backward(c, tg::Tensor::from_values({2, 4}, g_values));
  check_values(a.grad(), {2, 3}, a_grad_expected);

  tg::Var both_constant = tg::matmul(tape.constant(tg::Tensor::from_values({2, 3}, a_values)), b);
  CHECK_FALSE(both_constant.requires_grad());
  check_values(both_constant.value(), {2, 4}, c_expected);
}

TEST_CASE("matmul with size-0 extents") {
  // Each step runs after a step that filled buffers of the same sizes with non-zero values, so
  // the pool hands back dirty storage, and zeros must be written, not assumed.
  tg::Tape tape;
  for (int step = 0; step < 2; ++step) {
    tape.clear();
    tg::Var a = tape.leaf(tg::Tensor::full({2, 3}, 1.5));
    tg::Var b = tape.leaf(tg::Tensor::full({3, 4}, 2.0));
    tape.backward(tg::matmul(a, b), tg::Tensor::full({2, 4}, 1.0));
  }

  SUBCASE("K = 0 gives zeros") {
    tape.clear();
    tg::Var a = tape.leaf(tg::Tensor::zeros({2, 0}));
    tg::Var b = tape.leaf(tg::Tensor::zeros({0, 4}));
    tg::Var c = tg::matmul(a, b);
    check_values(c.value(), {2, 4}, std::vector<double>(8, 0.0));
    tape.backward(c, tg::Tensor::full({2, 4}, 1.0));
    CHECK(a.grad().shape() == tg::Shape{2, 0});
    CHECK(b.grad().shape() == tg::Shape{0, 4});
  }
  SUBCASE("K = 0 with both flags") {
    tape.clear();
    tg::Var a = tape.leaf(tg::Tensor::zeros({0, 2}, tg::Dtype::f32));
    tg::Var b = tape.leaf(tg::Tensor::zeros({4, 0}, tg::Dtype::f32));
    tg::Var c = tg::matmul(a, b, {.transpose_a = true, .transpose_b = true});
    check_values(c.value(), {2, 4}, std::vector<double>(8, 0.0));
  }
  SUBCASE("M = 0 gives an empty product and a zero gradient for b") {
    tape.clear();
    tg::Var a = tape.leaf(tg::Tensor::zeros({0, 3}));
    tg::Var b = tape.leaf(tg::Tensor::full({3, 4}, 2.0));
    tg::Var c = tg::matmul(a, b);
    CHECK(c.shape() == tg::Shape{0, 4});
    tape.backward(c, tg::Tensor::zeros({0, 4}));
    check_values(b.grad(), {3, 4}, std::vector<double>(12, 0.0));
  }
  SUBCASE("N = 0 with transpose_b gives a zero gradient for a") {
    tape.clear();
    tg::Var a = tape.leaf(tg::Tensor::full({2, 3}, 2.0));
    tg::Var b = tape.leaf(tg::Tensor::zeros({0, 3}));
    tg::Var c = tg::matmul(a, b, {.transpose_b = true});
    CHECK(c.shape() == tg::Shape{2, 0});
    tape.backward(c, tg::Tensor::zeros({2, 0}));
    check_values(a.grad(), {2, 3}, std::vector<double>(6, 0.0));
  }
}

TEST_CASE("matmul rejects operands that are not 2-D") {
  tg::Tape tape;
  tg::Var cube = tape.leaf(tg::Tensor::zeros({2, 3, 4}));
  tg::Var matrix = tape.leaf(tg::Tensor::zeros({4, 2}));
  tg::Var vector = tape.leaf(tg::Tensor::zeros({3}));
  const std::int64_t size = tape.size();

  try {
    tg::matmul(cube, matrix);
    FAIL("matmul accepted a 3-D operand");
  } catch (const tg::ShapeError& error) {
    const std::string message = message_of(error);
    CHECK(error.op() == "matmul");
    CHECK(message == "matmul: both operands must be 2-D matrices, but got a [2, 3, 4] (rank 3) and b [4, 2] (rank 2)");
  }
  CHECK_THROWS_AS(tg::matmul(matrix, vector), tg::ShapeError);
  CHECK(tape.size() == size);
}

TEST_CASE("matmul rejects inner dimensions that differ") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::zeros({4, 3}));
  tg::Var b = tape.leaf(tg::Tensor::zeros({5, 2}));
  const std::int64_t size = tape.size();

  try {
    tg::matmul(a, b);
    FAIL("matmul accepted [4, 3]·[5, 2]");
  } catch (const tg::ShapeError& error) {
    CHECK(message_of(error) ==
          "matmul: the inner dimensions must match (a.shape[1] == b.shape[0]), but got a [4, 3] and b [5, 2]");
  }
  try {
    tg::matmul(a, b, {.transpose_b = true});
    FAIL("matmul accepted [4, 3]·[5, 2]ᵀ");
  } catch (const tg::ShapeError& error) {
    CHECK(message_of(error) == "matmul: the inner dimensions must match (a.shape[1] == b.shape[1]), but got a [4, 3] "
                               "and b [5, 2] with transpose_b");
  }
  try {
    tg::matmul(a, b, {.transpose_a = true, .transpose_b = true});
    FAIL("matmul accepted [4, 3]ᵀ·[5, 2]ᵀ");
  } catch (const tg::ShapeError& error) {
    CHECK(message_of(error) == "matmul: the inner dimensions must match (a.shape[0] == b.shape[1]), but got a [4, 3] "
                               "and b [5, 2] with transpose_a and transpose_b");
  }
  CHECK_THROWS_WITH_AS(tg::matmul(a, b, {.transpose_a = true}),
                       "matmul: the inner dimensions must match (a.shape[0] == b.shape[0]), but got a [4, 3] and "
                       "b [5, 2] with transpose_a",
                       tg::ShapeError);
  CHECK(tape.size() == size);
}

TEST_CASE("matmul rejects mixed and boolean dtypes") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::zeros({2, 3}, tg::Dtype::f32));
  tg::Var b = tape.leaf(tg::Tensor::zeros({3, 2}, tg::Dtype::f64));
  tg::Var mask = tape.constant(tg::Tensor::ones({3, 2}, tg::Dtype::boolean));
  const std::int64_t size = tape.size();

  try {
    tg::matmul(a, b);
    FAIL("matmul accepted f32 and f64");
  } catch (const tg::DtypeError& error) {
    const std::string message = message_of(error);
    CHECK(message.starts_with("matmul: "));
    CHECK(message.find("f32 [2, 3]") != std::string::npos);
    CHECK(message.find("f64 [3, 2]") != std::string::npos);
  }
  try {
    tg::matmul(b, mask, {.transpose_b = true});
    FAIL("matmul accepted a boolean operand");
  } catch (const tg::DtypeError& error) {
    const std::string message = message_of(error);
    CHECK(message.starts_with("matmul: "));
    CHECK(message.find("b of dtype boolean and shape [3, 2]") != std::string::npos);
  }
  CHECK(tape.size() == size);
}

TEST_CASE("matmul rejects extents beyond BLAS integers") {
  // a is [2³¹, 0] and b is [0, 1]: both are empty, but C would have M = 2³¹ rows, one more than
  // a 32-bit BLAS integer can address, so the check must come before C is allocated.
  tg::Tape tape;
  const std::int64_t rows = std::int64_t{1} << 31;
  tg::Var a = tape.leaf(tg::Tensor::zeros({rows, 0}));
  tg::Var b = tape.leaf(tg::Tensor::zeros({0, 1}));
  CHECK_THROWS_WITH_AS(tg::matmul(a, b),
                       "matmul: each extent must fit the BLAS integer type (at most 2147483647), but got a "
                       "[2147483648, 0] and b [0, 1]",
                       tg::ValueError);
  CHECK(tape.size() == 2);
}

TEST_CASE("matmul rejects Vars of two tapes") {
  tg::Tape first;
  tg::Tape second;
  tg::Var a = first.leaf(tg::Tensor::zeros({2, 2}));
  tg::Var b = second.leaf(tg::Tensor::zeros({2, 2}));
  CHECK_THROWS_AS(tg::matmul(a, b), tg::TapeError);
  CHECK(first.size() == 1);
  CHECK(second.size() == 1);
}

TEST_CASE("matmul gradcheck cases pass") {
  tg::GradcheckRegistry registry;
  tg::register_matmul_cases(registry);
  const auto cases = registry.cases_of("matmul");
  REQUIRE(cases.size() >= 9);
  for (const tg::GradcheckCase* gradcheck_case : cases) {
    CAPTURE(gradcheck_case->name);
    const tg::GradcheckResult result = tg::gradcheck(*gradcheck_case);
    CAPTURE(result.max_abs_error());
    CHECK(result.passed());
  }
}

TEST_CASE("gradcheck catches a matmul VJP with a wrong flag") {
  // A planted bug: for C = A·Bᵀ this VJP computes Ā = C̄·Bᵀ (the formula of the plain product)
  // where C̄·B is right. With square B the shapes still fit, so only the values can expose it.
  auto wrong_vjp = [](tg::VjpContext& context) {
    const tg::Tensor& b = context.input(1);
    const tg::Tensor& g = context.cotangent();
    const std::int64_t m = g.shape()[0];
    const std::int64_t n = g.shape()[1];
    const std::int64_t k = b.shape()[1];
    tg::Tensor a_grad = tg::Tensor::zeros({m, k});
    for (std::int64_t i = 0; i < m; ++i) {
      for (std::int64_t j = 0; j < k; ++j) {
        for (std::int64_t t = 0; t < n; ++t) {
          a_grad.data<double>()[i * k + j] += g.data<double>()[i * n + t] * b.data<double>()[j * k + t];
        }
      }
    }
    context.accumulate(0, std::move(a_grad));
  };
  tg::GradcheckCase planted{
      .op = "matmul_planted_bug",
      .name = "transpose_b_square",
      .inputs = {{.shape = {2, 3}}, {.shape = {3, 3}, .differentiable = false}},
      .function = [wrong_vjp](std::span<const tg::Var> inputs) {
        tg::Tensor c = tg::matmul(inputs[0], inputs[1], {.transpose_b = true}).value();
        return inputs[0].tape().record("matmul_planted_bug", c, {inputs[0], inputs[1]}, +wrong_vjp);
      }};
  CHECK_FALSE(tg::gradcheck(planted).passed());
}
