// where and the masked reductions: values, VJPs, rows with no selected entry, masked entries
// that hold 1000, inf or NaN, masks broadcast from a row or a column, argument checks, and
// every registered gradcheck case.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
#include <string>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

constexpr tg::Dtype floating_dtypes[] = {tg::Dtype::f32, tg::Dtype::f64};
constexpr double infinity = std::numeric_limits<double>::infinity();
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

// f32 results are compared with float64 expectations, so they get the f32 rounding error.
double rtol_of(tg::Dtype dtype) { return dtype == tg::Dtype::f32 ? 1e-6 : 1e-13; }

// Checks each element: zeros and infinities exactly (so a NaN fails), others within rtol.
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

tg::Tensor mask_of(const tg::Shape& shape, std::initializer_list<double> values) {
  return tg::Tensor::from_values(shape, values, tg::Dtype::boolean);
}

bool all_finite(const tg::Tensor& tensor) {
  const std::vector<double> values = tensor.to_vector();
  return std::all_of(values.begin(), values.end(), [](double v) { return std::isfinite(v); });
}

using MaskedAxisReduction = tg::Var (*)(const tg::Var&, const tg::Tensor&, std::int64_t, bool);
using MaskedAllReduction = tg::Var (*)(const tg::Var&, const tg::Tensor&);

struct MaskedOp {
  const char* name;
  MaskedAxisReduction along_axis;
  MaskedAllReduction all_elements;
};

const MaskedOp masked_ops[] = {
    {"masked_sum", tg::masked_sum, tg::masked_sum},
    {"masked_mean", tg::masked_mean, tg::masked_mean},
    {"masked_max", tg::masked_max, tg::masked_max},
    {"masked_logsumexp", tg::masked_logsumexp, tg::masked_logsumexp},
};

// The value and the gradient (seed all ones) of one masked op on one geometry, or, for
// masked_mean on a geometry with an empty row, the index of that row.
struct Expected {
  std::vector<double> values;
  std::vector<double> gradient;
  std::optional<std::int64_t> empty_row{};
};

// Two rows of a reduction, with masked entries that hold 1000, inf or NaN, and the expectations
// for masked_sum, masked_mean, masked_max and masked_logsumexp, in that order.
struct Geometry {
  const char* name;
  tg::Shape shape;
  std::vector<double> x;
  tg::Tensor mask;
  std::int64_t axis;
  Expected expected[4];
};

// The expectations were computed with python3 in float64, row by row from the selected entries
// s of each row: sum(s), sum(s)/len(s), max(s) with 1/t to each of t tied entries, and
// m + log(Σ exp(sᵢ − m)) with m = max(s) and gradient exp(sᵢ − m)/Σ exp(sⱼ − m). A row with no
// selected entry gives 0, an error, -inf and -inf, each with a zero gradient.
std::vector<Geometry> geometries() {
  return {
      // The reference case: allennlp's masked_log_softmax returned NaN for a fully masked row
      // like row 1, and torch.logsumexp gives NaN gradients for a row of -inf, both reported in
      // those projects' issue trackers.
      {"all_masked_row", {2, 3}, {1, 2, 1000, 4, 5, 6}, mask_of({2, 3}, {1, 1, 0, 0, 0, 0}), 1,
       {{{3, 0}, {1, 1, 0, 0, 0, 0}},
        {{}, {}, 1},
        {{2, -infinity}, {0, 1, 0, 0, 0, 0}},
        {{2.313261687518223, -infinity}, {0.2689414213699951, 0.7310585786300049, 0, 0, 0, 0}}}},
      {"all_masked_row_transposed", {3, 2}, {1, 4, 2, 5, 1000, 6}, mask_of({3, 2}, {1, 0, 1, 0, 0, 0}), 0,
       {{{3, 0}, {1, 0, 1, 0, 0, 0}},
        {{}, {}, 1},
        {{2, -infinity}, {0, 0, 1, 0, 0, 0}},
        {{2.313261687518223, -infinity}, {0.2689414213699951, 0, 0.7310585786300049, 0, 0, 0}}}},
      {"mask_row_nan_and_inf", {2, 3}, {1, 2, not_a_number, 4, 5, infinity}, mask_of({1, 3}, {1, 1, 0}), 1,
       {{{3, 9}, {1, 1, 0, 1, 1, 0}},
        {{1.5, 4.5}, {0.5, 0.5, 0, 0.5, 0.5, 0}},
        {{2, 5}, {0, 1, 0, 0, 1, 0}},
        {{2.313261687518223, 5.313261687518223},
         {0.2689414213699951, 0.7310585786300049, 0, 0.2689414213699951, 0.7310585786300049, 0}}}},
      {"mask_column_empty_row", {2, 3}, {1, 2, 3, 4, 5, 1000}, mask_of({2, 1}, {1, 0}), 1,
       {{{6, 0}, {1, 1, 1, 0, 0, 0}},
        {{}, {}, 1},
        {{3, -infinity}, {0, 0, 1, 0, 0, 0}},
        {{3.4076059644443806, -infinity},
         {0.09003057317038046, 0.24472847105479764, 0.6652409557748218, 0, 0, 0}}}},
      {"mask_row_along_axis0", {3, 2}, {1, not_a_number, 2, infinity, 0.5, -infinity}, mask_of({1, 2}, {1, 0}), 0,
       {{{3.5, 0}, {1, 0, 1, 0, 1, 0}},
        {{}, {}, 1},
        {{2, -infinity}, {0, 0, 1, 0, 0, 0}},
        {{2.464368784107945, -infinity}, {0.23122389762214907, 0, 0.6285317192117624, 0, 0.14024438316608848, 0}}}},
      {"mask_column_along_axis0", {3, 2}, {1, 2, 1000, not_a_number, 3, 0.25}, mask_of({3, 1}, {1, 0, 1}), 0,
       {{{4, 2.25}, {1, 1, 0, 0, 1, 1}},
        {{2, 1.125}, {0.5, 0.5, 0, 0, 0.5, 0.5}},
        {{3, 2}, {0, 1, 0, 0, 1, 0}},
        {{3.1269280110429727, 2.1602241504380872},
         {0.11920292202211755, 0.8519528019683106, 0, 0, 0.8807970779778823, 0.1480471980316895}}}},
  };
}

}  // namespace

TEST_CASE("masked reductions on every geometry") {
  for (const Geometry& geometry : geometries()) {
    for (std::size_t op_index = 0; op_index < 4; ++op_index) {
      const MaskedOp& op = masked_ops[op_index];
      const Expected& expected = geometry.expected[op_index];
      for (tg::Dtype dtype : floating_dtypes) {
        for (bool keepdim : {false, true}) {
          for (std::int64_t axis : {geometry.axis, geometry.axis - 2}) {
            CAPTURE(std::string(geometry.name));
            CAPTURE(std::string(op.name));
            CAPTURE(dtype);
            CAPTURE(keepdim);
            CAPTURE(axis);
            tg::Tape tape;
            tg::Var x = tape.leaf(tg::Tensor::from_values(geometry.shape, geometry.x, dtype));
            if (expected.empty_row) {
              const std::int64_t size_before = tape.size();
              const std::string row = "row " + std::to_string(*expected.empty_row) + " ";
              CHECK_THROWS_WITH_AS(op.along_axis(x, geometry.mask, axis, keepdim), doctest::Contains(row.c_str()),
                                   tg::ValueError);
              CHECK(tape.size() == size_before);
              continue;
            }
            tg::Var y = op.along_axis(x, geometry.mask, axis, keepdim);
            CHECK(y.shape() == (keepdim ? tg::Shape{geometry.axis == 0 ? 1 : 2, geometry.axis == 0 ? 2 : 1}
                                        : tg::Shape{2}));
            CHECK(y.dtype() == dtype);
            check_elements(y.value(), expected.values, rtol_of(dtype));
            tape.backward(y, tg::Tensor::ones(y.shape(), dtype));
            check_elements(x.grad(), expected.gradient, rtol_of(dtype));
          }
        }
      }
    }
  }
}

TEST_CASE("all-masked logsumexp row has zero gradient") {
  // The reference case in its own words: forward [2.313261687518223, -inf], and every masked or
  // empty-row entry of the gradient exactly 0.0.
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {1, 2, 1000, 4, 5, 6}));
  tg::Var y = tg::masked_logsumexp(x, mask_of({2, 3}, {1, 1, 0, 0, 0, 0}), 1);
  CHECK(y.value().flat(0) == doctest::Approx(2.313261687518223).epsilon(1e-13));
  CHECK(y.value().flat(1) == -infinity);
  tape.backward(y, tg::Tensor::ones({2}));
  const tg::Tensor gradient = x.grad();
  CHECK(gradient.flat(0) == doctest::Approx(0.2689414213699951).epsilon(1e-13));
  CHECK(gradient.flat(1) == doctest::Approx(0.7310585786300049).epsilon(1e-13));
  for (std::int64_t i = 2; i < 6; ++i) {
    CAPTURE(i);
    CHECK(gradient.flat(i) == 0.0);
  }
}

TEST_CASE("reductions of all elements with masks") {
  // x = [[1, 2, 1000], [4, 5, inf]] and the row mask [1, 1, 0] selects 1, 2, 4 and 5.
  // Expectations by hand, and logsumexp(1, 2, 4, 5) with its softmax gradient computed with
  // python3 in float64 as m + log(Σ exp(sᵢ − m)) and exp(sᵢ − m) / Σ exp(sⱼ − m).
  const std::vector<double> x_values{1, 2, 1000, 4, 5, infinity};
  const tg::Tensor row = mask_of({1, 3}, {1, 1, 0});
  const std::vector<Expected> expected{
      {{12}, {1, 1, 0, 1, 1, 0}},
      {{3}, {0.25, 0.25, 0, 0.25, 0.25, 0}},
      {{5}, {0, 0, 0, 0, 1, 0}},
      {{5.361849039091965},
       {0.012754781742087936, 0.03467109143547885, 0, 0.2561866396279072, 0.696387487194526, 0}},
  };
  for (tg::Dtype dtype : floating_dtypes) {
    for (std::size_t op_index = 0; op_index < 4; ++op_index) {
      CAPTURE(std::string(masked_ops[op_index].name));
      CAPTURE(dtype);
      tg::Tape tape;
      tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, x_values, dtype));
      tg::Var y = masked_ops[op_index].all_elements(x, row);
      CHECK(y.shape() == tg::Shape{});
      check_elements(y.value(), expected[op_index].values, rtol_of(dtype));
      tape.backward(y);
      check_elements(x.grad(), expected[op_index].gradient, rtol_of(dtype));
    }
  }
}

TEST_CASE("mask that selects nothing") {
  const tg::Tensor none = mask_of({1, 3}, {0, 0, 0});
  for (tg::Dtype dtype : floating_dtypes) {
    CAPTURE(dtype);
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {1, 2, not_a_number, 4, infinity, 6}, dtype));

    tg::Var total = tg::masked_sum(x, none);
    CHECK(total.value().item() == 0.0);
    tg::Var maximum = tg::masked_max(x, none);
    CHECK(maximum.value().item() == -infinity);
    tg::Var lse = tg::masked_logsumexp(x, none);
    CHECK(lse.value().item() == -infinity);
    for (const tg::Var& y : {total, maximum, lse}) {
      tape.zero_grad();
      tape.backward(y);
      check_elements(x.grad(), {0, 0, 0, 0, 0, 0}, 0.0);
    }

    const std::int64_t size_before = tape.size();
    CHECK_THROWS_WITH_AS(tg::masked_mean(x, none), doctest::Contains("a mask [1, 3] that selects no entry of x [2, 3]"),
                         tg::ValueError);
    CHECK(tape.size() == size_before);
  }
}

TEST_CASE("masked_mean names a multi-axis empty row") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::ones({2, 3, 4}));
  const tg::Tensor mask = mask_of({2, 3, 1}, {1, 1, 1, 1, 1, 0});
  CHECK_THROWS_WITH_AS(tg::masked_mean(x, mask, 2), doctest::Contains("row [1, 2] with no selected entry along axis 2"),
                       tg::ValueError);
  // The same mask along axis 0 leaves no empty row: [1, 2] is selected at i = 0.
  check_elements(tg::masked_mean(x, mask, 0).value(), std::vector<double>(12, 1.0), 0.0);
}

TEST_CASE("masked max at a tie") {
  // The reference case: four-way tie at 2 with the 5 masked out, and the same without a tie.
  for (tg::Dtype dtype : floating_dtypes) {
    CAPTURE(dtype);
    const tg::Tensor mask = mask_of({5}, {1, 1, 1, 1, 0});
    tg::Tape tape;
    tg::Var tied = tape.leaf(tg::Tensor::from_values({5}, {2, 2, 2, 2, 5}, dtype));
    tg::Var y = tg::masked_max(tied, mask);
    CHECK(y.value().item() == 2.0);
    tape.backward(y);
    check_elements(tied.grad(), {0.25, 0.25, 0.25, 0.25, 0}, 0.0);

    tg::Var distinct = tape.leaf(tg::Tensor::from_values({5}, {2, 1.5, 1.9, 0.3, 5}, dtype));
    tape.backward(tg::masked_max(distinct, mask));
    check_elements(distinct.grad(), {1, 0, 0, 0, 0}, 0.0);
  }
}

TEST_CASE("masked max ties along each axis") {
  // Rows [2, 2, 2, 2, 5] and [1, 3, 3, 0, 9] under the row mask [1, 1, 1, 1, 0], along axis 1,
  // and the transposed input under the column mask along axis 0. Seeds 4 and 2 make the shares
  // 1 (a four-way tie) and 1 (a two-way tie).
  const std::vector<double> rows{2, 2, 2, 2, 5, 1, 3, 3, 0, 9};
  const std::vector<double> columns{2, 1, 2, 3, 2, 3, 2, 0, 5, 9};
  for (tg::Dtype dtype : floating_dtypes) {
    for (bool keepdim : {false, true}) {
      CAPTURE(dtype);
      CAPTURE(keepdim);
      tg::Tape tape;
      tg::Var x = tape.leaf(tg::Tensor::from_values({2, 5}, rows, dtype));
      tg::Var y = tg::masked_max(x, mask_of({1, 5}, {1, 1, 1, 1, 0}), -1, keepdim);
      check_elements(y.value(), {2, 3}, 0.0);
      tape.backward(y, tg::Tensor::from_values(y.shape(), {4, 2}, dtype));
      check_elements(x.grad(), {1, 1, 1, 1, 0, 0, 1, 1, 0, 0}, 0.0);

      tg::Var x_t = tape.leaf(tg::Tensor::from_values({5, 2}, columns, dtype));
      tg::Var y_t = tg::masked_max(x_t, mask_of({5, 1}, {1, 1, 1, 1, 0}), 0, keepdim);
      check_elements(y_t.value(), {2, 3}, 0.0);
      tape.backward(y_t, tg::Tensor::from_values(y_t.shape(), {4, 2}, dtype));
      check_elements(x_t.grad(), {1, 0, 1, 1, 1, 1, 1, 0, 0, 0}, 0.0);
    }
  }
}

TEST_CASE("unselected overflowed exp gets zero gradient") {
  // The reference case: exp(1000) in f64, or exp(100) in f32, overflows to inf in an entry the
  // mask drops. Both masked_sum(exp(x), mask) and sum(where(mask, exp(x), 0)) must give the
  // gradient exp(x) at the selected entries and exactly 0 at the dropped one.
  for (tg::Dtype dtype : floating_dtypes) {
    CAPTURE(dtype);
    const double large = dtype == tg::Dtype::f64 ? 1000 : 100;
    const double rtol = dtype == tg::Dtype::f64 ? 1e-14 : 1e-6;
    const tg::Tensor mask = mask_of({3}, {1, 1, 0});
    const std::vector<double> gradient{1.6487212707001282, 0.7408182206817179, 0};

    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({3}, {0.5, -0.3, large}, dtype));
    tg::Var y = tg::masked_sum(tg::exp(x), mask);
    check_elements(y.value(), {2.389539491381846}, rtol);
    tape.backward(y);
    check_elements(x.grad(), gradient, rtol);

    tg::Var x2 = tape.leaf(tg::Tensor::from_values({3}, {0.5, -0.3, large}, dtype));
    tg::Var y2 = tg::sum(tg::where(mask, tg::exp(x2), 0.0));
    check_elements(y2.value(), {2.389539491381846}, rtol);
    tape.backward(y2);
    check_elements(x2.grad(), gradient, rtol);
  }
}

TEST_CASE("every masked reduction of an overflowed exp") {
  // x = [[0.5, -0.3, L], [0.2, 1.5, L]] with exp(L) = inf, the row mask [1, 1, 0], along axis 1.
  // Values and gradients of op(exp(x)) computed with python3 in float64 as in geometries(),
  // times exp(xᵢ) for the chain rule.
  const std::vector<Expected> expected{
      {{2.389539491381846, 5.703091828498234},
       {1.6487212707001282, 0.7408182206817179, 0, 1.2214027581601699, 4.4816890703380645, 0}},
      {{1.194769745690923, 2.851545914249117},
       {0.8243606353500641, 0.37040911034085894, 0, 0.6107013790800849, 2.2408445351690323, 0}},
      {{1.6487212707001282, 4.4816890703380645}, {1.6487212707001282, 0, 0, 0, 4.4816890703380645, 0}},
      {{1.987597175342772, 4.519348381026134},
       {1.174830750810105, 0.21293273640715557, 0, 0.04514184557429463, 4.3160502468021225, 0}},
  };
  for (tg::Dtype dtype : floating_dtypes) {
    const double large = dtype == tg::Dtype::f64 ? 1000 : 100;
    for (bool keepdim : {false, true}) {
      for (std::size_t op_index = 0; op_index < 4; ++op_index) {
        CAPTURE(std::string(masked_ops[op_index].name));
        CAPTURE(dtype);
        CAPTURE(keepdim);
        tg::Tape tape;
        tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {0.5, -0.3, large, 0.2, 1.5, large}, dtype));
        tg::Var y = masked_ops[op_index].along_axis(tg::exp(x), mask_of({1, 3}, {1, 1, 0}), 1, keepdim);
        check_elements(y.value(), expected[op_index].values, rtol_of(dtype));
        tape.backward(y, tg::Tensor::ones(y.shape(), dtype));
        check_elements(x.grad(), expected[op_index].gradient, rtol_of(dtype));
      }
    }
  }
}

TEST_CASE("masked_logsumexp with infinite selected entries") {
  // Row 0 selects only -inf entries, row 1 selects a +inf. A shift by the row max would compute
  // inf − inf = NaN in both, but log Σ exp is -inf and +inf there.
  for (tg::Dtype dtype : floating_dtypes) {
    CAPTURE(dtype);
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {-infinity, -infinity, 7, infinity, 1, 7}, dtype));
    tg::Var y = tg::masked_logsumexp(x, mask_of({1, 3}, {1, 1, 0}), 1);
    CHECK(y.value().flat(0) == -infinity);
    CHECK(y.value().flat(1) == infinity);
    // Only the gradient of the finite row-1 entry is defined: exp(1 − inf) / Σ = 0.
    tape.backward(y, tg::Tensor::from_values({2}, {0, 1}, dtype));
    CHECK(x.grad().flat(4) == 0.0);
    CHECK(x.grad().flat(5) == 0.0);
  }
}

TEST_CASE("masked_logsumexp is composed from recorded ops") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 2}, {1, 2, 3, 4}));
  const std::int64_t first = tape.size();
  tg::masked_logsumexp(x, mask_of({1, 2}, {1, 1}), 1);
  std::vector<std::string> ops;
  for (std::int64_t i = first; i < tape.size(); ++i) {
    ops.emplace_back(tape.node(i).op);
  }
  CAPTURE(fmt::format("{}", fmt::join(ops, ", ")));
  for (const char* op : {"constant", "where", "exp", "masked_sum", "log"}) {
    CAPTURE(op);
    CHECK(std::find(ops.begin(), ops.end(), op) != ops.end());
  }
  CHECK(std::find(ops.begin(), ops.end(), "masked_max") == ops.end());
}

TEST_CASE("where selects and routes with broadcasting") {
  // mask [1, 3] = [T, F, T], a [2, 1] = [[10], [20]], b [2, 3]: by hand, y = [[10, 2, 10],
  // [20, 5, 20]], ā sums the seed over the selected columns and b̄ keeps the unselected ones.
  for (tg::Dtype dtype : floating_dtypes) {
    CAPTURE(dtype);
    tg::Tape tape;
    tg::Var a = tape.leaf(tg::Tensor::from_values({2, 1}, {10, 20}, dtype));
    tg::Var b = tape.leaf(tg::Tensor::from_values({2, 3}, {1, 2, 3, 4, 5, 6}, dtype));
    tg::Var y = tg::where(mask_of({1, 3}, {1, 0, 1}), a, b);
    CHECK(y.op() == "where");
    CHECK(y.shape() == tg::Shape{2, 3});
    check_elements(y.value(), {10, 2, 10, 20, 5, 20}, 0.0);
    tape.backward(y, tg::Tensor::from_values({2, 3}, {1, 2, 3, 4, 5, 6}, dtype));
    check_elements(a.grad(), {4, 10}, 0.0);
    check_elements(b.grad(), {0, 2, 0, 0, 5, 0}, 0.0);
  }
}

TEST_CASE("where gives exactly zero to the unselected side") {
  // A seed of inf or NaN must not reach the side that was not selected, as 0 · inf would.
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::from_values({3}, {1, 2, 3}));
  tg::Var b = tape.leaf(tg::Tensor::from_values({3}, {4, 5, 6}));
  tg::Var y = tg::where(mask_of({3}, {1, 0, 1}), a, b);
  tape.backward(y, tg::Tensor::from_values({3}, {infinity, not_a_number, 1}));
  const tg::Tensor a_grad = a.grad();
  const tg::Tensor b_grad = b.grad();
  CHECK(a_grad.flat(0) == infinity);
  CHECK(a_grad.flat(1) == 0.0);
  CHECK(a_grad.flat(2) == 1.0);
  CHECK(b_grad.flat(0) == 0.0);
  CHECK(std::isnan(b_grad.flat(1)));
  CHECK(b_grad.flat(2) == 0.0);
}

TEST_CASE("where with a scalar fill") {
  for (tg::Dtype dtype : floating_dtypes) {
    CAPTURE(dtype);
    tg::Tape tape;
    tg::Var a = tape.leaf(tg::Tensor::from_values({2, 2}, {1, 2, 3, 4}, dtype));
    tg::Var y = tg::where(mask_of({2, 1}, {1, 0}), a, -infinity);
    CHECK(y.dtype() == dtype);
    check_elements(y.value(), {1, 2, -infinity, -infinity}, 0.0);
    tape.backward(y, tg::Tensor::from_values({2, 2}, {5, 6, 7, 8}, dtype));
    check_elements(a.grad(), {5, 6, 0, 0}, 0.0);
  }
}

TEST_CASE("invalid masks and arguments are rejected") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::zeros({2, 3}));
  tg::Var x32 = tape.leaf(tg::Tensor::zeros({2, 3}, tg::Dtype::f32));
  const tg::Tensor float_mask = tg::Tensor::ones({2, 3});
  const std::int64_t size_before = tape.size();

  for (const MaskedOp& op : masked_ops) {
    CAPTURE(std::string(op.name));
    CHECK_THROWS_WITH_AS(op.along_axis(x, float_mask, 1, false),
                         doctest::Contains("a mask of dtype f64 and shape [2, 3]"), tg::DtypeError);
    CHECK_THROWS_WITH_AS(op.all_elements(x, mask_of({3, 1}, {1, 1, 1})),
                         doctest::Contains("mask [3, 1] and x [2, 3]"), tg::ShapeError);
    CHECK_THROWS_WITH_AS(op.along_axis(x, mask_of({4}, {1, 1, 1, 1}), 0, false),
                         doctest::Contains("mask [4] and x [2, 3]"), tg::ShapeError);
    // x would broadcast to this mask, but the mask must broadcast to x.
    CHECK_THROWS_WITH_AS(op.along_axis(x, mask_of({2, 2, 3}, std::initializer_list<double>(
                                                               {1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})),
                                       0, false),
                         doctest::Contains("mask [2, 2, 3] and x [2, 3]"), tg::ShapeError);
    CHECK_THROWS_WITH_AS(op.along_axis(x, mask_of({1, 3}, {1, 1, 1}), 2, false),
                         doctest::Contains("axis 2 and x of shape [2, 3]"), tg::ShapeError);
    CHECK_THROWS_WITH_AS(op.along_axis(x, mask_of({1, 3}, {1, 1, 1}), -3, true),
                         doctest::Contains("axis -3 and x of shape [2, 3]"), tg::ShapeError);
    CHECK_THROWS_AS(op.along_axis(x, tg::Tensor(), 0, false), tg::ValueError);
  }

  CHECK_THROWS_WITH_AS(tg::where(float_mask, x, 0.0), doctest::Contains("dtype f64"), tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::where(mask_of({1, 3}, {1, 0, 1}), x, x32), doctest::Contains("f64 [2, 3] and f32 [2, 3]"),
                       tg::DtypeError);
  CHECK_THROWS_WITH_AS(tg::where(mask_of({4}, {1, 0, 1, 0}), x, x), doctest::Contains("mask [4], a [2, 3] and b [2, 3]"),
                       tg::ShapeError);
  CHECK(tape.size() == size_before);
}

TEST_CASE("gradients of finite inputs are finite") {
  // Random finite x up to 1e30 in magnitude with repeated entries, and a mask with empty rows
  // along each axis.
  std::vector<double> values = tg::Tensor::uniform({4, 5, 3}, -1e30, 1e30, 11).to_vector();
  values[3] = values[0];
  values[15] = values[0];
  std::vector<double> mask_values = tg::Tensor::uniform({4, 5, 3}, 0, 1, 12).to_vector();
  for (double& m : mask_values) {
    m = m < 0.6 ? 1 : 0;
  }
  for (std::int64_t j = 0; j < 3; ++j) {
    mask_values[static_cast<std::size_t>(j)] = 0;  // row [0, 0] along axis 2 is empty
  }
  const tg::Tensor mask = tg::Tensor::from_values({4, 5, 3}, mask_values, tg::Dtype::boolean);
  for (tg::Dtype dtype : floating_dtypes) {
    for (const MaskedOp& op : masked_ops) {
      if (std::string(op.name) == "masked_mean") {
        continue;  // rows with no selected entry raise, as the tests above check
      }
      for (std::int64_t axis = -3; axis < 3; ++axis) {
        for (bool keepdim : {false, true}) {
          CAPTURE(std::string(op.name));
          CAPTURE(dtype);
          CAPTURE(axis);
          CAPTURE(keepdim);
          tg::Tape tape;
          tg::Var x = tape.leaf(tg::Tensor::from_values({4, 5, 3}, values, dtype));
          tg::Var y = op.along_axis(x, mask, axis, keepdim);
          tape.backward(y, tg::Tensor::ones(y.shape(), dtype));
          CHECK(all_finite(x.grad()));
        }
      }
    }
  }
}

TEST_CASE("every masked case passes gradcheck") {
  tg::GradcheckRegistry registry;
  tg::register_masked_cases(registry);
  for (const char* op : {"where", "masked_sum", "masked_mean", "masked_max", "masked_logsumexp"}) {
    CAPTURE(op);
    const auto cases = registry.cases_of(op);
    CHECK(cases.size() >= 4);
    for (const tg::GradcheckCase* gradcheck_case : cases) {
      CAPTURE(gradcheck_case->name);
      const tg::GradcheckResult result = tg::gradcheck(*gradcheck_case);
      CAPTURE(tg::verdict_name(result.verdict));
      CAPTURE(result.max_abs_error());
      CHECK(result.passed());
    }
  }
}
