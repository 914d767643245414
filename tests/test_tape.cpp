// The tape: leaves, constants, the reverse sweep, seeds, stale handles.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <memory>
#include <stdexcept>
#include <vector>

#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

const std::vector<double> x_values = {0.1, 0.2, 0.3, 0.4, 0.5, 0.6};

tg::Tensor x_tensor() { return tg::Tensor::from_values({2, 3}, x_values); }

// VJPs the tests plant with tape.record. A plain function converts to VjpFunction just as the
// captureless lambdas of the ops in ops/ do.

// Throws, so a test that records it proves by passing that the sweep never ran it.
void vjp_must_not_run(tg::VjpContext& context) {
  throw std::logic_error("the sweep ran the VJP of " + std::string(context.op()));
}

// Passes the cotangent through unchanged, and counts its calls.
int identity_vjp_calls = 0;
void identity_vjp(tg::VjpContext& context) {
  ++identity_vjp_calls;
  context.accumulate(0, context.cotangent());
}

// Passes the cotangent to every input without asking which need it, so only the tape decides
// which inputs receive a gradient.
void pass_to_all_vjp(tg::VjpContext& context) {
  for (std::int64_t position = 0; position < context.input_count(); ++position) {
    context.accumulate(position, context.cotangent());
  }
}

// Adds ones to the gradient of input 0, then throws: a VJP that fails halfway through the sweep.
void accumulate_then_throw_vjp(tg::VjpContext& context) {
  context.accumulate(0, tg::Tensor::ones(context.input(0).shape(), context.input(0).dtype()));
  throw std::runtime_error("planted failure");
}

// Accumulates a gradient whose shape has the input's two axes swapped.
void wrong_shape_vjp(tg::VjpContext& context) {
  const tg::Shape& shape = context.input(0).shape();
  context.accumulate(0, tg::Tensor::zeros({shape[1], shape[0]}, context.input(0).dtype()));
}

// Accumulates an f32 gradient into an f64 input.
void wrong_dtype_vjp(tg::VjpContext& context) {
  context.accumulate(0, tg::Tensor::zeros(context.input(0).shape(), tg::Dtype::f32));
}

// Accumulates an undefined tensor.
void undefined_gradient_vjp(tg::VjpContext& context) { context.accumulate(0, tg::Tensor()); }

// Accumulates into input 1 of an op that has one input.
void wrong_position_vjp(tg::VjpContext& context) {
  context.accumulate(1, tg::Tensor::zeros(context.input(0).shape(), context.input(0).dtype()));
}

// Records `op` with input x, output a copy of x's value and the given VJP.
tg::Var record_unary(tg::Tape& tape, std::string_view op, const tg::Var& x, tg::VjpFunction vjp) {
  return tape.record(op, x.value().clone(), {x}, vjp);
}

// Checks that every element of x.grad() is factor · exp(x).
void check_grad_is_scaled_exp(const tg::Var& x, double factor) {
  const tg::Tensor grad = x.grad();
  REQUIRE(grad.shape() == x.shape());
  for (std::int64_t i = 0; i < grad.numel(); ++i) {
    CAPTURE(i);
    CHECK(grad.flat(i) == doctest::Approx(factor * std::exp(x.value().flat(i))).epsilon(1e-15));
  }
}

}  // namespace

// ---- the sweep -------------------------------------------------------------------------------

TEST_CASE("one input feeding two ops accumulates") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(tg::exp(x) * tg::log(x));
  tape.backward(y);
  // d/dx Σ exp(x)·log(x) = exp(x)·log(x) + exp(x)/x: the exp branch gives the first term and
  // the log branch the second.
  const tg::Tensor grad = x.grad();
  for (std::size_t i = 0; i < x_values.size(); ++i) {
    const double v = x_values[i];
    CAPTURE(v);
    CHECK(grad.flat(static_cast<std::int64_t>(i)) ==
          doctest::Approx(std::exp(v) * std::log(v) + std::exp(v) / v).epsilon(1e-14));
  }
}

TEST_CASE("one input used twice in one op") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tape.backward(tg::sum(x * x));
  // d/dx Σ x² = 2x, exactly in floating point.
  for (std::size_t i = 0; i < x_values.size(); ++i) {
    CHECK(x.grad().flat(static_cast<std::int64_t>(i)) == 2 * x_values[i]);
  }
}

TEST_CASE("sweep skips nodes no leaf reaches") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var c = tape.constant(tg::Tensor::full({2, 3}, 2.0));
  // Only constants feed this node, so it needs no VJP even though the output depends on it.
  tg::Var k = record_unary(tape, "constants_only", c, vjp_must_not_run);
  CHECK_FALSE(k.requires_grad());
  tg::Var y = tg::sum(tg::exp(x) * k);
  tape.backward(y);
  check_grad_is_scaled_exp(x, 2.0);

  // The same with a consumer whose VJP offers a gradient to k too: the tape drops it, because k
  // requires none, instead of relying on the op to skip k.
  tg::Var e = tg::exp(x);
  tg::Var both = tape.record("pass_to_all", e.value().clone(), {e, k}, pass_to_all_vjp);
  tape.zero_grad();
  tape.backward(tg::sum(both));
  check_grad_is_scaled_exp(x, 1.0);
}

TEST_CASE("sweep skips nodes the output does not depend on") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  // A side branch of x, recorded before the output, that the output does not use.
  tg::Var side = record_unary(tape, "side_branch", x, vjp_must_not_run);
  tg::Var y = tg::sum(tg::exp(x));
  // A branch recorded after the output, which reads it.
  tg::Var after = record_unary(tape, "after_output", y, vjp_must_not_run);
  CHECK(side.requires_grad());
  CHECK(after.requires_grad());
  tape.backward(y);
  check_grad_is_scaled_exp(x, 1.0);
}

TEST_CASE("sweep runs a planted VJP on the path") {
  // The control for the two tests above: the same planted VJP raises once it is on the path.
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(record_unary(tape, "on_path", x, vjp_must_not_run));
  CHECK_THROWS_AS(tape.backward(y), std::logic_error);
  CHECK_THROWS_WITH(tape.backward(y), "the sweep ran the VJP of on_path");
}

TEST_CASE("sweep runs each VJP once") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  // The identity node feeds two ops, yet its VJP runs once, on the summed cotangent.
  tg::Var h = record_unary(tape, "identity", x, identity_vjp);
  tg::Var y = tg::sum(tg::exp(h) * h);
  identity_vjp_calls = 0;
  tape.backward(y);
  CHECK(identity_vjp_calls == 1);
  // d/dx Σ x·exp(x) = (1 + x)·exp(x).
  for (std::size_t i = 0; i < x_values.size(); ++i) {
    const double v = x_values[i];
    CHECK(x.grad().flat(static_cast<std::int64_t>(i)) == doctest::Approx((1 + v) * std::exp(v)).epsilon(1e-14));
  }
}

TEST_CASE("backward on a leaf gives the seed") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::full({}, 3.0));
  tape.backward(x);
  CHECK(x.grad().item() == 1.0);
  tg::Var v = tape.leaf(x_tensor());
  const tg::Tensor seed = tg::Tensor::full({2, 3}, 4.0);
  tape.backward(v, seed);
  CHECK(v.grad().to_vector() == std::vector<double>(6, 4.0));
  // The gradient is a copy, so accumulating into it later leaves the caller's seed alone.
  tape.backward(v, seed);
  CHECK(v.grad().to_vector() == std::vector<double>(6, 8.0));
  CHECK(seed.to_vector() == std::vector<double>(6, 4.0));
}

// ---- seeds -----------------------------------------------------------------------------------

TEST_CASE("explicit seed scales gradients") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::exp(x);
  const std::vector<double> seed_values = {1.0, -2.0, 0.5, 0.0, 3.0, -1.0};
  tape.backward(y, tg::Tensor::from_values({2, 3}, seed_values));
  for (std::size_t i = 0; i < x_values.size(); ++i) {
    CHECK(x.grad().flat(static_cast<std::int64_t>(i)) ==
          doctest::Approx(seed_values[i] * std::exp(x_values[i])).epsilon(1e-15));
  }
}

TEST_CASE("explicit seed on a scalar output") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(tg::exp(x));
  tape.backward(y, tg::Tensor::full({}, 3.0));
  check_grad_is_scaled_exp(x, 3.0);
}

TEST_CASE("backward on a non-scalar needs a seed") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::ones({2, 3}));
  tg::Var y = tg::exp(x);
  CHECK_THROWS_AS(tape.backward(y), tg::TapeError);
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("shape [2, 3]"));
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("pass a seed of the output's shape"));
  tape.backward(y, tg::Tensor::full({2, 3}, 2.0));
  CHECK(x.grad().at({1, 1}) == doctest::Approx(2.0 * std::exp(1.0)).epsilon(1e-15));
}

TEST_CASE("seed of the wrong shape raises ShapeError") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::exp(x);
  CHECK_THROWS_AS(tape.backward(y, tg::Tensor::ones({3, 2})), tg::ShapeError);
  CHECK_THROWS_WITH(tape.backward(y, tg::Tensor::ones({3, 2})),
                    "Tape::backward: the seed must have the output's shape and dtype, but got a seed of shape "
                    "[3, 2] and dtype f64 for an output of shape [2, 3] and dtype f64");
  tg::Var s = tg::sum(x);
  CHECK_THROWS_WITH(tape.backward(s, tg::Tensor::ones({1})), doctest::Contains("seed of shape [1]"));
  CHECK_THROWS_WITH(tape.backward(s, tg::Tensor::ones({1})), doctest::Contains("output of shape []"));
  CHECK(tape.size() == 3);
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("seed of the wrong dtype raises DtypeError") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::exp(x);
  CHECK_THROWS_AS(tape.backward(y, tg::Tensor::ones({2, 3}, tg::Dtype::f32)), tg::DtypeError);
  CHECK_THROWS_WITH(tape.backward(y, tg::Tensor::ones({2, 3}, tg::Dtype::f32)),
                    doctest::Contains("a seed of shape [2, 3] and dtype f32 for an output of shape [2, 3] and dtype f64"));
  CHECK_THROWS_AS(tape.backward(y, tg::Tensor::ones({2, 3}, tg::Dtype::boolean)), tg::DtypeError);
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("undefined seed raises ValueError") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::exp(x);
  CHECK_THROWS_AS(tape.backward(y, tg::Tensor()), tg::ValueError);
  CHECK_THROWS_WITH(tape.backward(y, tg::Tensor()), doctest::Contains("an undefined seed for an output of shape [2, 3]"));
}

// ---- leaves, constants and gradients ---------------------------------------------------------

TEST_CASE("backward on an output with no leaf raises") {
  tg::Tape tape;
  tg::Var c = tape.constant(x_tensor());
  tg::Var y = tg::sum(tg::exp(c));
  CHECK_FALSE(y.requires_grad());
  CHECK_THROWS_AS(tape.backward(y), tg::TapeError);
  CHECK_THROWS_WITH(tape.backward(y), "Tape::backward: the output must depend on at least one leaf, but got "
                                      "output node 2 (op sum) that depends on no leaf");
}

TEST_CASE("grad of a non-leaf raises") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var e = tg::exp(x);
  tg::Var y = tg::sum(e);
  tape.backward(y);
  CHECK_THROWS_AS(e.grad(), tg::TapeError);
  CHECK_THROWS_WITH(e.grad(), "Var::grad: gradients are kept for leaves only (made with Tape::leaf), but got a "
                              "Var recorded by op exp (node 1)");
  CHECK_THROWS_WITH(y.grad(), doctest::Contains("op sum (node 2)"));
}

TEST_CASE("constant gets no gradient") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var c = tape.constant(tg::Tensor::from_values({2, 3}, {6, 5, 4, 3, 2, 1}));
  CHECK_FALSE(c.requires_grad());
  CHECK_FALSE(c.is_leaf());
  CHECK(x.requires_grad());
  CHECK(x.is_leaf());
  tape.backward(tg::sum(x * c));
  CHECK(x.grad().to_vector() == std::vector<double>{6, 5, 4, 3, 2, 1});
  CHECK_THROWS_AS(c.grad(), tg::TapeError);
  CHECK_THROWS_WITH(c.grad(), doctest::Contains("op constant (node 1)"));
  CHECK(c.value().to_vector() == std::vector<double>{6, 5, 4, 3, 2, 1});
}

TEST_CASE("leaf must be floating and defined") {
  tg::Tape tape;
  CHECK_THROWS_AS(tape.leaf(tg::Tensor::ones({2}, tg::Dtype::boolean)), tg::DtypeError);
  CHECK_THROWS_WITH(tape.leaf(tg::Tensor::ones({2}, tg::Dtype::boolean)),
                    doctest::Contains("dtype boolean with shape [2]"));
  CHECK_THROWS_AS(tape.leaf(tg::Tensor()), tg::ValueError);
  CHECK_THROWS_AS(tape.constant(tg::Tensor()), tg::ValueError);
  CHECK(tape.size() == 0);
  // A boolean tensor is a valid constant: masks are recorded this way.
  CHECK_NOTHROW(tape.constant(tg::Tensor::ones({2}, tg::Dtype::boolean)));
}

TEST_CASE("gradients accumulate until zero_grad") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(tg::exp(x));
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
  tape.backward(y);
  tape.backward(y);
  check_grad_is_scaled_exp(x, 2.0);
  tape.zero_grad();
  CHECK(tape.size() == 3);
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
  tape.backward(y);
  check_grad_is_scaled_exp(x, 1.0);
}

// ---- failures inside the sweep ---------------------------------------------------------------

TEST_CASE("raising VJP leaves leaf gradients as before") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var plain = tg::sum(tg::exp(x));
  tape.backward(plain);
  const tg::Tensor before = x.grad().clone();

  // The planted VJP adds ones to x's gradient and then throws, after the mul VJP has run.
  tg::Var failing = tg::sum(tg::exp(x) * record_unary(tape, "accumulate_then_throw", x, accumulate_then_throw_vjp));
  CHECK_THROWS_AS(tape.backward(failing), std::runtime_error);
  CHECK(x.grad().to_vector() == before.to_vector());

  // The tape still works: a second sweep adds to the gradient from before the failure.
  tape.backward(plain);
  check_grad_is_scaled_exp(x, 2.0);
}

TEST_CASE("raising VJP on a first sweep leaves no gradient") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var failing = tg::sum(tg::exp(x) * record_unary(tape, "accumulate_then_throw", x, accumulate_then_throw_vjp));
  CHECK_THROWS_AS(tape.backward(failing), std::runtime_error);
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("sweep rejects a gradient of the wrong shape") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(record_unary(tape, "wrong_shape_op", x, wrong_shape_vjp));
  CHECK_THROWS_AS(tape.backward(y), tg::ShapeError);
  CHECK_THROWS_WITH(tape.backward(y), "wrong_shape_op: a VJP must return an input gradient with the input's shape, "
                                      "but got a gradient of shape [3, 2] for input 0 of shape [2, 3]");
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("sweep rejects a gradient of the wrong dtype") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(record_unary(tape, "wrong_dtype_op", x, wrong_dtype_vjp));
  CHECK_THROWS_AS(tape.backward(y), tg::DtypeError);
  CHECK_THROWS_WITH(tape.backward(y), "wrong_dtype_op: a VJP must return an input gradient with the input's dtype, "
                                      "but got a gradient of dtype f32 for input 0 of dtype f64");
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("sweep rejects an undefined gradient and a wrong position") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var undefined = tg::sum(record_unary(tape, "undefined_gradient_op", x, undefined_gradient_vjp));
  CHECK_THROWS_AS(tape.backward(undefined), tg::ShapeError);
  CHECK_THROWS_WITH(tape.backward(undefined), doctest::Contains("undefined_gradient_op: a VJP must return"));
  CHECK_THROWS_WITH(tape.backward(undefined), doctest::Contains("a gradient of shape undefined for input 0"));

  tg::Var positioned = tg::sum(record_unary(tape, "wrong_position_op", x, wrong_position_vjp));
  CHECK_THROWS_AS(tape.backward(positioned), tg::TapeError);
  CHECK_THROWS_WITH(tape.backward(positioned),
                    "wrong_position_op: a VJP input position must be in [0, 1), but got position 1");
}

TEST_CASE("op without a VJP on the path raises") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(record_unary(tape, "not_differentiable", x, nullptr));
  CHECK(y.requires_grad());
  CHECK_THROWS_AS(tape.backward(y), tg::TapeError);
  CHECK_THROWS_WITH(tape.backward(y), "not_differentiable: an op on the path from a leaf to the output needs a "
                                      "VJP, but got node 1 with no VJP");
  CHECK(x.grad().to_vector() == std::vector<double>(6, 0.0));
}

TEST_CASE("anomaly mode rejects an op and keeps the tape") {
  tg::Tape tape(tg::TapeOptions{.detect_anomaly = true});
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {1.0, -1.0}));
  CHECK_THROWS_AS(tg::log(x), tg::ValueError);
  CHECK_THROWS_WITH(tg::log(x), doctest::Contains("log: anomaly mode"));
  CHECK(tape.size() == 1);
  tape.backward(tg::sum(tg::exp(x)));
  CHECK(x.grad().flat(1) == doctest::Approx(std::exp(-1.0)).epsilon(1e-15));
}

// ---- handles ---------------------------------------------------------------------------------

TEST_CASE("stale handle after clear raises") {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::ones({2}));
  tape.clear();
  CHECK_THROWS_AS(x.value(), tg::TapeError);
  CHECK_THROWS_WITH(tg::exp(x), doctest::Contains("exp: a Var is stale"));
}

TEST_CASE("every use of a stale handle raises") {
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  tg::Var y = tg::sum(tg::exp(x));
  tape.backward(y);
  tape.clear();
  // Record as many nodes again, so the stale indices point at live nodes: only the generation
  // distinguishes the handles.
  tg::Var fresh = tape.leaf(x_tensor());
  tg::Var fresh_y = tg::sum(tg::exp(fresh));
  REQUIRE(tape.size() == 3);

  CHECK_THROWS_AS(x.value(), tg::TapeError);
  CHECK_THROWS_WITH(x.value(), doctest::Contains("Var::value: a Var is stale"));
  CHECK_THROWS_WITH(x.grad(), doctest::Contains("Var::grad: a Var is stale"));
  CHECK_THROWS_WITH(x.shape(), doctest::Contains("a Var is stale"));
  CHECK_THROWS_WITH(x.dtype(), doctest::Contains("a Var is stale"));
  CHECK_THROWS_WITH(x.requires_grad(), doctest::Contains("Var::requires_grad: a Var is stale"));
  CHECK_THROWS_WITH(x.is_leaf(), doctest::Contains("Var::is_leaf: a Var is stale"));
  CHECK_THROWS_WITH(x.op(), doctest::Contains("Var::op: a Var is stale"));
  CHECK_THROWS_WITH(x.value(), doctest::Contains("stale handle (node 0 from before the last clear)"));

  CHECK_THROWS_AS(tg::exp(x), tg::TapeError);
  CHECK_THROWS_WITH(tg::log(x), doctest::Contains("log: a Var is stale"));
  CHECK_THROWS_WITH(tg::sum(x), doctest::Contains("sum: a Var is stale"));
  CHECK_THROWS_WITH(x * x, doctest::Contains("mul: a Var is stale"));
  CHECK_THROWS_WITH(fresh * x, doctest::Contains("mul: a Var is stale"));
  CHECK_THROWS_WITH(x * fresh, doctest::Contains("mul: a Var is stale"));
  CHECK_THROWS_AS(tape.backward(y), tg::TapeError);
  CHECK_THROWS_WITH(tape.backward(y), doctest::Contains("Tape::backward: a Var is stale"));
  CHECK_THROWS_WITH(tape.backward(y, tg::Tensor::ones({})), doctest::Contains("a Var is stale"));
  CHECK_THROWS_WITH(tape.record("custom", x_tensor(), {x}, nullptr), doctest::Contains("custom: a Var is stale"));

  // Nothing above recorded a node, and the live handles still work.
  CHECK(tape.size() == 3);
  tape.backward(fresh_y);
  check_grad_is_scaled_exp(fresh, 1.0);
}

TEST_CASE("handle past the live nodes is stale") {
  tg::Tape tape;
  tape.leaf(x_tensor());
  tg::Var late = tape.leaf(x_tensor());
  tape.clear();
  tape.leaf(x_tensor());
  // Index 1 is beyond the one live node.
  CHECK_THROWS_WITH(late.value(), doctest::Contains("node 1 from before the last clear"));
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

TEST_CASE("Vars of two tapes elsewhere raise") {
  tg::Tape first;
  tg::Tape second;
  tg::Var a = first.leaf(x_tensor());
  second.leaf(x_tensor());
  tg::Var b = second.leaf(x_tensor());
  CHECK_THROWS_WITH(b * a, doctest::Contains("Vars of two different tapes: input 0 is node 1 of one tape, input 1 is node 0 of another"));
  tg::Var y = tg::sum(tg::exp(a));
  CHECK_THROWS_AS(second.backward(y), tg::TapeError);
  CHECK_THROWS_WITH(second.backward(y), "Tape::backward: all Vars of one op must be on the same tape, but got a "
                                        "Var (node 2) of another tape");
  CHECK_THROWS_AS(second.record("custom", x_tensor(), {a}, nullptr), tg::TapeError);
  CHECK_THROWS_WITH(second.record("custom", x_tensor(), {b, a}, nullptr), doctest::Contains("custom: all Vars"));
  CHECK(first.size() == 3);
  CHECK(second.size() == 2);
}

TEST_CASE("default-constructed Var raises") {
  const tg::Var var;
  CHECK_FALSE(var.defined());
  CHECK_THROWS_AS(var.value(), tg::TapeError);
  CHECK_THROWS_WITH(var.value(), doctest::Contains("a default-constructed Var"));
  CHECK_THROWS_AS(tg::exp(var), tg::TapeError);
  tg::Tape tape;
  tg::Var x = tape.leaf(x_tensor());
  CHECK_THROWS_AS(x * var, tg::TapeError);
  CHECK_THROWS_WITH(x * var, doctest::Contains("a default-constructed Var"));
  CHECK(tape.size() == 1);
}

// ---- memory ----------------------------------------------------------------------------------

namespace {

// Runs `steps` training steps of y = Σ x·exp(x) on `tape`, checking the gradient, and returns the
// number of system allocations after each step.
std::vector<std::int64_t> run_steps(tg::Tape& tape, const tg::Tensor& x0, int steps) {
  std::vector<std::int64_t> allocations;
  for (int step = 0; step < steps; ++step) {
    tg::Var x = tape.leaf(x0);
    tg::Var y = tg::sum(tg::exp(x) * x);
    tape.backward(y);
    const double v = x0.flat(5);
    CHECK(x.grad().flat(5) == doctest::Approx((1 + v) * std::exp(v)).epsilon(1e-14));
    tape.clear();
    allocations.push_back(tg::memory_stats().system_allocations);
  }
  return allocations;
}

}  // namespace

TEST_CASE("steady loop stops allocating") {
  const tg::Tensor x0 = tg::Tensor::randn({16, 8}, 3);
  tg::Tape tape;
  const std::vector<std::int64_t> allocations = run_steps(tape, x0, 30);
  // The first steps fill the pool; from then on every buffer comes from it.
  CHECK(allocations[29] == allocations[3]);
  CHECK(allocations[29] == allocations[10]);
}

TEST_CASE("fresh tape per step keeps allocating") {
  // The control for the test above: without a tape to reuse, every step allocates, so the
  // counter that test reads does move when buffers are not reused.
  const tg::Tensor x0 = tg::Tensor::randn({16, 8}, 3);
  std::vector<std::int64_t> allocations;
  for (int step = 0; step < 5; ++step) {
    tg::Tape tape;
    allocations.push_back(run_steps(tape, x0, 1).back());
  }
  CHECK(allocations[4] > allocations[3]);
  CHECK(allocations[3] > allocations[2]);
}

TEST_CASE("buffers return to the system with the tape") {
  const std::int64_t live_before = tg::memory_stats().live_bytes;
  tg::Tensor gradient;
  {
    tg::Tape tape;
    tg::Var x = tape.leaf(x_tensor());
    tape.backward(tg::sum(tg::exp(x)));
    gradient = x.grad();
  }
  // The gradient outlives its tape and still reads correctly.
  for (std::size_t i = 0; i < x_values.size(); ++i) {
    CHECK(gradient.flat(static_cast<std::int64_t>(i)) == doctest::Approx(std::exp(x_values[i])).epsilon(1e-15));
  }
  gradient = tg::Tensor();
  CHECK(tg::memory_stats().live_bytes == live_before);
}
