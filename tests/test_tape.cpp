// The tape: leaves, constants, the reverse sweep, seeds, stale handles.
#include <doctest/doctest.h>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

TEST_CASE("stale handle after clear raises") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::ones({2}));
  tape.clear();
  CHECK_THROWS_AS(x.value(), tg::TapeError);
  CHECK_THROWS_WITH(tg::exp(x), doctest::Contains("exp: a Var is stale"));
}

TEST_CASE("Vars of two tapes in one op raise") {
  tg::Tape first;
  tg::Tape second;
  tg::Var a = first.leaf(tg::Tensor::ones({2}));
  tg::Var b = second.leaf(tg::Tensor::ones({2}));
  CHECK_THROWS_AS(a * b, tg::TapeError);
  CHECK_THROWS_WITH(a * b, doctest::Contains("mul: all Vars of one op must be on the same tape"));
  CHECK(first.size() == 1);
  CHECK(second.size() == 1);
}

TEST_CASE("backward on a non-scalar needs a seed") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::ones({2, 3}));
  tg::Var y = tg::exp(x);
  CHECK_THROWS_AS(tape.backward(y), tg::TapeError);
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("shape [2, 3]"));
  tape.backward(y, tg::Tensor::full({2, 3}, 2.0));
  CHECK(x.grad().at({1, 1}) == doctest::Approx(2.0 * std::exp(1.0)).epsilon(1e-15));
}
