// A program built outside the source tree against an installed tapegrad, as
// tools/check_install.sh does. It computes NT-Xent with its own plain loop in long double for
// inputs the library's tests never use, compares tapegrad's loss and gradient in float64 and
// float32 with it, and checks that each invalid input raises a tapegrad::Error. Exit status 1
// names every check that failed.
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <cstdio>
#include <random>
#include <vector>

namespace tg = tapegrad;

namespace {

int failures = 0;

// Mean NT-Xent over 2N rows of z (row-major, `rows` × `columns`), concatenated layout.
long double reference_loss(const std::vector<long double>& z, int rows, int columns, long double temperature) {
  std::vector<long double> unit(z.size());
  for (int a = 0; a < rows; ++a) {
    long double squares = 0;
    for (int c = 0; c < columns; ++c) {
      squares += z[a * columns + c] * z[a * columns + c];
    }
    const long double norm = std::max(std::sqrt(squares), 1e-12L);
    for (int c = 0; c < columns; ++c) {
      unit[a * columns + c] = z[a * columns + c] / norm;
    }
  }
  long double total = 0;
  for (int a = 0; a < rows; ++a) {
    long double denominator = 0;
    long double positive = 0;
    for (int k = 0; k < rows; ++k) {
      long double cosine = 0;
      for (int c = 0; c < columns; ++c) {
        cosine += unit[a * columns + c] * unit[k * columns + c];
      }
      if (k != a) {
        denominator += std::exp(cosine / temperature);
      }
      if (k == (a + rows / 2) % rows) {
        positive = cosine / temperature;
      }
    }
    total += std::log(denominator) - positive;
  }
  return total / rows;
}

void check_against_reference(int pairs, int columns, double temperature, unsigned seed) {
  const int rows = 2 * pairs;
  std::mt19937 generator(seed);
  std::uniform_real_distribution<double> distribution(-2.0, 2.0);
  std::vector<double> values(static_cast<std::size_t>(rows * columns));
  for (double& value : values) {
    value = distribution(generator);
  }
  std::vector<long double> wide(values.begin(), values.end());
  const long double expected = reference_loss(wide, rows, columns, temperature);

  // The reference gradient by central differences of the long double loop, step 1e-6.
  std::vector<long double> expected_grad(wide.size());
  long double largest = 0;
  for (std::size_t i = 0; i < wide.size(); ++i) {
    const long double original = wide[i];
    wide[i] = original + 1e-6L;
    const long double plus = reference_loss(wide, rows, columns, temperature);
    wide[i] = original - 1e-6L;
    const long double minus = reference_loss(wide, rows, columns, temperature);
    wide[i] = original;
    expected_grad[i] = (plus - minus) / 2e-6L;
    largest = std::max(largest, std::abs(expected_grad[i]));
  }

  for (tg::Dtype dtype : {tg::Dtype::f64, tg::Dtype::f32}) {
    // float64: the loss to 1e-12 relative and the gradient to 1e-7 of its largest entry, the
    // accuracy of the differences. float32: 2e-4 and 2e-3, a few hundred roundings of 6e-8.
    const double loss_tolerance = dtype == tg::Dtype::f64 ? 1e-12 : 2e-4;
    const double grad_tolerance = dtype == tg::Dtype::f64 ? 1e-7 : 2e-3;
    tg::Tape tape;
    tg::Var z = tape.leaf(tg::Tensor::from_values({rows, columns}, values, dtype));
    tg::Var loss = tg::nt_xent(z, {.temperature = temperature});
    tape.backward(loss);
    const double got = loss.value().item();
    if (!(std::abs(got - static_cast<double>(expected)) <= loss_tolerance * std::abs(static_cast<double>(expected)))) {
      std::printf("FAILED %s loss N=%d D=%d T=%g: got %.17g, expected %.17Lg\n", std::string(tg::dtype_name(dtype)).c_str(),
                  pairs, columns, temperature, got, expected);
      ++failures;
    }
    const tg::Tensor grad = z.grad();
    for (std::int64_t i = 0; i < grad.numel(); ++i) {
      const long double difference = std::abs(grad.flat(i) - expected_grad[static_cast<std::size_t>(i)]);
      if (!(difference <= grad_tolerance * largest)) {
        std::printf("FAILED %s gradient N=%d D=%d T=%g element %lld: got %.10g, expected %.10Lg\n",
                    std::string(tg::dtype_name(dtype)).c_str(), pairs, columns, temperature,
                    static_cast<long long>(i), grad.flat(i), expected_grad[static_cast<std::size_t>(i)]);
        ++failures;
        break;
      }
    }
  }
}

template <class Call>
void expect_error(const char* check_name, Call&& call) {
  try {
    call();
    std::printf("FAILED %s: no tapegrad::Error\n", check_name);
    ++failures;
  } catch (const tg::Error& error) {
    std::printf("ok %s: %s\n", check_name, error.what());
  }
}

}  // namespace

int main() {
  check_against_reference(3, 5, 0.3, 1);
  check_against_reference(6, 2, 1.7, 2);
  check_against_reference(2, 9, 0.08, 3);

  tg::Tape tape;
  tg::Var three_rows = tape.leaf(tg::Tensor::ones({3, 2}));
  tg::Var two_rows = tape.leaf(tg::Tensor::ones({2, 2}));
  tg::Var vector = tape.leaf(tg::Tensor::ones({4}));
  tg::Var empty = tape.leaf(tg::Tensor::zeros({0, 2}));
  expect_error("empty batch", [&] { tg::nt_xent(empty); });
  expect_error("unequal views", [&] { tg::nt_xent(three_rows, two_rows); });
  expect_error("odd row count", [&] { tg::nt_xent(three_rows); });
  expect_error("input that is not 2-D", [&] { tg::nt_xent(vector); });
  expect_error("temperature 0", [&] { tg::nt_xent(two_rows, {.temperature = 0.0}); });
  expect_error("temperature -1", [&] { tg::nt_xent(two_rows, {.temperature = -1.0}); });
  expect_error("temperature inf", [&] { tg::nt_xent(two_rows, {.temperature = INFINITY}); });
  expect_error("temperature NaN", [&] { tg::nt_xent(two_rows, {.temperature = NAN}); });

  if (failures > 0) {
    std::printf("nt_xent_check: %d checks failed\n", failures);
    return 1;
  }
  std::printf("nt_xent_check: loss and gradient match the plain loop, and every invalid input raised\n");
  return 0;
}
