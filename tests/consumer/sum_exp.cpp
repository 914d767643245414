// A program built outside the source tree against an installed tapegrad (pkg-config) or a
// tapegrad subproject (meson), as tools/check_install.sh does. It exits with status 1 unless
// the gradient of sum(exp(x)) for a 2×3 float64 x equals exp(x) within 1e-14 relative, and a
// matmul through BLAS gives the product worked out by hand.
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <cstdint>
#include <cstdio>
#include <string>

namespace tg = tapegrad;

namespace {

int check_sum_exp() {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 3}, {-1.5, -0.25, 0.0, 0.5, 1.0, 2.0}));
  tape.backward(tg::sum(tg::exp(x)));
  const tg::Tensor grad = x.grad();
  if (grad.shape() != x.shape() || grad.dtype() != tg::Dtype::f64) {
    std::printf("sum_exp: gradient has shape %s and dtype %s, expected [2, 3] and f64\n",
                tg::to_string(grad.shape()).c_str(), std::string(tg::dtype_name(grad.dtype())).c_str());
    return 1;
  }
  int failures = 0;
  for (std::int64_t i = 0; i < grad.numel(); ++i) {
    // d/dxᵢ Σ exp(x) = exp(xᵢ).
    const double expected = std::exp(x.value().flat(i));
    const double relative_error = std::abs(grad.flat(i) - expected) / std::abs(expected);
    if (!(relative_error <= 1e-14)) {
      std::printf("sum_exp: gradient element %lld is %.17g, expected exp(x) = %.17g (relative error %.3g)\n",
                  static_cast<long long>(i), grad.flat(i), expected, relative_error);
      ++failures;
    }
  }
  // Printing goes through fmt, so this line also checks that fmt was linked.
  std::printf("sum_exp: dsum(exp(x))/dx = %s\n", fmt::format("{}", grad).c_str());
  return failures == 0 ? 0 : 1;
}

int check_matmul() {
  tg::Tape tape;
  tg::Var z = tape.constant(tg::Tensor::from_values({2, 3}, {1, 2, 3, 4, 5, 6}));
  const tg::Tensor gram = tg::matmul(z, z, {.transpose_b = true}).value();
  // z·zᵀ by hand: [[1+4+9, 4+10+18], [4+10+18, 16+25+36]].
  const double expected[] = {14, 32, 32, 77};
  for (std::int64_t i = 0; i < 4; ++i) {
    if (gram.flat(i) != expected[i]) {
      std::printf("sum_exp: matmul element %lld is %.17g, expected %.17g\n", static_cast<long long>(i),
                  gram.flat(i), expected[i]);
      return 1;
    }
  }
  return 0;
}

}  // namespace

int main() {
  try {
    const int failures = check_sum_exp() + check_matmul();
    std::printf("sum_exp: %s\n", failures == 0 ? "passed" : "FAILED");
    return failures == 0 ? 0 : 1;
  } catch (const tg::Error& error) {
    std::printf("sum_exp: %s\n", error.what());
    return 1;
  }
}
