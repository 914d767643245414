// Shape ops: transpose, reshape, concat, select_rows and select_per_row. Values, gradients,
// index handling, argument errors, and the registered gradcheck cases.
#include <doctest/doctest.h>

#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

// 0, 1, 2, … in row-major order.
tg::Tensor iota(const tg::Shape& shape, tg::Dtype dtype = tg::Dtype::f64) {
  std::vector<double> values(static_cast<std::size_t>(shape.numel()));
  for (std::size_t i = 0; i < values.size(); ++i) {
    values[i] = static_cast<double>(i);
  }
  return tg::Tensor::from_values(shape, values, dtype);
}

void check_values(const tg::Tensor& actual, const tg::Shape& shape, const std::vector<double>& expected) {
  REQUIRE(actual.shape() == shape);
  for (std::size_t i = 0; i < expected.size(); ++i) {
    CAPTURE(i);
    CHECK(actual.flat(static_cast<std::int64_t>(i)) == expected[i]);
  }
}

// Runs every registered gradcheck case of op and checks that there are at least min_cases.
void check_gradcheck_cases(const std::string& op, std::size_t min_cases) {
  tg::GradcheckRegistry registry;
  tg::register_shape_op_cases(registry);
  const auto cases = registry.cases_of(op);
  REQUIRE(cases.size() >= min_cases);
  for (const tg::GradcheckCase* gradcheck_case : cases) {
    CAPTURE(gradcheck_case->name);
    const tg::GradcheckResult result = tg::gradcheck(*gradcheck_case);
    CAPTURE(result.max_abs_error());
    CHECK(result.passed());
  }
}

}  // namespace

// ---- transpose -------------------------------------------------------------------------------

TEST_CASE("transpose of a matrix") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({2, 3}));
  tg::Var y = tg::transpose(x);
  check_values(y.value(), {3, 2}, {0, 3, 1, 4, 2, 5});
  tape.backward(y, tg::Tensor::from_values({3, 2}, {1, 2, 3, 4, 5, 6}));
  check_values(x.grad(), {2, 3}, {1, 3, 5, 2, 4, 6});
}

TEST_CASE("transpose of a matrix larger than one tile") {
  // 37 × 70 crosses the 32-element tiles of the kernel on both axes, with ragged last tiles.
  tg::Tape tape;
  std::vector<double> values;
  for (int i = 0; i < 37; ++i) {
    for (int j = 0; j < 70; ++j) {
      values.push_back(i * 1000 + j);
    }
  }
  tg::Var x = tape.leaf(tg::Tensor::from_values({37, 70}, values, tg::Dtype::f32));
  tg::Var y = tg::transpose(x);
  REQUIRE(y.shape() == tg::Shape{70, 37});
  CHECK(y.dtype() == tg::Dtype::f32);
  for (std::int64_t i = 0; i < 37; ++i) {
    for (std::int64_t j = 0; j < 70; ++j) {
      CAPTURE(i);
      CAPTURE(j);
      CHECK(y.value().at({j, i}) == static_cast<double>(i * 1000 + j));
    }
  }
}

TEST_CASE("transpose of two axes of a rank-3 and a rank-4 tensor") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({2, 3, 4}));
  // x[i, j, k] = 12·i + 4·j + k, and swapping axes 0 and 2 gives y[k, j, i] = x[i, j, k].
  for (const auto& axes : {std::pair<std::int64_t, std::int64_t>{0, 2}, {2, 0}, {-1, -3}, {0, -1}}) {
    const std::int64_t axis0 = axes.first;
    const std::int64_t axis1 = axes.second;
    CAPTURE(axis0);
    CAPTURE(axis1);
    tg::Var y = tg::transpose(x, axis0, axis1);
    REQUIRE(y.shape() == tg::Shape{4, 3, 2});
    for (std::int64_t i = 0; i < 2; ++i) {
      for (std::int64_t j = 0; j < 3; ++j) {
        for (std::int64_t k = 0; k < 4; ++k) {
          CHECK(y.value().at({k, j, i}) == static_cast<double>(12 * i + 4 * j + k));
        }
      }
    }
  }
  // Adjacent axes with a contiguous inner run: y[i, k, j] = x[i, j, k].
  tg::Var swapped_last = tg::transpose(x, 1, 2);
  REQUIRE(swapped_last.shape() == tg::Shape{2, 4, 3});
  CHECK(swapped_last.value().at({1, 3, 2}) == 12.0 + 8.0 + 3.0);

  // Rank 4, axes 1 and 3 with axis 2 between them: y[a, d, c, b] = x[a, b, c, d].
  tg::Var w = tape.leaf(iota({2, 3, 4, 5}));
  tg::Var z = tg::transpose(w, 1, 3);
  REQUIRE(z.shape() == tg::Shape{2, 5, 4, 3});
  for (std::int64_t a = 0; a < 2; ++a) {
    for (std::int64_t b = 0; b < 3; ++b) {
      for (std::int64_t c = 0; c < 4; ++c) {
        for (std::int64_t d = 0; d < 5; ++d) {
          CHECK(z.value().at({a, d, c, b}) == static_cast<double>(60 * a + 20 * b + 5 * c + d));
        }
      }
    }
  }

  // The gradient of a swap is the cotangent swapped back: a seed of iota over y's shape [2, 5, 4, 3]
  // gives w̄[a, b, c, d] = seed[a, d, c, b] = 60·a + 12·d + 3·c + b.
  tape.backward(z, iota({2, 5, 4, 3}));
  CHECK(w.grad().at({1, 2, 3, 4}) == 60.0 + 48.0 + 9.0 + 2.0);
  CHECK(w.grad().at({0, 1, 0, 2}) == 24.0 + 1.0);
}

TEST_CASE("transpose of an axis with itself shares storage") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({2, 3}));
  tg::Var y = tg::transpose(x, 1, -1);
  check_values(y.value(), {2, 3}, {0, 1, 2, 3, 4, 5});
  CHECK(y.value().raw_data() == x.value().raw_data());
  tape.backward(y, tg::Tensor::full({2, 3}, 2.5));
  check_values(x.grad(), {2, 3}, std::vector<double>(6, 2.5));
}

TEST_CASE("transpose rejects bad ranks and axes") {
  tg::Tape tape;
  tg::Var cube = tape.leaf(iota({2, 3, 4}));
  const std::int64_t size = tape.size();
  CHECK_THROWS_WITH_AS(tg::transpose(cube),
                       "transpose: transpose(x) needs a 2-D x (pass two axes to transpose a tensor of another rank), "
                       "but got x [2, 3, 4] (rank 3)",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::transpose(cube, 0, 3),
                       "transpose: axis1 must be in [-3, 3) for a tensor of rank 3, but got axis1 = 3 for shape [2, 3, 4]",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::transpose(cube, -4, 1),
                       "transpose: axis0 must be in [-3, 3) for a tensor of rank 3, but got axis0 = -4 for shape [2, 3, 4]",
                       tg::ShapeError);
  tg::Var mask = tape.constant(tg::Tensor::ones({2, 2}, tg::Dtype::boolean));
  CHECK_THROWS_AS(tg::transpose(mask), tg::DtypeError);
  CHECK(tape.size() == size + 1);
}

TEST_CASE("transpose gradcheck cases pass") { check_gradcheck_cases("transpose", 5); }

// ---- reshape ---------------------------------------------------------------------------------

TEST_CASE("reshape keeps row-major order and shares storage") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({2, 3}));
  tg::Var y = tg::reshape(x, {3, 2});
  check_values(y.value(), {3, 2}, {0, 1, 2, 3, 4, 5});
  CHECK(y.value().raw_data() == x.value().raw_data());
  tape.backward(y, tg::Tensor::from_values({3, 2}, {1, 2, 3, 4, 5, 6}));
  check_values(x.grad(), {2, 3}, {1, 2, 3, 4, 5, 6});
  // The backward pass copied the cotangent rather than writing through the shared storage.
  check_values(x.value(), {2, 3}, {0, 1, 2, 3, 4, 5});
}

TEST_CASE("reshape infers one extent") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({2, 3, 2}));
  CHECK(tg::reshape(x, {-1, 4}).shape() == tg::Shape{3, 4});
  CHECK(tg::reshape(x, {2, -1, 3}).shape() == tg::Shape{2, 2, 3});
  CHECK(tg::reshape(x, {-1}).shape() == tg::Shape{12});
  tg::Var empty = tape.leaf(tg::Tensor::zeros({0, 3}));
  CHECK(tg::reshape(empty, {3, -1}).shape() == tg::Shape{3, 0});
  tg::Var one = tape.leaf(tg::Tensor::from_values({1, 1}, {4.5}));
  tg::Var scalar = tg::reshape(one, tg::Shape{});
  CHECK(scalar.shape().rank() == 0);
  tape.backward(scalar);
  check_values(one.grad(), {1, 1}, {1});
}

TEST_CASE("reshape rejects shapes that do not fit") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({2, 3}));
  tg::Var empty = tape.leaf(tg::Tensor::zeros({0, 3}));
  const std::int64_t size = tape.size();
  CHECK_THROWS_WITH_AS(tg::reshape(x, {4, 2}),
                       "reshape: the new shape must have the same number of elements, but got x [2, 3] (6 elements) "
                       "to [4, 2] (8 elements)",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::reshape(x, {-1, -1}),
                       "reshape: at most one extent may be -1 (inferred), but got shape [-1, -1] with -1 at axes 0 and 1",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::reshape(x, {-2, -3}),
                       "reshape: every extent must be >= 0, or -1 to infer it, but got shape [-2, -3] with extent -2 "
                       "at axis 0",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::reshape(x, {-1, 4}),
                       "reshape: an extent of -1 needs the other extents to have a non-zero product that divides the "
                       "element count, but got x [2, 3] (6 elements) to [-1, 4]",
                       tg::ShapeError);
  // NumPy rejects this too: with a zero extent beside it, -1 could be any number.
  CHECK_THROWS_AS(tg::reshape(empty, {0, -1}), tg::ShapeError);
  CHECK(tape.size() == size);
}

TEST_CASE("reshape gradcheck cases pass") { check_gradcheck_cases("reshape", 3); }

// ---- concat ----------------------------------------------------------------------------------

TEST_CASE("concat along axis 0 with unequal extents") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::from_values({1, 2}, {1, 2}));
  tg::Var b = tape.leaf(tg::Tensor::from_values({2, 2}, {3, 4, 5, 6}));
  tg::Var c = tape.leaf(tg::Tensor::zeros({0, 2}));
  tg::Var y = tg::concat({a, b, c});
  check_values(y.value(), {3, 2}, {1, 2, 3, 4, 5, 6});
  tape.backward(y, tg::Tensor::from_values({3, 2}, {10, 20, 30, 40, 50, 60}));
  check_values(a.grad(), {1, 2}, {10, 20});
  check_values(b.grad(), {2, 2}, {30, 40, 50, 60});
  CHECK(c.grad().shape() == tg::Shape{0, 2});
}

TEST_CASE("concat along axis 1 with unequal extents") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::from_values({2, 1}, {1, 2}, tg::Dtype::f32));
  tg::Var b = tape.leaf(tg::Tensor::from_values({2, 3}, {3, 4, 5, 6, 7, 8}, tg::Dtype::f32));
  tg::Var c = tape.constant(tg::Tensor::from_values({2, 2}, {9, 10, 11, 12}, tg::Dtype::f32));
  const std::vector<tg::Var> parts = {a, b, c};
  tg::Var y = tg::concat(parts, -1);
  CHECK(y.dtype() == tg::Dtype::f32);
  check_values(y.value(), {2, 6}, {1, 3, 4, 5, 9, 10, 2, 6, 7, 8, 11, 12});
  tape.backward(y, iota({2, 6}, tg::Dtype::f32));
  check_values(a.grad(), {2, 1}, {0, 6});
  check_values(b.grad(), {2, 3}, {1, 2, 3, 7, 8, 9});
}

TEST_CASE("concat along the middle axis of a rank-3 tensor") {
  tg::Tape tape;
  tg::Var a = tape.leaf(iota({2, 1, 2}));
  tg::Var b = tape.leaf(tg::Tensor::full({2, 2, 2}, -1.0));
  tg::Var y = tg::concat({a, b}, 1);
  check_values(y.value(), {2, 3, 2}, {0, 1, -1, -1, -1, -1, 2, 3, -1, -1, -1, -1});
  tape.backward(y, iota({2, 3, 2}));
  check_values(a.grad(), {2, 1, 2}, {0, 1, 6, 7});
  check_values(b.grad(), {2, 2, 2}, {2, 3, 4, 5, 8, 9, 10, 11});
}

TEST_CASE("concat rejects inputs that do not fit") {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::zeros({2, 2}));
  tg::Var b = tape.leaf(tg::Tensor::zeros({2, 2}));
  tg::Var wide = tape.leaf(tg::Tensor::zeros({3, 3}));
  tg::Var vector = tape.leaf(tg::Tensor::zeros({2}));
  tg::Var single = tape.leaf(tg::Tensor::zeros({2, 2}, tg::Dtype::f32));
  tg::Var mask = tape.constant(tg::Tensor::ones({2, 2}, tg::Dtype::boolean));
  tg::Var scalar = tape.leaf(tg::Tensor::zeros({}));
  const std::int64_t size = tape.size();

  CHECK_THROWS_WITH_AS(tg::concat({a, b, wide}, 0),
                       "concat: every input must have the extents of xs[0] on all axes but the joined axis 0, but got "
                       "xs[2] [3, 3] and xs[0] [2, 2] (axis 1 differs)",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::concat({a, vector}),
                       "concat: every input must have the rank of xs[0], but got xs[1] [2] (rank 1) and xs[0] [2, 2] "
                       "(rank 2)",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::concat({a, single}),
                       "concat: every input must have the dtype of xs[0], but got xs[1] f32 [2, 2] and xs[0] f64 [2, 2]",
                       tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::concat({a, mask}),
                       "concat: the argument must be f32 or f64, but got xs[1] of dtype boolean and shape [2, 2]",
                       tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::concat({a, b}, 2),
                       "concat: axis must be in [-2, 2) for a tensor of rank 2, but got axis = 2 for shape [2, 2]",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::concat({scalar, scalar}),
                       "concat: inputs must have rank >= 1 to be joined along an axis, but got xs[0] of shape []",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::concat(std::span<const tg::Var>{}),
                       "concat: there must be at least one input, but got an empty list", tg::ValueError);
  tg::Tape other;
  tg::Var elsewhere = other.leaf(tg::Tensor::zeros({2, 2}));
  CHECK_THROWS_AS(tg::concat({a, elsewhere}), tg::TapeError);
  CHECK(tape.size() == size);
  CHECK(other.size() == 1);
}

TEST_CASE("concat gradcheck cases pass") { check_gradcheck_cases("concat", 3); }

// ---- select_rows -----------------------------------------------------------------------------

TEST_CASE("select_rows gathers and scatter-adds repeated rows") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({4, 3}));
  tg::Var y = tg::select_rows(x, {2, 0, 2, -1});
  check_values(y.value(), {4, 3}, {6, 7, 8, 0, 1, 2, 6, 7, 8, 9, 10, 11});
  // With seed rows g₀ … g₃ = [1, 2, 3], [4, 5, 6], [7, 8, 9], [10, 11, 12]: row 0 of x receives
  // g₁, row 1 nothing, row 2 (selected twice) g₀ + g₂, and row 3 (as -1) g₃.
  tape.backward(y, tg::Tensor::from_values({4, 3}, {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12}));
  check_values(x.grad(), {4, 3}, {4, 5, 6, 0, 0, 0, 8, 10, 12, 10, 11, 12});
}

TEST_CASE("select_rows of a vector and of no rows") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({3}, {5, 6, 7}, tg::Dtype::f32));
  tg::Var y = tg::select_rows(x, {-3, 2, 2});
  CHECK(y.dtype() == tg::Dtype::f32);
  check_values(y.value(), {3}, {5, 7, 7});
  tape.backward(y, tg::Tensor::from_values({3}, {1, 1, 1}, tg::Dtype::f32));
  check_values(x.grad(), {3}, {1, 0, 2});

  tg::Var matrix = tape.leaf(iota({2, 3}));
  tg::Var none = tg::select_rows(matrix, std::span<const std::int64_t>{});
  CHECK(none.shape() == tg::Shape{0, 3});
  tape.backward(none, tg::Tensor::zeros({0, 3}));
  check_values(matrix.grad(), {2, 3}, std::vector<double>(6, 0.0));
}

TEST_CASE("select_rows keeps its own copy of the indices") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({3, 2}));
  tg::Var y;
  {
    std::vector<std::int64_t> rows = {1, 1};
    y = tg::select_rows(x, rows);
    rows.assign({0, 2});
  }
  tape.backward(y, tg::Tensor::ones({2, 2}));
  check_values(x.grad(), {3, 2}, {0, 0, 2, 2, 0, 0});
}

TEST_CASE("select_rows rejects indices out of range") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({4, 3}));
  tg::Var scalar = tape.leaf(tg::Tensor::zeros({}));
  tg::Var empty = tape.leaf(tg::Tensor::zeros({0, 3}));
  const std::int64_t size = tape.size();
  CHECK_THROWS_WITH_AS(tg::select_rows(x, {0, 1, 7}),
                       "select_rows: each index must be in [-4, 4) for x of shape [4, 3], but got rows[2] = 7",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::select_rows(x, {-5}),
                       "select_rows: each index must be in [-4, 4) for x of shape [4, 3], but got rows[0] = -5",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::select_rows(x, {3, 4}),
                       "select_rows: each index must be in [-4, 4) for x of shape [4, 3], but got rows[1] = 4",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::select_rows(empty, {0}),
                       "select_rows: each index must be in [0, 0) for x of shape [0, 3], but got rows[0] = 0",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::select_rows(scalar, {0}),
                       "select_rows: x must have rank >= 1, with the rows along axis 0, but got x of shape []",
                       tg::ShapeError);
  CHECK(tape.size() == size);
}

TEST_CASE("select_rows gradcheck cases pass") { check_gradcheck_cases("select_rows", 3); }

TEST_CASE("gradcheck catches a select_rows VJP that assigns") {
  // A planted bug: the scatter writes ȳ rows with = instead of +=, so a repeated row keeps only
  // its last copy's cotangent. The case repeats row 2, which exposes it.
  auto assigning_vjp = [](tg::VjpContext& context) {
    const tg::Tensor& x = context.input(0);
    const tg::Tensor& g = context.cotangent();
    const std::int64_t rows[] = {2, 0, 2};
    tg::Tensor x_grad = tg::Tensor::zeros(x.shape());
    for (std::int64_t i = 0; i < 3; ++i) {
      for (std::int64_t t = 0; t < 2; ++t) {
        x_grad.data<double>()[rows[i] * 2 + t] = g.data<double>()[i * 2 + t];
      }
    }
    context.accumulate(0, std::move(x_grad));
  };
  tg::GradcheckCase planted{
      .op = "select_rows_planted_bug",
      .name = "repeated_row",
      .inputs = {{.shape = {3, 2}}},
      .function = [assigning_vjp](std::span<const tg::Var> inputs) {
        tg::Tensor y = tg::select_rows(inputs[0], {2, 0, 2}).value();
        return inputs[0].tape().record("select_rows_planted_bug", y, {inputs[0]}, +assigning_vjp);
      }};
  CHECK_FALSE(tg::gradcheck(planted).passed());
}

// ---- select_per_row --------------------------------------------------------------------------

TEST_CASE("select_per_row picks one element per row") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({3, 4}));
  tg::Var y = tg::select_per_row(x, {1, -1, 0});
  check_values(y.value(), {3}, {1, 7, 8});
  tape.backward(y, tg::Tensor::from_values({3}, {10, 20, 30}));
  check_values(x.grad(), {3, 4}, {0, 10, 0, 0, 0, 0, 0, 20, 30, 0, 0, 0});

  tg::Var empty = tape.leaf(tg::Tensor::zeros({0, 4}));
  CHECK(tg::select_per_row(empty, std::span<const std::int64_t>{}).shape() == tg::Shape{0});
}

TEST_CASE("select_per_row rejects bad shapes and indices") {
  tg::Tape tape;
  tg::Var x = tape.leaf(iota({3, 4}));
  tg::Var vector = tape.leaf(iota({3}));
  const std::int64_t size = tape.size();
  CHECK_THROWS_WITH_AS(tg::select_per_row(x, {0, 4, 1}),
                       "select_per_row: each index must be in [-4, 4) for x of shape [3, 4], but got columns[1] = 4",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::select_per_row(x, {0, 1, -5}),
                       "select_per_row: each index must be in [-4, 4) for x of shape [3, 4], but got columns[2] = -5",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::select_per_row(x, {0, 1}),
                       "select_per_row: columns must have one entry per row of x, but got 2 columns for x of shape "
                       "[3, 4]",
                       tg::ShapeError);
  CHECK_THROWS_WITH_AS(tg::select_per_row(vector, {0, 1, 2}),
                       "select_per_row: x must be a 2-D matrix, but got x of shape [3] (rank 1)", tg::ShapeError);
  CHECK(tape.size() == size);
}

TEST_CASE("select_per_row gradcheck cases pass") { check_gradcheck_cases("select_per_row", 3); }
