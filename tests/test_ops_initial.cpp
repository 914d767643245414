// The first ops (exp, sum, mul) and the gradcheck cases every registered op carries.
#include <doctest/doctest.h>

#include <cmath>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

TEST_CASE("sum of exp matches exp elementwise") {
  tg::Tape tape;
  const tg::Tensor x0 = tg::Tensor::from_values({2, 3}, {0.1, -0.2, 0.3, 1.4, -2.5, 0.6});
  tg::Var x = tape.leaf(x0);
  tg::Var y = tg::sum(tg::exp(x));
  tape.backward(y);
  double expected_sum = 0.0;
  for (std::int64_t i = 0; i < 6; ++i) {
    expected_sum += std::exp(x0.flat(i));
    CHECK(x.grad().flat(i) == doctest::Approx(std::exp(x0.flat(i))).epsilon(1e-15));
  }
  CHECK(y.value().item() == doctest::Approx(expected_sum).epsilon(1e-15));
}

TEST_CASE("every registered case passes full gradcheck") {
  tg::GradcheckRegistry registry;
  tg::register_op_cases(registry);
  REQUIRE(registry.cases().size() > 10);
  for (const tg::GradcheckCase& gradcheck_case : registry.cases()) {
    CAPTURE(gradcheck_case.op);
    CAPTURE(gradcheck_case.name);
    const tg::GradcheckResult result = tg::gradcheck(gradcheck_case);
    CAPTURE(result.max_abs_error());
    CHECK(result.passed());
  }
}
