// Anomaly mode: NaN and infinity produced from finite values are reported with the op that
// produced them, its position on the tape, its input shapes and the pass.
#include <doctest/doctest.h>

#include <cmath>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

TEST_CASE("anomaly mode names log in the forward pass") {
  tg::Tape tape({.detect_anomaly = true});
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {0.0, 1.0}));
  CHECK_THROWS_AS(tg::log(x), tg::ValueError);
  CHECK_THROWS_WITH(tg::log(x), doctest::Contains("log: anomaly mode"));
  CHECK_THROWS_WITH(tg::log(x), doctest::Contains("output of node 1 (forward pass, input shapes [2])"));
  // The rejected op left the tape as it was, so the graph can go on.
  CHECK(tape.size() == 1);
  tg::Var y = tg::sum(tg::exp(x));
  CHECK(y.value().item() == doctest::Approx(1.0 + std::exp(1.0)).epsilon(1e-15));
}

TEST_CASE("without anomaly mode log(0) is -inf") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {0.0, 1.0}));
  tg::Var y = tg::sum(tg::log(x));
  CHECK(std::isinf(y.value().item()));
  CHECK(y.value().item() < 0);
}

TEST_CASE("anomaly mode names div in the backward pass") {
  // a / b with b = 1e-200 is 1e200, finite, but ∂(a/b)/∂b = -a/b² = -1e400 overflows.
  tg::Tape tape({.detect_anomaly = true});
  tg::Var a = tape.leaf(tg::Tensor::from_values({1, 2}, {1.0, 1.0}));
  tg::Var b = tape.leaf(tg::Tensor::from_values({1, 2}, {1e-200, 1.0}));
  tg::Var y = tg::sum(a / b);
  CHECK(std::isfinite(y.value().item()));
  CHECK_THROWS_AS(tape.backward(y), tg::ValueError);
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("div: anomaly mode"));
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("gradient of input 1 of node 2 (backward pass, input shapes [1, 2], [1, 2])"));
  // The failed sweeps left no partial gradient behind.
  CHECK(a.grad().at({0, 0}) == 0.0);
  CHECK(b.grad().at({0, 1}) == 0.0);
}

TEST_CASE("anomaly mode names an overflowing gradient sum") {
  // x feeds two products in y = 3·(x·c) + 3·(x·c) with c = 5e307. At x = 1e-10 the value 3e298
  // is finite, and so is each product's input gradient 3·c = 1.5e308 (DBL_MAX is about
  // 1.797e308), but their sum 3e308 in x's gradient overflows to +inf.
  tg::Tape tape({.detect_anomaly = true});
  tg::Var x = tape.leaf(tg::Tensor::from_values({1}, {1e-10}));
  tg::Var c = tape.constant(tg::Tensor::from_values({1}, {5e307}));
  tg::Var y = tg::sum((x * c) * 3.0 + (x * c) * 3.0);
  CHECK(std::isfinite(y.value().item()));
  CHECK_THROWS_AS(tape.backward(y), tg::ValueError);
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("mul: anomaly mode: an accumulated gradient must be finite"));
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("to the gradient of node 0 (backward pass"));
  // The failed sweeps left no partial gradient behind.
  CHECK(x.grad().at({0}) == 0.0);

  // Without anomaly mode the same sum is +inf.
  tg::Tape plain;
  tg::Var x2 = plain.leaf(tg::Tensor::from_values({1}, {1e-10}));
  tg::Var c2 = plain.constant(tg::Tensor::from_values({1}, {5e307}));
  plain.backward(tg::sum((x2 * c2) * 3.0 + (x2 * c2) * 3.0));
  CHECK(std::isinf(x2.grad().at({0})));
}

TEST_CASE("anomaly mode passes NT-Xent") {
  // The composed path fills masked logits with -inf on purpose: a scalar argument, not an anomaly.
  for (tg::NtXentImplementation implementation : {tg::NtXentImplementation::composed, tg::NtXentImplementation::fused}) {
    tg::Tape tape({.detect_anomaly = true});
    tg::Var z = tape.leaf(tg::Tensor::randn({6, 4}, 5));
    tg::Var loss = tg::nt_xent(z, {.temperature = 0.1, .implementation = implementation});
    tape.backward(loss);
    for (double g : z.grad().to_vector()) {
      CHECK(std::isfinite(g));
    }
  }
}

TEST_CASE("values stay valid while the tape grows") {
  // Var::value() returns a reference into the tape, which recording more nodes must not move.
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {1.0, 2.0}));
  const tg::Tensor& value = x.value();
  for (int i = 0; i < 1000; ++i) {
    tape.constant(tg::Tensor::zeros({1}));
  }
  CHECK(value.at({1}) == 2.0);
  CHECK(&value == &x.value());
}
