// A program built outside the source tree against an installed tapegrad, as
// tools/check_install.sh does. It checks values and gradients worked out by hand for matmul,
// broadcast addition, normalize at a zero row, an all-masked logsumexp row and a four-way tie in
// masked_max, and the typed error of a matmul with mismatched inner dimensions. Exit status 1
// names every check that failed.
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <cstdio>
#include <string>
#include <vector>

namespace tg = tapegrad;

namespace {

int failures = 0;

void expect_near(const char* check_name, double got, double expected, double tolerance) {
  const bool same_infinity = std::isinf(expected) && got == expected;
  if (!same_infinity && !(std::abs(got - expected) <= tolerance)) {
    std::printf("FAILED %s: got %.17g, expected %.17g\n", check_name, got, expected);
    ++failures;
  }
}

void check_matmul() {
  // [[1, 2], [3, 4]] · [[5, 6, 7], [8, 9, 10]] = [[21, 24, 27], [47, 54, 61]]. With seed 1 the
  // gradients are Ā = 1·Bᵀ (row sums of B) and B̄ = Aᵀ·1 (column sums of A).
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::from_values({2, 2}, {1, 2, 3, 4}));
  tg::Var b = tape.leaf(tg::Tensor::from_values({2, 3}, {5, 6, 7, 8, 9, 10}));
  tg::Var c = tg::matmul(a, b);
  tape.backward(tg::sum(c));
  const std::vector<double> expected_c = {21, 24, 27, 47, 54, 61};
  for (std::int64_t i = 0; i < 6; ++i) {
    expect_near("matmul value", c.value().flat(i), expected_c[static_cast<std::size_t>(i)], 0.0);
  }
  expect_near("matmul grad a[0, 0]", a.grad().at({0, 0}), 18.0, 0.0);
  expect_near("matmul grad a[1, 1]", a.grad().at({1, 1}), 27.0, 0.0);
  expect_near("matmul grad b[0, 2]", b.grad().at({0, 2}), 4.0, 0.0);
  expect_near("matmul grad b[1, 0]", b.grad().at({1, 0}), 6.0, 0.0);
}

void check_broadcast_add() {
  // [2, 3] + [3]: the row vector's gradient sums the cotangent over the two rows.
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {1, 2, 3, 4, 5, 6}));
  tg::Var row = tape.leaf(tg::Tensor::from_values({3}, {10, 20, 30}));
  tg::Var y = x + row;
  tape.backward(y, tg::Tensor::from_values({2, 3}, {1, 2, 3, 4, 5, 6}));
  expect_near("add value [1, 2]", y.value().at({1, 2}), 36.0, 0.0);
  expect_near("add grad row[0]", row.grad().at({0}), 5.0, 0.0);
  expect_near("add grad row[2]", row.grad().at({2}), 9.0, 0.0);
  expect_near("add grad x[1, 1]", x.grad().at({1, 1}), 5.0, 0.0);
}

void check_normalize_zero_row() {
  // x / max(‖x‖, 1e-12): a zero row maps to zero and its gradient is the cotangent / 1e-12.
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 2}, {0, 0, 3, 4}));
  tg::Var y = tg::normalize(x, 1);
  tape.backward(y, tg::Tensor::from_values({2, 2}, {1, 2, 1, 0}));
  expect_near("normalize zero row value", y.value().at({0, 1}), 0.0, 0.0);
  expect_near("normalize value [1, 0]", y.value().at({1, 0}), 0.6, 1e-15);
  expect_near("normalize zero row grad [0, 0]", x.grad().at({0, 0}), 1e12, 1e-3);
  expect_near("normalize zero row grad [0, 1]", x.grad().at({0, 1}), 2e12, 1e-3);
  // Row (3, 4): (ȳ − y⟨y, ȳ⟩)/5 with y = (0.6, 0.8), ȳ = (1, 0): ((1 − 0.36), −0.48)/5.
  expect_near("normalize grad [1, 0]", x.grad().at({1, 0}), 0.128, 1e-15);
  expect_near("normalize grad [1, 1]", x.grad().at({1, 1}), -0.096, 1e-15);
}

void check_all_masked_logsumexp() {
  // Row 0 keeps 1 and 2: log(e + e²) = 2.313261687518223, softmax (0.2689…, 0.7310…). Row 1 keeps
  // nothing: -inf with a zero gradient, never NaN.
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {1, 2, 1000, 4, 5, 6}));
  const tg::Tensor mask = tg::Tensor::from_values({2, 3}, {1, 1, 0, 0, 0, 0}, tg::Dtype::boolean);
  tg::Var y = tg::masked_logsumexp(x, mask, 1);
  tape.backward(y, tg::Tensor::ones({2}));
  expect_near("logsumexp row 0", y.value().at({0}), 2.313261687518223, 1e-14);
  expect_near("logsumexp empty row", y.value().at({1}), -INFINITY, 0.0);
  expect_near("logsumexp grad [0, 0]", x.grad().at({0, 0}), 0.2689414213699951, 1e-14);
  expect_near("logsumexp grad [0, 1]", x.grad().at({0, 1}), 0.7310585786300049, 1e-14);
  for (std::int64_t column = 0; column < 3; ++column) {
    expect_near("logsumexp grad, masked or empty row", x.grad().at({1, column}), 0.0, 0.0);
  }
  expect_near("logsumexp grad of the masked 1000", x.grad().at({0, 2}), 0.0, 0.0);
}

void check_masked_max_tie() {
  // A four-way tie at 2 splits the gradient evenly, and the masked 5 gets nothing.
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({5}, {2, 2, 2, 2, 5}));
  const tg::Tensor mask = tg::Tensor::from_values({5}, {1, 1, 1, 1, 0}, tg::Dtype::boolean);
  tg::Var y = tg::masked_max(x, mask, 0);
  tape.backward(y);
  expect_near("masked_max value", y.value().item(), 2.0, 0.0);
  for (std::int64_t i = 0; i < 4; ++i) {
    expect_near("masked_max tied grad", x.grad().at({i}), 0.25, 0.0);
  }
  expect_near("masked_max masked grad", x.grad().at({4}), 0.0, 0.0);
}

void check_matmul_error() {
  tg::Tape tape;
  tg::Var a = tape.leaf(tg::Tensor::zeros({4, 3}));
  tg::Var b = tape.leaf(tg::Tensor::zeros({5, 2}));
  try {
    tg::matmul(a, b);
    std::printf("FAILED matmul error: no exception for [4, 3] · [5, 2]\n");
    ++failures;
  } catch (const tg::ShapeError& error) {
    const std::string message = error.what();
    if (message.find("matmul") == std::string::npos || message.find("[4, 3]") == std::string::npos ||
        message.find("[5, 2]") == std::string::npos) {
      std::printf("FAILED matmul error: message '%s' does not name the op and both shapes\n", message.c_str());
      ++failures;
    }
  }
}

}  // namespace

int main() {
  check_matmul();
  check_broadcast_add();
  check_normalize_zero_row();
  check_all_masked_logsumexp();
  check_masked_max_tie();
  check_matmul_error();
  if (failures > 0) {
    std::printf("ops_check: %d checks failed\n", failures);
    return 1;
  }
  std::printf("ops_check: every value, gradient and error as worked out by hand\n");
  return 0;
}
