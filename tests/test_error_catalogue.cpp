// The catalogue of bad input: every public function of tapegrad.hpp with every class of invalid
// argument that applies to it, one table per family of functions.
//
// A rejection row names the argument class, the call, the exception type, the op that the message
// must start with and substrings that the message must contain (the offending values and shapes).
// The runner also checks that the rejected call left the tape as it was: the same node count, and
// a backward pass over the graph recorded before still gives the closed-form gradient.
//
// An accepted row covers an argument class that is valid for a function, such as an empty tensor
// for sum, and checks the valid result. A class that a function has no argument for is left out:
// exp has no mask, and a one-input op cannot mix tapes.
//
// The argument classes are shape, dtype, axis, mask, temperature, option, value and index. The
// class "stale" is a Var used after Tape::clear(), and "foreign" puts Vars of two tapes in one op.
// The class "undefined" is a default-constructed Var or Tensor, and "empty" a zero extent.
//
// The last test case reads docs/errors.md and checks each sample message against the message the
// library raises, so that page cannot drift from the code.
#include <doctest/doctest.h>

#include <cmath>
#include <cstdint>
#include <fstream>
#include <functional>
#include <limits>
#include <map>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <typeinfo>
#include <vector>

#include <fmt/format.h>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

constexpr double infinity = std::numeric_limits<double>::infinity();
constexpr double not_a_number = std::numeric_limits<double>::quiet_NaN();

// ---- The fixture every row runs on --------------------------------------------------------------

// A tape with a recorded graph and Vars of every kind a row needs. Each row gets a new fixture.
struct Fixture {
  tg::Tape tape;
  tg::Tape other;
  tg::Var stale;    // node 0 of tape from before tape.clear()
  tg::Var x;        // leaf [2, 3] f64 with values 0.1 … 0.6
  tg::Var y;        // leaf [3, 2] f64
  tg::Var x32;      // leaf [2, 3] f32
  tg::Var flags;    // constant [2, 3] boolean
  tg::Var empty;    // leaf [0, 3] f64
  tg::Var scalar;   // leaf [] f64
  tg::Var z;        // leaf [4, 3] f64, two views of two samples for NT-Xent
  tg::Var bool_z;   // constant [4, 3] boolean
  tg::Var odd;      // leaf [3, 3] f64, an odd row count for NT-Xent
  tg::Var no_features;  // leaf [4, 0] f64
  tg::Var wide;     // leaf [0, 2^31] f64, an inner extent over the BLAS integer
  tg::Var tall;     // leaf [2^31, 0] f64
  tg::Var three;    // constant [] f64 with value 3, which depends on no leaf
  tg::Var truth;    // constant [] boolean
  tg::Var foreign;  // leaf [2, 3] f64 on `other`
  tg::Var loss;     // sum(x · x), recorded last
  tg::Tensor mask;  // [2, 3] boolean, row 1 all false

  Fixture() {
    stale = tape.leaf(tg::Tensor::ones({2, 3}));
    tape.clear();
    x = tape.leaf(tg::Tensor::from_values({2, 3}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6}));
    y = tape.leaf(tg::Tensor::from_values({3, 2}, {1, 2, 3, 4, 5, 6}));
    x32 = tape.leaf(tg::Tensor::from_values({2, 3}, {1, 2, 3, 4, 5, 6}, tg::Dtype::f32));
    flags = tape.constant(tg::Tensor::from_values({2, 3}, {1, 0, 1, 0, 1, 0}, tg::Dtype::boolean));
    empty = tape.leaf(tg::Tensor::zeros({0, 3}));
    scalar = tape.leaf(tg::Tensor::full({}, 2.0));
    z = tape.leaf(tg::Tensor::from_values({4, 3}, {1, 0, 0, 0, 1, 0, 1, 1, 0, 0, 1, 1}));
    bool_z = tape.constant(tg::Tensor::ones({4, 3}, tg::Dtype::boolean));
    odd = tape.leaf(tg::Tensor::ones({3, 3}));
    no_features = tape.leaf(tg::Tensor::zeros({4, 0}));
    const std::int64_t over_blas = std::int64_t{1} << 31;
    wide = tape.leaf(tg::Tensor::zeros({0, over_blas}));
    tall = tape.leaf(tg::Tensor::zeros({over_blas, 0}));
    three = tape.constant(tg::Tensor::full({}, 3.0));
    truth = tape.constant(tg::Tensor::full({}, 1.0, tg::Dtype::boolean));
    foreign = other.leaf(tg::Tensor::ones({2, 3}));
    loss = tg::sum(x * x);
    mask = tg::Tensor::from_values({2, 3}, {1, 0, 1, 0, 0, 0}, tg::Dtype::boolean);
  }
};

// Checks that the fixture's tapes still hold the nodes they held before, and that the graph
// recorded on `tape` still differentiates: d/dx sum(x · x) = 2x.
void check_tape_intact(Fixture& f, std::int64_t size_before, std::int64_t other_size_before) {
  CHECK(f.tape.size() == size_before);
  CHECK(f.other.size() == other_size_before);
  CHECK(f.tape.node(f.tape.size() - 1).op == "sum");
  f.tape.backward(f.loss);
  const std::vector<double> expected = {0.2, 0.4, 0.6, 0.8, 1.0, 1.2};
  const std::vector<double> grad = f.x.grad().to_vector();
  REQUIRE(grad.size() == expected.size());
  for (std::size_t i = 0; i < grad.size(); ++i) {
    CHECK(grad[i] == doctest::Approx(expected[i]).epsilon(1e-15));
  }
}

// ---- Rows and their runners ---------------------------------------------------------------------

enum class Kind { shape, dtype, value, tape };

std::string_view kind_name(Kind kind) {
  switch (kind) {
    case Kind::shape: return "ShapeError";
    case Kind::dtype: return "DtypeError";
    case Kind::value: return "ValueError";
    case Kind::tape: return "TapeError";
  }
  return "unknown";
}

// The most derived tapegrad type of an exception, or nothing for the base Error itself.
std::optional<Kind> kind_of(const tg::Error& error) {
  if (dynamic_cast<const tg::ShapeError*>(&error) != nullptr) {
    return Kind::shape;
  }
  if (dynamic_cast<const tg::DtypeError*>(&error) != nullptr) {
    return Kind::dtype;
  }
  if (dynamic_cast<const tg::ValueError*>(&error) != nullptr) {
    return Kind::value;
  }
  if (dynamic_cast<const tg::TapeError*>(&error) != nullptr) {
    return Kind::tape;
  }
  return std::nullopt;
}

struct Rejection {
  std::string_view argument;              // the argument class
  std::string_view call;                  // the call, as a reader would write it
  Kind kind;                              // the exception type
  std::string_view op;                    // the message starts with "<op>: " and Error::op() is op
  std::vector<std::string_view> details;  // substrings of the message: values, shapes, dtypes
  std::function<void(Fixture&)> run;
};

struct Accepted {
  std::string_view argument;
  std::string_view call;
  std::function<void(Fixture&)> check;  // makes the call and checks the valid result
};

// The error a call raised, or what it did instead.
struct Outcome {
  bool raised_error = false;
  std::optional<Kind> kind;
  std::string op;
  std::string message;
  std::string other;  // a non-tapegrad exception, or "no exception"
};

Outcome run_call(const std::function<void(Fixture&)>& run, Fixture& f) {
  Outcome outcome;
  try {
    run(f);
    outcome.other = "no exception";
  } catch (const tg::Error& error) {
    outcome.raised_error = true;
    outcome.kind = kind_of(error);
    outcome.op = error.op();
    outcome.message = error.what();
  } catch (const std::exception& error) {
    outcome.other = fmt::format("untyped exception {}: {}", typeid(error).name(), error.what());
  }
  return outcome;
}

void check_rejections(const std::vector<Rejection>& table) {
  for (const Rejection& row : table) {
    const std::string label = fmt::format("[{}] {}", row.argument, row.call);
    INFO(label);
    Fixture f;
    const std::int64_t size_before = f.tape.size();
    const std::int64_t other_size_before = f.other.size();
    const Outcome outcome = run_call(row.run, f);
    CAPTURE(outcome.message);
    CAPTURE(outcome.other);
    REQUIRE(outcome.raised_error);
    CHECK(kind_name(outcome.kind.value_or(Kind::tape)) == kind_name(row.kind));
    CHECK(outcome.kind.has_value());
    CHECK(outcome.op == row.op);
    CHECK(outcome.message.starts_with(fmt::format("{}: ", row.op)));
    CHECK(outcome.message.find(", but got ") != std::string::npos);
    for (std::string_view detail : row.details) {
      CAPTURE(detail);
      CHECK(outcome.message.find(detail) != std::string::npos);
    }
    check_tape_intact(f, size_before, other_size_before);
  }
}

void check_accepted(const std::vector<Accepted>& table) {
  for (const Accepted& row : table) {
    const std::string label = fmt::format("[{}] {}", row.argument, row.call);
    INFO(label);
    Fixture f;
    CHECK_NOTHROW(row.check(f));
  }
}

std::vector<double> values_of(const tg::Var& var) { return var.value().to_vector(); }

}  // namespace

// ---- Tape and Var -------------------------------------------------------------------------------

TEST_CASE("catalogue: tape and var") {
  using K = Kind;
  check_rejections({
      {"undefined", "tape.leaf(Tensor())", K::value, "Tape::leaf", {"an undefined tensor"},
       [](Fixture& f) { f.tape.leaf(tg::Tensor()); }},
      {"dtype", "tape.leaf(boolean [2, 3])", K::dtype, "Tape::leaf", {"dtype boolean with shape [2, 3]"},
       [](Fixture& f) { f.tape.leaf(tg::Tensor::zeros({2, 3}, tg::Dtype::boolean)); }},
      {"undefined", "tape.constant(Tensor())", K::value, "Tape::constant", {"an undefined tensor"},
       [](Fixture& f) { f.tape.constant(tg::Tensor()); }},
      {"shape", "tape.backward(x [2, 3])", K::tape, "Tape::backward", {"an output of shape [2, 3]"},
       [](Fixture& f) { f.tape.backward(f.x); }},
      {"stale", "tape.backward(stale)", K::tape, "Tape::backward", {"stale handle (node 0"},
       [](Fixture& f) { f.tape.backward(f.stale); }},
      {"foreign", "tape.backward(Var of other)", K::tape, "Tape::backward", {"of another tape"},
       [](Fixture& f) { f.tape.backward(f.foreign); }},
      {"undefined", "tape.backward(Var())", K::tape, "Tape::backward", {"a default-constructed Var"},
       [](Fixture& f) { f.tape.backward(tg::Var()); }},
      {"value", "tape.backward(sum of a constant)", K::tape, "Tape::backward", {"depends on no leaf"},
       [](Fixture& f) { f.tape.backward(f.three); }},
      {"dtype", "tape.backward(boolean scalar constant)", K::dtype, "Tape::backward", {"dtype boolean"},
       [](Fixture& f) { f.tape.backward(f.truth); }},
      {"undefined", "tape.backward(x, Tensor())", K::value, "Tape::backward",
       {"an undefined seed for an output of shape [2, 3] and dtype f64"},
       [](Fixture& f) { f.tape.backward(f.x, tg::Tensor()); }},
      {"shape", "tape.backward(x, seed [3, 2])", K::shape, "Tape::backward",
       {"a seed of shape [3, 2] and dtype f64 for an output of shape [2, 3] and dtype f64"},
       [](Fixture& f) { f.tape.backward(f.x, tg::Tensor::ones({3, 2})); }},
      {"dtype", "tape.backward(x, seed f32)", K::dtype, "Tape::backward",
       {"a seed of shape [2, 3] and dtype f32 for an output of shape [2, 3] and dtype f64"},
       [](Fixture& f) { f.tape.backward(f.x, tg::Tensor::ones({2, 3}, tg::Dtype::f32)); }},
      {"dtype", "tape.backward(flags, boolean seed)", K::dtype, "Tape::backward", {"dtype boolean"},
       [](Fixture& f) { f.tape.backward(f.flags, tg::Tensor::ones({2, 3}, tg::Dtype::boolean)); }},
      {"index", "tape.node(99)", K::tape, "Tape::node", {"[0, 16)", "index 99"},
       [](Fixture& f) { f.tape.node(99); }},
      {"index", "tape.node(-1)", K::tape, "Tape::node", {"index -1"}, [](Fixture& f) { f.tape.node(-1); }},
      {"shape", "tape.allocate([-1, 2])", K::shape, "Tensor::empty", {"shape [-1, 2]"},
       [](Fixture& f) { f.tape.allocate({-1, 2}, tg::Dtype::f64); }},
      {"stale", "tape.record(\"custom\", …, {stale})", K::tape, "custom", {"stale handle (node 0"},
       [](Fixture& f) { f.tape.record("custom", tg::Tensor::ones({2, 3}), {f.stale}, nullptr); }},
      {"foreign", "tape.record(\"custom\", …, {x, Var of other})", K::tape, "custom", {"of another tape"},
       [](Fixture& f) { f.tape.record("custom", tg::Tensor::ones({2, 3}), {f.x, f.foreign}, nullptr); }},
      {"stale", "tape.check_handle(\"custom\", stale)", K::tape, "custom", {"stale handle (node 0"},
       [](Fixture& f) { f.tape.check_handle("custom", f.stale); }},
      {"empty", "common_tape(\"custom\", {})", K::tape, "custom", {"no Vars"},
       [](Fixture&) { tg::common_tape("custom", std::span<const tg::Var>()); }},
      {"foreign", "common_tape(\"custom\", {x, Var of other})", K::tape, "custom",
       {"Vars of two different tapes: input 0 is node 0 of one tape, input 1 is node 0 of another"},
       [](Fixture& f) { tg::common_tape("custom", {f.x, f.foreign}); }},
      {"stale", "stale.value()", K::tape, "Var::value", {"stale handle (node 0"},
       [](Fixture& f) { (void)f.stale.value(); }},
      {"stale", "stale.grad()", K::tape, "Var::grad", {"stale handle (node 0"},
       [](Fixture& f) { (void)f.stale.grad(); }},
      {"stale", "stale.shape()", K::tape, "Var::value", {"stale handle (node 0"},
       [](Fixture& f) { (void)f.stale.shape(); }},
      {"stale", "stale.requires_grad()", K::tape, "Var::requires_grad", {"stale handle (node 0"},
       [](Fixture& f) { (void)f.stale.requires_grad(); }},
      {"stale", "stale.is_leaf()", K::tape, "Var::is_leaf", {"stale handle (node 0"},
       [](Fixture& f) { (void)f.stale.is_leaf(); }},
      {"stale", "stale.op()", K::tape, "Var::op", {"stale handle (node 0"}, [](Fixture& f) { (void)f.stale.op(); }},
      {"value", "loss.grad() of a non-leaf", K::tape, "Var::grad", {"a Var recorded by op sum (node 15)"},
       [](Fixture& f) { (void)f.loss.grad(); }},
      {"undefined", "Var().value()", K::tape, "Var", {"a default-constructed Var"},
       [](Fixture&) { (void)tg::Var().value(); }},
      {"undefined", "Var().tape()", K::tape, "Var", {"a default-constructed Var"},
       [](Fixture&) { (void)tg::Var().tape(); }},
  });
  check_accepted({
      {"empty", "tape.leaf([0, 3]), backward with an empty seed", [](Fixture& f) {
         tg::Var e = f.tape.leaf(tg::Tensor::zeros({0, 3}));
         f.tape.backward(tg::exp(e), tg::Tensor::zeros({0, 3}));
         CHECK(e.grad().shape() == tg::Shape{0, 3});
       }},
      {"dtype", "tape.constant(boolean)", [](Fixture& f) {
         CHECK(f.flags.dtype() == tg::Dtype::boolean);
         CHECK_FALSE(f.flags.requires_grad());
       }},
      {"dtype", "tape.leaf(f32), backward of sum", [](Fixture& f) {
         f.tape.backward(tg::sum(f.x32));
         CHECK(f.x32.grad().dtype() == tg::Dtype::f32);
         CHECK(f.x32.grad().to_vector() == std::vector<double>(6, 1.0));
       }},
      {"foreign", "a Var of another tape in a one-input op records on that tape", [](Fixture& f) {
         tg::Var s = tg::sum(f.foreign);
         CHECK(&s.tape() == &f.other);
         f.other.backward(s);
         CHECK(f.foreign.grad().to_vector() == std::vector<double>(6, 1.0));
       }},
      {"stale", "a Var recorded after clear() is live", [](Fixture& f) {
         CHECK(f.x.value().at({1, 2}) == 0.6);
         CHECK(f.stale.defined());
       }},
      {"undefined", "Var().defined() is false", [](Fixture&) { CHECK_FALSE(tg::Var().defined()); }},
  });
}

// ---- Tensor, Shape and shape helpers ------------------------------------------------------------

TEST_CASE("catalogue: tensor and shape") {
  using K = Kind;
  const double one_up = std::nextafter(1.0, 2.0);
  const double two_up = std::nextafter(one_up, 2.0);
  check_rejections({
      {"shape", "Tensor::zeros([-1, 2])", K::shape, "Tensor::empty", {"shape [-1, 2]"},
       [](Fixture&) { tg::Tensor::zeros({-1, 2}); }},
      {"shape", "Tensor::ones([2^40, 2^40])", K::shape, "Tensor::empty",
       {"must fit in int64", "shape [1099511627776, 1099511627776]"},
       [](Fixture&) { tg::Tensor::ones({std::int64_t{1} << 40, std::int64_t{1} << 40}); }},
      {"shape", "Tensor::empty([2^62]) f64", K::shape, "Tensor::empty",
       {"shape [4611686018427387904] (4611686018427387904 elements) and dtype f64"},
       [](Fixture&) { tg::Tensor::empty({std::int64_t{1} << 62}); }},
      {"shape", "Tensor::full([-3], 1)", K::shape, "Tensor::empty", {"shape [-3]"},
       [](Fixture&) { tg::Tensor::full({-3}, 1.0); }},
      {"shape", "Tensor::from_values([2, 2], 3 values)", K::shape, "Tensor::from_values",
       {"3 values for shape [2, 2] (4 elements)"},
       [](Fixture&) { tg::Tensor::from_values({2, 2}, {1, 2, 3}); }},
      {"shape", "Tensor::from_values([-2], {})", K::shape, "Tensor::from_values", {"shape [-2]"},
       [](Fixture&) { tg::Tensor::from_values({-2}, std::span<const double>()); }},
      {"shape", "Tensor::randn([-1], 0)", K::shape, "Tensor::randn", {"shape [-1]"},
       [](Fixture&) { tg::Tensor::randn({-1}, 0); }},
      {"value", "Tensor::uniform([2], 1, 1)", K::value, "Tensor::uniform", {"low 1 and high 1"},
       [](Fixture&) { tg::Tensor::uniform({2}, 1.0, 1.0, 0); }},
      {"value", "Tensor::uniform([2], 0, inf)", K::value, "Tensor::uniform", {"low 0 and high inf"},
       [](Fixture&) { tg::Tensor::uniform({2}, 0.0, infinity, 0); }},
      {"value", "Tensor::uniform([2], nan, 1)", K::value, "Tensor::uniform", {"low nan and high 1"},
       [](Fixture&) { tg::Tensor::uniform({2}, not_a_number, 1.0, 0); }},
      {"value", "Tensor::uniform f32 range without a float", K::value, "Tensor::uniform",
       {"low 1.0000000000000002 and high 1.0000000000000004"},
       [one_up, two_up](Fixture&) { tg::Tensor::uniform({2}, one_up, two_up, 0, tg::Dtype::f32); }},
      {"shape", "Tensor::uniform([-1], 0, 1)", K::shape, "Tensor::uniform", {"shape [-1]"},
       [](Fixture&) { tg::Tensor::uniform({-1}, 0.0, 1.0, 0); }},
      {"axis", "t.size(2) of [2, 3]", K::shape, "Tensor::size", {"[-2, 2)", "axis 2"},
       [](Fixture& f) { (void)f.x.value().size(2); }},
      {"shape", "t.item() of [2, 3]", K::shape, "Tensor::item", {"shape [2, 3] (6 elements)"},
       [](Fixture& f) { (void)f.x.value().item(); }},
      {"empty", "t.item() of [0, 3]", K::shape, "Tensor::item", {"shape [0, 3] (0 elements)"},
       [](Fixture& f) { (void)f.empty.value().item(); }},
      {"undefined", "Tensor().item()", K::value, "Tensor::item", {"an undefined tensor"},
       [](Fixture&) { (void)tg::Tensor().item(); }},
      {"index", "t.at({0}) of [2, 3]", K::shape, "Tensor::at", {"an index of length 1 ([0]) for shape [2, 3]"},
       [](Fixture& f) { (void)f.x.value().at({0}); }},
      {"index", "t.at({0, 3}) of [2, 3]", K::shape, "Tensor::at", {"index [0, 3] for shape [2, 3] (axis 1)"},
       [](Fixture& f) { (void)f.x.value().at({0, 3}); }},
      {"index", "t.at({-3, 0}) of [2, 3]", K::shape, "Tensor::at", {"index [-3, 0] for shape [2, 3] (axis 0)"},
       [](Fixture& f) { (void)f.x.value().at({-3, 0}); }},
      {"undefined", "Tensor().at({0})", K::value, "Tensor::at", {"an undefined tensor"},
       [](Fixture&) { (void)tg::Tensor().at({0}); }},
      {"index", "t.flat(6) of [2, 3]", K::shape, "Tensor::flat", {"[0, 6)", "index 6 for shape [2, 3]"},
       [](Fixture& f) { (void)f.x.value().flat(6); }},
      {"index", "t.flat(-1)", K::shape, "Tensor::flat", {"index -1 for shape [2, 3]"},
       [](Fixture& f) { (void)f.x.value().flat(-1); }},
      {"dtype", "t.data<float>() of f64", K::dtype, "Tensor::data", {"data<f32>() on a tensor of dtype f64"},
       [](Fixture& f) { (void)f.x.value().data<float>(); }},
      {"dtype", "t.data<double>() of boolean", K::dtype, "Tensor::data",
       {"data<f64>() on a tensor of dtype boolean"}, [](Fixture& f) { (void)f.flags.value().data<double>(); }},
      {"undefined", "Tensor().data<double>()", K::value, "Tensor::data", {"an undefined tensor"},
       [](Fixture&) { (void)tg::Tensor().data<double>(); }},
      {"undefined", "Tensor().to_vector()", K::value, "Tensor::to_vector", {"an undefined tensor"},
       [](Fixture&) { (void)tg::Tensor().to_vector(); }},
      {"undefined", "Tensor().clone()", K::value, "Tensor::clone", {"an undefined tensor"},
       [](Fixture&) { (void)tg::Tensor().clone(); }},
      {"undefined", "Tensor().to(f32)", K::value, "Tensor::to", {"an undefined tensor"},
       [](Fixture&) { (void)tg::Tensor().to(tg::Dtype::f32); }},
      {"shape", "t.reshape([4]) of [2, 3]", K::shape, "Tensor::reshape",
       {"shape [2, 3] (6 elements) to [4] (4 elements)"},
       [](Fixture& f) { (void)f.x.value().reshape({4}); }},
      {"shape", "t.reshape([-6]) of [2, 3]", K::shape, "Tensor::reshape", {"shape [-6]"},
       [](Fixture& f) { (void)f.x.value().reshape({-6}); }},
      {"undefined", "Tensor().reshape([1])", K::value, "Tensor::reshape", {"an undefined tensor"},
       [](Fixture&) { (void)tg::Tensor().reshape({1}); }},
      {"shape", "Shape with 9 axes", K::shape, "Shape", {"at most 8 axes", "9 axes"},
       [](Fixture&) { (void)tg::Shape{1, 1, 1, 1, 1, 1, 1, 1, 1}; }},
      {"shape", "push_back onto 8 axes", K::shape, "Shape", {"one more axis on [1, 1, 1, 1, 1, 1, 1, 1]"},
       [](Fixture&) {
         tg::Shape shape{1, 1, 1, 1, 1, 1, 1, 1};
         shape.push_back(1);
       }},
      {"axis", "normalize_axis(\"custom\", 3, rank 2)", K::shape, "custom", {"[-2, 2)", "axis 3"},
       [](Fixture&) { tg::normalize_axis("custom", 3, 2); }},
      {"shape", "broadcast_shapes(\"custom\", [2], [3])", K::shape, "custom", {"[2] and [3]"},
       [](Fixture&) { tg::broadcast_shapes("custom", {2}, {3}); }},
      {"shape", "check_extents(\"custom\", [2, -1])", K::shape, "custom", {"shape [2, -1]"},
       [](Fixture&) { tg::check_extents("custom", {2, -1}); }},
  });
  check_accepted({
      {"empty", "Tensor::zeros([0, 3])", [](Fixture&) {
         const tg::Tensor t = tg::Tensor::zeros({0, 3});
         CHECK(t.numel() == 0);
         CHECK(t.to_vector().empty());
         CHECK(t.to_string() == "Tensor([], shape=[0, 3], dtype=f64)");
       }},
      {"shape", "Tensor::full([], 2.5).item()", [](Fixture&) { CHECK(tg::Tensor::full({}, 2.5).item() == 2.5); }},
      {"index", "t.at({-1, -1}) is the last element", [](Fixture& f) { CHECK(f.x.value().at({-1, -1}) == 0.6); }},
      {"undefined", "Tensor().to_string()", [](Fixture&) { CHECK(tg::Tensor().to_string() == "Tensor(undefined)"); }},
      {"empty", "t.reshape([0]) of [0, 3]", [](Fixture& f) { CHECK(f.empty.value().reshape({0}).numel() == 0); }},
      {"dtype", "Tensor::uniform f32 stays below high", [](Fixture&) {
         const tg::Tensor t = tg::Tensor::uniform({64}, 0.0, 1e-30, 3, tg::Dtype::f32);
         for (double v : t.to_vector()) {
           CHECK(v >= 0.0);
           CHECK(v < 1e-30);
         }
       }},
      {"shape", "broadcast_shapes([0, 3], [1, 3]) is [0, 3]", [](Fixture&) {
         CHECK(tg::broadcast_shapes("custom", {0, 3}, {1, 3}) == tg::Shape{0, 3});
       }},
  });
}

// ---- Elementwise arithmetic ---------------------------------------------------------------------

TEST_CASE("catalogue: arithmetic") {
  using K = Kind;
  check_rejections({
      {"shape", "add(x [2, 3], y [3, 2])", K::shape, "add", {"[2, 3] and [3, 2]"},
       [](Fixture& f) { tg::add(f.x, f.y); }},
      {"shape", "x - y", K::shape, "sub", {"[2, 3] and [3, 2]"}, [](Fixture& f) { (void)(f.x - f.y); }},
      {"shape", "x * y", K::shape, "mul", {"[2, 3] and [3, 2]"}, [](Fixture& f) { (void)(f.x * f.y); }},
      {"shape", "x / y", K::shape, "div", {"[2, 3] and [3, 2]"}, [](Fixture& f) { (void)(f.x / f.y); }},
      {"empty", "empty [0, 3] + [2, 3]", K::shape, "add", {"[0, 3] and [2, 3]"},
       [](Fixture& f) { (void)(f.empty + f.x); }},
      {"dtype", "add(x f64, x32 f32)", K::dtype, "add", {"f64 [2, 3] and f32 [2, 3]"},
       [](Fixture& f) { tg::add(f.x, f.x32); }},
      {"dtype", "x32 / x", K::dtype, "div", {"f32 [2, 3] and f64 [2, 3]"}, [](Fixture& f) { (void)(f.x32 / f.x); }},
      {"dtype", "x * flags", K::dtype, "mul", {"b of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { (void)(f.x * f.flags); }},
      {"dtype", "flags - x", K::dtype, "sub", {"a of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { (void)(f.flags - f.x); }},
      {"dtype", "flags + 1.0", K::dtype, "add", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { (void)(f.flags + 1.0); }},
      {"dtype", "2.0 / flags", K::dtype, "div", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { (void)(2.0 / f.flags); }},
      {"dtype", "-flags", K::dtype, "neg", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { (void)(-f.flags); }},
      {"foreign", "x + Var of other", K::tape, "add", {"Vars of two different tapes"},
       [](Fixture& f) { (void)(f.x + f.foreign); }},
      {"foreign", "mul(Var of other, x)", K::tape, "mul", {"Vars of two different tapes"},
       [](Fixture& f) { tg::mul(f.foreign, f.x); }},
      {"stale", "stale - x", K::tape, "sub", {"stale handle (node 0"}, [](Fixture& f) { (void)(f.stale - f.x); }},
      {"stale", "x / stale", K::tape, "div", {"stale handle (node 0"}, [](Fixture& f) { (void)(f.x / f.stale); }},
      {"stale", "stale * 2.0", K::tape, "mul", {"stale handle (node 0"}, [](Fixture& f) { (void)(f.stale * 2.0); }},
      {"stale", "1.0 - stale", K::tape, "sub", {"stale handle (node 0"}, [](Fixture& f) { (void)(1.0 - f.stale); }},
      {"stale", "neg(stale)", K::tape, "neg", {"stale handle (node 0"}, [](Fixture& f) { tg::neg(f.stale); }},
      {"undefined", "Var() + x", K::tape, "add", {"a default-constructed Var"},
       [](Fixture& f) { (void)(tg::Var() + f.x); }},
      {"undefined", "x * Var()", K::tape, "mul", {"a default-constructed Var"},
       [](Fixture& f) { (void)(f.x * tg::Var()); }},
      {"undefined", "Var() / 2.0", K::tape, "div", {"a default-constructed Var"},
       [](Fixture&) { (void)(tg::Var() / 2.0); }},
  });
  check_accepted({
      {"empty", "empty [0, 3] + row [1, 3] is [0, 3]", [](Fixture& f) {
         tg::Var row = f.tape.leaf(tg::Tensor::ones({1, 3}));
         CHECK((f.empty + row).shape() == tg::Shape{0, 3});
       }},
      {"shape", "x [2, 3] * column [2, 1] broadcasts", [](Fixture& f) {
         tg::Var column = f.tape.leaf(tg::Tensor::from_values({2, 1}, {10, 100}));
         CHECK(values_of(f.x * column) == std::vector<double>{1, 2, 3, 40, 50, 60});
       }},
      {"dtype", "x32 + x32 stays f32", [](Fixture& f) { CHECK((f.x32 + f.x32).dtype() == tg::Dtype::f32); }},
      {"value", "x / 0.0 is inf as IEEE 754 says", [](Fixture& f) {
         for (double v : values_of(f.x / 0.0)) {
           CHECK(v == infinity);
         }
       }},
  });
}

// ---- exp, log, relu, normalize ------------------------------------------------------------------

TEST_CASE("catalogue: elementwise functions and normalize") {
  using K = Kind;
  check_rejections({
      {"dtype", "exp(flags)", K::dtype, "exp", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::exp(f.flags); }},
      {"dtype", "log(flags)", K::dtype, "log", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::log(f.flags); }},
      {"dtype", "relu(flags)", K::dtype, "relu", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::relu(f.flags); }},
      {"stale", "exp(stale)", K::tape, "exp", {"stale handle (node 0"}, [](Fixture& f) { tg::exp(f.stale); }},
      {"stale", "log(stale)", K::tape, "log", {"stale handle (node 0"}, [](Fixture& f) { tg::log(f.stale); }},
      {"stale", "relu(stale)", K::tape, "relu", {"stale handle (node 0"}, [](Fixture& f) { tg::relu(f.stale); }},
      {"undefined", "exp(Var())", K::tape, "exp", {"a default-constructed Var"},
       [](Fixture&) { tg::exp(tg::Var()); }},
      {"undefined", "relu(Var())", K::tape, "relu", {"a default-constructed Var"},
       [](Fixture&) { tg::relu(tg::Var()); }},
      {"axis", "normalize(x [2, 3], axis 2)", K::shape, "normalize", {"[-2, 2)", "axis 2"},
       [](Fixture& f) { tg::normalize(f.x, 2); }},
      {"axis", "normalize(x [2, 3], axis -3)", K::shape, "normalize", {"axis -3"},
       [](Fixture& f) { tg::normalize(f.x, -3); }},
      {"shape", "normalize(scalar [])", K::shape, "normalize", {"x of shape []"},
       [](Fixture& f) { tg::normalize(f.scalar); }},
      {"value", "normalize(x, 1, eps 0)", K::value, "normalize", {"eps 0"},
       [](Fixture& f) { tg::normalize(f.x, 1, 0.0); }},
      {"value", "normalize(x, 1, eps -1)", K::value, "normalize", {"eps -1"},
       [](Fixture& f) { tg::normalize(f.x, 1, -1.0); }},
      {"value", "normalize(x, 1, eps nan)", K::value, "normalize", {"eps nan"},
       [](Fixture& f) { tg::normalize(f.x, 1, not_a_number); }},
      {"value", "normalize(x, 1, eps inf)", K::value, "normalize", {"eps inf"},
       [](Fixture& f) { tg::normalize(f.x, 1, infinity); }},
      {"dtype", "normalize(flags)", K::dtype, "normalize", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::normalize(f.flags); }},
      {"stale", "normalize(stale)", K::tape, "normalize", {"stale handle (node 0"},
       [](Fixture& f) { tg::normalize(f.stale); }},
  });
  check_accepted({
      {"empty", "exp, log and relu of [0, 3] are [0, 3]", [](Fixture& f) {
         CHECK(tg::exp(f.empty).shape() == tg::Shape{0, 3});
         CHECK(tg::log(f.empty).shape() == tg::Shape{0, 3});
         CHECK(tg::relu(f.empty).shape() == tg::Shape{0, 3});
       }},
      {"value", "log(0) is -inf and log(-1) is NaN without anomaly mode", [](Fixture& f) {
         tg::Var t = f.tape.leaf(tg::Tensor::from_values({2}, {0.0, -1.0}));
         const std::vector<double> v = values_of(tg::log(t));
         CHECK(v[0] == -infinity);
         CHECK(std::isnan(v[1]));
       }},
      {"dtype", "exp(x32) is f32", [](Fixture& f) { CHECK(tg::exp(f.x32).dtype() == tg::Dtype::f32); }},
      {"empty", "normalize of [0, 3] along either axis is [0, 3]", [](Fixture& f) {
         CHECK(tg::normalize(f.empty, 0).shape() == tg::Shape{0, 3});
         CHECK(tg::normalize(f.empty, 1).shape() == tg::Shape{0, 3});
       }},
      {"value", "normalize of a zero row is a zero row", [](Fixture& f) {
         tg::Var t = f.tape.leaf(tg::Tensor::zeros({1, 3}));
         CHECK(values_of(tg::normalize(t)) == std::vector<double>{0, 0, 0});
       }},
      {"axis", "normalize of a column (3, 4) along axis -2 is (0.6, 0.8)", [](Fixture& f) {
         tg::Var t = f.tape.leaf(tg::Tensor::from_values({2, 1}, {3, 4}));
         const std::vector<double> v = values_of(tg::normalize(t, -2));
         CHECK(v[0] == doctest::Approx(0.6).epsilon(1e-15));
         CHECK(v[1] == doctest::Approx(0.8).epsilon(1e-15));
       }},
  });
}

// ---- Reductions ---------------------------------------------------------------------------------

TEST_CASE("catalogue: reductions") {
  using K = Kind;
  check_rejections({
      {"axis", "sum(x [2, 3], 2)", K::shape, "sum", {"[-2, 2)", "axis 2 and x of shape [2, 3]"},
       [](Fixture& f) { tg::sum(f.x, 2); }},
      {"axis", "mean(x [2, 3], -3)", K::shape, "mean", {"axis -3 and x of shape [2, 3]"},
       [](Fixture& f) { tg::mean(f.x, -3); }},
      {"axis", "max(x [2, 3], 5, true)", K::shape, "max", {"axis 5 and x of shape [2, 3]"},
       [](Fixture& f) { tg::max(f.x, 5, true); }},
      {"axis", "sum(scalar [], 0)", K::shape, "sum", {"rank 0", "axis 0 and x of shape []"},
       [](Fixture& f) { tg::sum(f.scalar, 0); }},
      {"dtype", "sum(flags)", K::dtype, "sum", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::sum(f.flags); }},
      {"dtype", "mean(flags, 0)", K::dtype, "mean", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::mean(f.flags, 0); }},
      {"dtype", "max(flags)", K::dtype, "max", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::max(f.flags); }},
      {"empty", "mean(empty [0, 3])", K::value, "mean", {"x of shape [0, 3]"}, [](Fixture& f) { tg::mean(f.empty); }},
      {"empty", "mean(empty [0, 3], 0)", K::value, "mean", {"axis 0 of extent 0 in x of shape [0, 3]"},
       [](Fixture& f) { tg::mean(f.empty, 0); }},
      {"empty", "max(empty [0, 3])", K::value, "max", {"x of shape [0, 3]"}, [](Fixture& f) { tg::max(f.empty); }},
      {"empty", "max(empty [0, 3], -2, true)", K::value, "max", {"axis 0 of extent 0 in x of shape [0, 3]"},
       [](Fixture& f) { tg::max(f.empty, -2, true); }},
      {"stale", "sum(stale)", K::tape, "sum", {"stale handle (node 0"}, [](Fixture& f) { tg::sum(f.stale); }},
      {"stale", "mean(stale, 1)", K::tape, "mean", {"stale handle (node 0"}, [](Fixture& f) { tg::mean(f.stale, 1); }},
      {"stale", "max(stale)", K::tape, "max", {"stale handle (node 0"}, [](Fixture& f) { tg::max(f.stale); }},
      {"undefined", "sum(Var())", K::tape, "sum", {"a default-constructed Var"}, [](Fixture&) { tg::sum(tg::Var()); }},
  });
  check_accepted({
      {"empty", "sum(empty [0, 3]) is 0", [](Fixture& f) { CHECK(tg::sum(f.empty).value().item() == 0.0); }},
      {"empty", "sum(empty [0, 3], 0) is zeros [3]", [](Fixture& f) {
         CHECK(values_of(tg::sum(f.empty, 0)) == std::vector<double>{0, 0, 0});
       }},
      {"empty", "mean and max of [0, 3] along axis 1 are [0]", [](Fixture& f) {
         CHECK(tg::mean(f.empty, 1).shape() == tg::Shape{0});
         CHECK(tg::max(f.empty, 1).shape() == tg::Shape{0});
       }},
      {"shape", "sum, mean and max of a scalar are the scalar", [](Fixture& f) {
         CHECK(tg::sum(f.scalar).value().item() == 2.0);
         CHECK(tg::mean(f.scalar).value().item() == 2.0);
         CHECK(tg::max(f.scalar).value().item() == 2.0);
       }},
      {"axis", "sum(x, -1, keepdim) is [[0.6], [1.5]]", [](Fixture& f) {
         tg::Var s = tg::sum(f.x, -1, true);
         CHECK(s.shape() == tg::Shape{2, 1});
         CHECK(s.value().at({0, 0}) == doctest::Approx(0.6).epsilon(1e-15));
         CHECK(s.value().at({1, 0}) == doctest::Approx(1.5).epsilon(1e-15));
       }},
  });
}

// ---- Masked ops ---------------------------------------------------------------------------------

TEST_CASE("catalogue: masked ops") {
  using K = Kind;
  const tg::Tensor f64_mask = tg::Tensor::ones({2, 3});
  const tg::Tensor tall_mask = tg::Tensor::ones({3, 2}, tg::Dtype::boolean);
  const tg::Tensor none_selected = tg::Tensor::zeros({2, 3}, tg::Dtype::boolean);
  check_rejections({
      {"mask", "masked_sum(x, f64 mask)", K::dtype, "masked_sum", {"a mask of dtype f64 and shape [2, 3]"},
       [f64_mask](Fixture& f) { tg::masked_sum(f.x, f64_mask); }},
      {"mask", "masked_mean(x, Tensor())", K::value, "masked_mean", {"an undefined mask"},
       [](Fixture& f) { tg::masked_mean(f.x, tg::Tensor()); }},
      {"mask", "masked_max(x [2, 3], mask [3, 2])", K::shape, "masked_max", {"mask [3, 2] and x [2, 3]"},
       [tall_mask](Fixture& f) { tg::masked_max(f.x, tall_mask); }},
      {"mask", "masked_logsumexp(x [2, 3], mask [3, 2], 1)", K::shape, "masked_logsumexp", {"mask [3, 2] and x [2, 3]"},
       [tall_mask](Fixture& f) { tg::masked_logsumexp(f.x, tall_mask, 1); }},
      {"mask", "masked_mean(x, mask with row 1 empty, 1)", K::value, "masked_mean",
       {"row 1 with no selected entry along axis 1 of x [2, 3] with mask [2, 3]"},
       [](Fixture& f) { tg::masked_mean(f.x, f.mask, 1); }},
      {"mask", "masked_mean(x, all-false mask)", K::value, "masked_mean",
       {"a mask [2, 3] that selects no entry of x [2, 3]"},
       [none_selected](Fixture& f) { tg::masked_mean(f.x, none_selected); }},
      {"axis", "masked_sum(x, mask, 2)", K::shape, "masked_sum", {"axis 2 and x of shape [2, 3]"},
       [](Fixture& f) { tg::masked_sum(f.x, f.mask, 2); }},
      {"axis", "masked_max(x, mask, -3, true)", K::shape, "masked_max", {"axis -3 and x of shape [2, 3]"},
       [](Fixture& f) { tg::masked_max(f.x, f.mask, -3, true); }},
      {"dtype", "masked_logsumexp(flags, mask)", K::dtype, "masked_logsumexp", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::masked_logsumexp(f.flags, f.mask); }},
      {"stale", "masked_sum(stale, mask)", K::tape, "masked_sum", {"stale handle (node 0"},
       [](Fixture& f) { tg::masked_sum(f.stale, f.mask); }},
      {"stale", "masked_logsumexp(stale, mask, 1)", K::tape, "masked_logsumexp", {"stale handle (node 0"},
       [](Fixture& f) { tg::masked_logsumexp(f.stale, f.mask, 1); }},
      {"undefined", "masked_max(Var(), mask)", K::tape, "masked_max", {"a default-constructed Var"},
       [](Fixture& f) { tg::masked_max(tg::Var(), f.mask); }},
      {"mask", "where(f64 mask, x, x)", K::dtype, "where", {"a mask of dtype f64 and shape [2, 3]"},
       [f64_mask](Fixture& f) { tg::where(f64_mask, f.x, f.x); }},
      {"mask", "where(mask [3, 2], x, x)", K::shape, "where", {"mask [3, 2], a [2, 3] and b [2, 3]"},
       [tall_mask](Fixture& f) { tg::where(tall_mask, f.x, f.x); }},
      {"mask", "where(mask [3, 2], x, 0.0)", K::shape, "where", {"mask [3, 2], a [2, 3]"},
       [tall_mask](Fixture& f) { tg::where(tall_mask, f.x, 0.0); }},
      {"mask", "where(Tensor(), x, x)", K::value, "where", {"an undefined mask"},
       [](Fixture& f) { tg::where(tg::Tensor(), f.x, f.x); }},
      {"shape", "where(mask, x [2, 3], y [3, 2])", K::shape, "where", {"mask [2, 3], a [2, 3] and b [3, 2]"},
       [](Fixture& f) { tg::where(f.mask, f.x, f.y); }},
      {"dtype", "where(mask, x f64, x32 f32)", K::dtype, "where", {"f64 [2, 3] and f32 [2, 3]"},
       [](Fixture& f) { tg::where(f.mask, f.x, f.x32); }},
      {"dtype", "where(mask, flags, 0.0)", K::dtype, "where", {"a of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::where(f.mask, f.flags, 0.0); }},
      {"foreign", "where(mask, x, Var of other)", K::tape, "where", {"Vars of two different tapes"},
       [](Fixture& f) { tg::where(f.mask, f.x, f.foreign); }},
      {"stale", "where(mask, stale, x)", K::tape, "where", {"stale handle (node 0"},
       [](Fixture& f) { tg::where(f.mask, f.stale, f.x); }},
  });
  check_accepted({
      {"mask", "a row with nothing selected: sum 0, max and logsumexp -inf, zero gradient", [](Fixture& f) {
         const std::vector<double> sums = values_of(tg::masked_sum(f.x, f.mask, 1));
         CHECK(sums[0] == doctest::Approx(0.4).epsilon(1e-15));
         CHECK(sums[1] == 0.0);
         CHECK(values_of(tg::masked_max(f.x, f.mask, 1))[1] == -infinity);
         tg::Var lse = tg::masked_logsumexp(f.x, f.mask, 1);
         CHECK(values_of(lse)[1] == -infinity);
         f.tape.backward(tg::sum(tg::masked_max(f.x, f.mask, 1)) + tg::masked_sum(f.x, f.mask));
         // Row 0: max 0.3 at (0, 2) gets 1, masked_sum gives 1 at the two selected entries.
         CHECK(f.x.grad().to_vector() == std::vector<double>{1, 0, 2, 0, 0, 0});
       }},
      {"mask", "a [1, 3] mask broadcasts over x [2, 3]", [](Fixture& f) {
         const tg::Tensor row = tg::Tensor::from_values({1, 3}, {1, 0, 1}, tg::Dtype::boolean);
         const std::vector<double> sums = values_of(tg::masked_sum(f.x, row, 1));
         CHECK(sums[0] == doctest::Approx(0.4).epsilon(1e-15));
         CHECK(sums[1] == doctest::Approx(1.0).epsilon(1e-15));
       }},
      {"empty", "masked_sum of [0, 3] is 0 and masked_max along axis 1 is [0]", [](Fixture& f) {
         const tg::Tensor none = tg::Tensor::zeros({0, 3}, tg::Dtype::boolean);
         CHECK(tg::masked_sum(f.empty, none).value().item() == 0.0);
         CHECK(tg::masked_max(f.empty, none, 1).shape() == tg::Shape{0});
       }},
      {"mask", "where(mask, x, -inf) fills the unselected entries", [](Fixture& f) {
         const std::vector<double> v = values_of(tg::where(f.mask, f.x, -infinity));
         CHECK(v == std::vector<double>{0.1, -infinity, 0.3, -infinity, -infinity, -infinity});
       }},
  });
}

// ---- matmul -------------------------------------------------------------------------------------

TEST_CASE("catalogue: matmul") {
  using K = Kind;
  check_rejections({
      {"shape", "matmul(x [2, 3], x [2, 3])", K::shape, "matmul",
       {"(a.shape[1] == b.shape[0])", "a [2, 3] and b [2, 3]"}, [](Fixture& f) { tg::matmul(f.x, f.x); }},
      {"shape", "matmul(x, y, transpose_a)", K::shape, "matmul",
       {"(a.shape[0] == b.shape[0])", "a [2, 3] and b [3, 2] with transpose_a"},
       [](Fixture& f) { tg::matmul(f.x, f.y, {.transpose_a = true}); }},
      {"shape", "matmul(x, x, both flags)", K::shape, "matmul",
       {"a [2, 3] and b [2, 3] with transpose_a and transpose_b"},
       [](Fixture& f) { tg::matmul(f.x, f.x, {.transpose_a = true, .transpose_b = true}); }},
      {"shape", "matmul(scalar [], x)", K::shape, "matmul", {"a [] (rank 0) and b [2, 3] (rank 2)"},
       [](Fixture& f) { tg::matmul(f.scalar, f.x); }},
      {"dtype", "matmul(x32, y)", K::dtype, "matmul", {"f32 [2, 3] and f64 [3, 2]"},
       [](Fixture& f) { tg::matmul(f.x32, f.y); }},
      {"dtype", "matmul(flags, y)", K::dtype, "matmul", {"a of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::matmul(f.flags, f.y); }},
      {"value", "matmul with K = 2^31, over the BLAS integer", K::value, "matmul",
       {"at most 2147483647", "a [0, 2147483648] and b [2147483648, 0]"},
       [](Fixture& f) { tg::matmul(f.wide, f.tall); }},
      {"foreign", "matmul(x, Var of other)", K::tape, "matmul", {"Vars of two different tapes"},
       [](Fixture& f) { tg::matmul(f.x, f.foreign, {.transpose_b = true}); }},
      {"stale", "matmul(stale, y)", K::tape, "matmul", {"stale handle (node 0"},
       [](Fixture& f) { tg::matmul(f.stale, f.y); }},
      {"undefined", "matmul(Var(), y)", K::tape, "matmul", {"a default-constructed Var"},
       [](Fixture& f) { tg::matmul(tg::Var(), f.y); }},
  });
  check_accepted({
      {"empty", "K = 0: [2, 0]·[0, 3] is zeros [2, 3]", [](Fixture& f) {
         tg::Var a = f.tape.leaf(tg::Tensor::zeros({2, 0}));
         tg::Var b = f.tape.leaf(tg::Tensor::zeros({0, 3}));
         CHECK(values_of(tg::matmul(a, b)) == std::vector<double>(6, 0.0));
       }},
      {"empty", "M = 0: [0, 3]·[3, 2] is [0, 2]", [](Fixture& f) {
         CHECK(tg::matmul(f.empty, f.y).shape() == tg::Shape{0, 2});
       }},
      {"shape", "x·xᵀ by flag is [2, 2]: rows (0.1, 0.2, 0.3), (0.4, 0.5, 0.6)", [](Fixture& f) {
         const std::vector<double> v = values_of(tg::matmul(f.x, f.x, {.transpose_b = true}));
         // 0.01 + 0.04 + 0.09 = 0.14; 0.04 + 0.10 + 0.18 = 0.32; 0.16 + 0.25 + 0.36 = 0.77
         CHECK(v[0] == doctest::Approx(0.14).epsilon(1e-14));
         CHECK(v[1] == doctest::Approx(0.32).epsilon(1e-14));
         CHECK(v[2] == doctest::Approx(0.32).epsilon(1e-14));
         CHECK(v[3] == doctest::Approx(0.77).epsilon(1e-14));
       }},
  });
}

// ---- Shape ops ----------------------------------------------------------------------------------

TEST_CASE("catalogue: shape ops") {
  using K = Kind;
  const std::int64_t big = std::int64_t{1} << 32;
  check_rejections({
      {"shape", "transpose(scalar [])", K::shape, "transpose", {"x [] (rank 0)"},
       [](Fixture& f) { tg::transpose(f.scalar); }},
      {"axis", "transpose(x, 0, 2)", K::shape, "transpose", {"axis1 = 2 for shape [2, 3]"},
       [](Fixture& f) { tg::transpose(f.x, 0, 2); }},
      {"axis", "transpose(x, -3, 0)", K::shape, "transpose", {"axis0 = -3 for shape [2, 3]"},
       [](Fixture& f) { tg::transpose(f.x, -3, 0); }},
      {"dtype", "transpose(flags)", K::dtype, "transpose", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::transpose(f.flags); }},
      {"stale", "transpose(stale)", K::tape, "transpose", {"stale handle (node 0"},
       [](Fixture& f) { tg::transpose(f.stale); }},
      {"shape", "reshape(x [2, 3], [4, 2])", K::shape, "reshape", {"x [2, 3] (6 elements) to [4, 2] (8 elements)"},
       [](Fixture& f) { tg::reshape(f.x, {4, 2}); }},
      {"shape", "reshape(x, [-1, -1])", K::shape, "reshape", {"shape [-1, -1] with -1 at axes 0 and 1"},
       [](Fixture& f) { tg::reshape(f.x, {-1, -1}); }},
      {"shape", "reshape(x, [-2, -3])", K::shape, "reshape", {"shape [-2, -3] with extent -2 at axis 0"},
       [](Fixture& f) { tg::reshape(f.x, {-2, -3}); }},
      {"shape", "reshape(x, [4, -1])", K::shape, "reshape", {"x [2, 3] (6 elements) to [4, -1]"},
       [](Fixture& f) { tg::reshape(f.x, {4, -1}); }},
      {"empty", "reshape(empty [0, 3], [-1, 0])", K::shape, "reshape", {"x [0, 3] (0 elements) to [-1, 0]"},
       [](Fixture& f) { tg::reshape(f.empty, {-1, 0}); }},
      {"shape", "reshape(x, [2^32, 2^32]), a count over int64", K::shape, "reshape",
       {"[4294967296, 4294967296]"}, [big](Fixture& f) { tg::reshape(f.x, {big, big}); }},
      {"shape", "reshape(x, [2^32, 2^32, -1]), a count over int64", K::shape, "reshape",
       {"[4294967296, 4294967296, -1]"}, [big](Fixture& f) { tg::reshape(f.x, {big, big, -1}); }},
      {"dtype", "reshape(flags, [6])", K::dtype, "reshape", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::reshape(f.flags, {6}); }},
      {"stale", "reshape(stale, [6])", K::tape, "reshape", {"stale handle (node 0"},
       [](Fixture& f) { tg::reshape(f.stale, {6}); }},
      {"empty", "concat({})", K::value, "concat", {"an empty list"},
       [](Fixture&) { tg::concat(std::span<const tg::Var>()); }},
      {"foreign", "concat({x, Var of other})", K::tape, "concat", {"Vars of two different tapes"},
       [](Fixture& f) { tg::concat({f.x, f.foreign}); }},
      {"dtype", "concat({x, x32})", K::dtype, "concat", {"xs[1] f32 [2, 3] and xs[0] f64 [2, 3]"},
       [](Fixture& f) { tg::concat({f.x, f.x32}); }},
      {"dtype", "concat({x, flags})", K::dtype, "concat", {"xs[1] of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::concat({f.x, f.flags}); }},
      {"shape", "concat({x [2, 3], z [4, 3]}, 1)", K::shape, "concat",
       {"xs[1] [4, 3] and xs[0] [2, 3] (axis 0 differs)"},
       [](Fixture& f) { tg::concat({f.x, f.z}, 1); }},
      {"shape", "concat({x, scalar})", K::shape, "concat", {"xs[1] [] (rank 0) and xs[0] [2, 3] (rank 2)"},
       [](Fixture& f) { tg::concat({f.x, f.scalar}); }},
      {"shape", "concat({scalar})", K::shape, "concat", {"xs[0] of shape []"},
       [](Fixture& f) { tg::concat({f.scalar}); }},
      {"axis", "concat({x, x}, 2)", K::shape, "concat", {"axis = 2 for shape [2, 3]"},
       [](Fixture& f) { tg::concat({f.x, f.x}, 2); }},
      {"stale", "concat({x, stale})", K::tape, "concat", {"stale handle (node 0"},
       [](Fixture& f) { tg::concat({f.x, f.stale}); }},
      {"index", "select_rows(x [2, 3], {2})", K::shape, "select_rows", {"[-2, 2) for x of shape [2, 3]", "rows[0] = 2"},
       [](Fixture& f) { tg::select_rows(f.x, {2}); }},
      {"index", "select_rows(x, {0, -3})", K::shape, "select_rows", {"rows[1] = -3"},
       [](Fixture& f) { tg::select_rows(f.x, {0, -3}); }},
      {"empty", "select_rows(empty [0, 3], {0})", K::shape, "select_rows",
       {"[0, 0) for x of shape [0, 3]", "rows[0] = 0"},
       [](Fixture& f) { tg::select_rows(f.empty, {0}); }},
      {"shape", "select_rows(scalar [], {0})", K::shape, "select_rows", {"x of shape []"},
       [](Fixture& f) { tg::select_rows(f.scalar, {0}); }},
      {"dtype", "select_rows(flags, {0})", K::dtype, "select_rows", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::select_rows(f.flags, {0}); }},
      {"stale", "select_rows(stale, {0})", K::tape, "select_rows", {"stale handle (node 0"},
       [](Fixture& f) { tg::select_rows(f.stale, {0}); }},
      {"shape", "select_per_row(x [2, 3], {0})", K::shape, "select_per_row", {"1 columns for x of shape [2, 3]"},
       [](Fixture& f) { tg::select_per_row(f.x, {0}); }},
      {"index", "select_per_row(x, {0, 3})", K::shape, "select_per_row",
       {"[-3, 3) for x of shape [2, 3]", "columns[1] = 3"},
       [](Fixture& f) { tg::select_per_row(f.x, {0, 3}); }},
      {"shape", "select_per_row(scalar [], {})", K::shape, "select_per_row", {"x of shape [] (rank 0)"},
       [](Fixture& f) { tg::select_per_row(f.scalar, std::span<const std::int64_t>()); }},
      {"dtype", "select_per_row(flags, {0, 0})", K::dtype, "select_per_row", {"x of dtype boolean and shape [2, 3]"},
       [](Fixture& f) { tg::select_per_row(f.flags, {0, 0}); }},
      {"stale", "select_per_row(stale, {0, 0})", K::tape, "select_per_row", {"stale handle (node 0"},
       [](Fixture& f) { tg::select_per_row(f.stale, {0, 0}); }},
  });
  check_accepted({
      {"axis", "transpose(x, 1, 1) is x",
       [](Fixture& f) { CHECK(values_of(tg::transpose(f.x, 1, 1)) == values_of(f.x)); }},
      {"empty", "transpose(empty [0, 3]) is [3, 0]",
       [](Fixture& f) { CHECK(tg::transpose(f.empty).shape() == tg::Shape{3, 0}); }},
      {"shape", "reshape(x, [-1]) is [6]", [](Fixture& f) { CHECK(tg::reshape(f.x, {-1}).shape() == tg::Shape{6}); }},
      {"empty", "reshape(empty [0, 3], [3, 0, 5])", [](Fixture& f) {
         CHECK(tg::reshape(f.empty, {3, 0, 5}).shape() == tg::Shape{3, 0, 5});
       }},
      {"empty", "concat({empty [0, 3], x [2, 3]}) is x", [](Fixture& f) {
         CHECK(values_of(tg::concat({f.empty, f.x})) == values_of(f.x));
       }},
      {"index", "select_rows(x, {-1, 0, -1})", [](Fixture& f) {
         CHECK(values_of(tg::select_rows(f.x, {-1, 0, -1})) ==
               std::vector<double>{0.4, 0.5, 0.6, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
       }},
      {"empty", "select_rows(x, {}) is [0, 3]", [](Fixture& f) {
         CHECK(tg::select_rows(f.x, std::span<const std::int64_t>()).shape() == tg::Shape{0, 3});
       }},
      {"index", "select_per_row(x, {-1, 0}) is (0.3, 0.4)", [](Fixture& f) {
         CHECK(values_of(tg::select_per_row(f.x, {-1, 0})) == std::vector<double>{0.3, 0.4});
       }},
  });
}

// ---- NT-Xent, both implementations --------------------------------------------------------------

namespace {

// The NT-Xent rows, with options.implementation set to `implementation` in every call.
std::vector<Rejection> nt_xent_rejections(tg::NtXentImplementation implementation) {
  using K = Kind;
  const tg::NtXentOptions base{.implementation = implementation};
  auto with = [base](auto change) {
    tg::NtXentOptions options = base;
    change(options);
    return options;
  };
  const tg::NtXentOptions zero_temperature = with([](tg::NtXentOptions& o) { o.temperature = 0.0; });
  const tg::NtXentOptions negative_temperature = with([](tg::NtXentOptions& o) { o.temperature = -0.5; });
  const tg::NtXentOptions infinite_temperature = with([](tg::NtXentOptions& o) { o.temperature = infinity; });
  const tg::NtXentOptions nan_temperature = with([](tg::NtXentOptions& o) { o.temperature = not_a_number; });
  const tg::NtXentOptions bad_layout = with([](tg::NtXentOptions& o) { o.layout = static_cast<tg::Layout>(7); });
  const tg::NtXentOptions bad_reduction =
      with([](tg::NtXentOptions& o) { o.reduction = static_cast<tg::Reduction>(7); });
  const tg::NtXentOptions bad_implementation =
      with([](tg::NtXentOptions& o) { o.implementation = static_cast<tg::NtXentImplementation>(7); });
  const tg::NtXentOptions negative_cache = with([](tg::NtXentOptions& o) { o.fused_cache_bytes = -1; });
  const tg::NtXentOptions tiny_temperature = with([](tg::NtXentOptions& o) { o.temperature = 1e-320; });
  return {
      {"dtype", "nt_xent(boolean [4, 3])", K::dtype, "nt_xent", {"z of dtype boolean and shape [4, 3]"},
       [base](Fixture& f) { tg::nt_xent(f.bool_z, base); }},
      {"shape", "nt_xent(scalar [])", K::shape, "nt_xent", {"z of shape []"},
       [base](Fixture& f) { tg::nt_xent(f.scalar, base); }},
      {"empty", "nt_xent(empty [0, 3])", K::shape, "nt_xent", {"must not be empty", "z of shape [0, 3]"},
       [base](Fixture& f) { tg::nt_xent(f.empty, base); }},
      {"empty", "nt_xent([4, 0])", K::shape, "nt_xent", {"at least one feature", "z of shape [4, 0]"},
       [base](Fixture& f) { tg::nt_xent(f.no_features, base); }},
      {"shape", "nt_xent([3, 3]), an odd row count", K::shape, "nt_xent", {"even number of rows", "z of shape [3, 3]"},
       [base](Fixture& f) { tg::nt_xent(f.odd, base); }},
      {"temperature", "nt_xent(z, temperature 0)", K::value, "nt_xent", {"temperature 0"},
       [zero_temperature](Fixture& f) { tg::nt_xent(f.z, zero_temperature); }},
      {"temperature", "nt_xent(z, temperature -0.5)", K::value, "nt_xent", {"temperature -0.5"},
       [negative_temperature](Fixture& f) { tg::nt_xent(f.z, negative_temperature); }},
      {"temperature", "nt_xent(z, temperature inf)", K::value, "nt_xent", {"temperature inf"},
       [infinite_temperature](Fixture& f) { tg::nt_xent(f.z, infinite_temperature); }},
      {"temperature", "nt_xent(z, temperature nan)", K::value, "nt_xent", {"temperature nan"},
       [nan_temperature](Fixture& f) { tg::nt_xent(f.z, nan_temperature); }},
      {"option", "nt_xent(z, layout 7)", K::value, "nt_xent", {"layout value 7"},
       [bad_layout](Fixture& f) { tg::nt_xent(f.z, bad_layout); }},
      {"option", "nt_xent(z, reduction 7)", K::value, "nt_xent", {"reduction value 7"},
       [bad_reduction](Fixture& f) { tg::nt_xent(f.z, bad_reduction); }},
      {"option", "nt_xent(z, implementation 7)", K::value, "nt_xent", {"implementation value 7"},
       [bad_implementation](Fixture& f) { tg::nt_xent(f.z, bad_implementation); }},
      {"temperature", "nt_xent(z, temperature 1e-320), below 4/DBL_MAX", K::value, "nt_xent",
       {"at least 2.23e-308 for f64 embeddings", "temperature 1e-320"},
       [tiny_temperature](Fixture& f) { tg::nt_xent(f.z, tiny_temperature); }},
      {"option", "nt_xent(z, fused_cache_bytes -1)", K::value, "nt_xent", {"fused_cache_bytes -1"},
       [negative_cache](Fixture& f) { tg::nt_xent(f.z, negative_cache); }},
      {"option", "nt_xent(x, x, fused_cache_bytes -1)", K::value, "nt_xent", {"fused_cache_bytes -1"},
       [negative_cache](Fixture& f) { tg::nt_xent(f.x, f.x, negative_cache); }},
      {"stale", "nt_xent(stale)", K::tape, "nt_xent", {"stale handle (node 0"},
       [base](Fixture& f) { tg::nt_xent(f.stale, base); }},
      {"shape", "nt_xent(x [2, 3], z [4, 3])", K::shape, "nt_xent", {"zi of shape [2, 3] and zj of shape [4, 3]"},
       [base](Fixture& f) { tg::nt_xent(f.x, f.z, base); }},
      {"dtype", "nt_xent(x f64, x32 f32)", K::dtype, "nt_xent", {"zi of dtype f64 and zj of dtype f32"},
       [base](Fixture& f) { tg::nt_xent(f.x, f.x32, base); }},
      {"dtype", "nt_xent(x, flags)", K::dtype, "nt_xent", {"zj of dtype boolean and shape [2, 3]"},
       [base](Fixture& f) { tg::nt_xent(f.x, f.flags, base); }},
      {"empty", "nt_xent(empty, empty)", K::shape, "nt_xent", {"zi of shape [0, 3]"},
       [base](Fixture& f) { tg::nt_xent(f.empty, f.empty, base); }},
      {"temperature", "nt_xent(x, x, temperature 0)", K::value, "nt_xent", {"temperature 0"},
       [zero_temperature](Fixture& f) { tg::nt_xent(f.x, f.x, zero_temperature); }},
      {"option", "nt_xent(x, x, layout 7)", K::value, "nt_xent", {"layout value 7"},
       [bad_layout](Fixture& f) { tg::nt_xent(f.x, f.x, bad_layout); }},
      {"option", "nt_xent(x, x, reduction 7)", K::value, "nt_xent", {"reduction value 7"},
       [bad_reduction](Fixture& f) { tg::nt_xent(f.x, f.x, bad_reduction); }},
      {"option", "nt_xent(x, x, implementation 7)", K::value, "nt_xent", {"implementation value 7"},
       [bad_implementation](Fixture& f) { tg::nt_xent(f.x, f.x, bad_implementation); }},
      {"foreign", "nt_xent(x, Var of other)", K::tape, "nt_xent", {"Vars of two different tapes"},
       [base](Fixture& f) { tg::nt_xent(f.x, f.foreign, base); }},
      {"stale", "nt_xent(x, stale)", K::tape, "nt_xent", {"stale handle (node 0"},
       [base](Fixture& f) { tg::nt_xent(f.x, f.stale, base); }},
  };
}

}  // namespace

TEST_CASE("catalogue: nt_xent composed") { check_rejections(nt_xent_rejections(tg::NtXentImplementation::composed)); }

TEST_CASE("catalogue: nt_xent fused") { check_rejections(nt_xent_rejections(tg::NtXentImplementation::fused)); }

TEST_CASE("catalogue: nt_xent valid edges") {
  check_accepted({
      {"shape", "N = 1 has no negatives: loss 0 and zero gradient, in both implementations", [](Fixture& f) {
         for (auto implementation : {tg::NtXentImplementation::composed, tg::NtXentImplementation::fused}) {
           tg::Var loss = tg::nt_xent(f.x, {.implementation = implementation});
           CHECK(loss.value().item() == 0.0);
           f.tape.zero_grad();
           f.tape.backward(loss);
           CHECK(f.x.grad().to_vector() == std::vector<double>(6, 0.0));
         }
       }},
      {"shape", "D = 1 and a zero row are valid", [](Fixture& f) {
         tg::Var one_feature = f.tape.leaf(tg::Tensor::from_values({4, 1}, {1, -1, 0, 2}));
         CHECK(std::isfinite(tg::nt_xent(one_feature).value().item()));
       }},
      {"temperature", "a tiny temperature stays finite in f32", [](Fixture& f) {
         tg::Var z32 = f.tape.leaf(f.z.value().to(tg::Dtype::f32));
         CHECK(std::isfinite(tg::nt_xent(z32, {.temperature = 0.01}).value().item()));
       }},
  });
}

// ---- gradcheck and its registry -----------------------------------------------------------------

namespace {

tg::Var sum_of_squares(std::span<const tg::Var> inputs) { return tg::sum(inputs[0] * inputs[0]); }

// A case named c/n with these inputs and function, and no overrides.
tg::GradcheckCase case_of(std::vector<tg::GradcheckInput> inputs, tg::GradcheckFunction function = sum_of_squares) {
  return {.op = "c", .name = "n", .inputs = std::move(inputs), .function = std::move(function)};
}

}  // namespace

TEST_CASE("catalogue: gradcheck") {
  using K = Kind;
  const tg::Tensor bool_values = tg::Tensor::ones({2}, tg::Dtype::boolean);
  check_rejections({
      {"undefined", "gradcheck(case without a function)", K::value, "gradcheck", {"case c/n without one"},
       [](Fixture&) { tg::gradcheck(case_of({{.shape = {2}}}, nullptr)); }},
      {"value", "gradcheck(case, eps 0)", K::value, "gradcheck", {"eps 0"},
       [](Fixture&) { tg::gradcheck(case_of({{.shape = {2}}}), {.eps = 0.0}); }},
      {"value", "gradcheck(case, atol -1)", K::value, "gradcheck", {"atol -1 and rtol 0.001"},
       [](Fixture&) { tg::gradcheck(case_of({{.shape = {2}}}), {.atol = -1.0}); }},
      {"value", "gradcheck(case with its own rtol nan)", K::value, "gradcheck", {"rtol nan"}, [](Fixture&) {
         tg::GradcheckCase nan_rtol = case_of({{.shape = {2}}});
         nan_rtol.rtol = not_a_number;
         tg::gradcheck(nan_rtol);
       }},
      {"shape", "gradcheck(input shape [3] with values [2])", K::shape, "gradcheck",
       {"case c/n, input 0: shape [3] and values of shape [2]"},
       [](Fixture&) { tg::gradcheck(case_of({{.shape = {3}, .values = tg::Tensor::ones({2})}})); }},
      {"dtype", "gradcheck(input dtype f32 with f64 values)", K::dtype, "gradcheck",
       {"case c/n, input 0: dtype f32 and values of dtype f64"},
       [](Fixture&) { tg::gradcheck(case_of({{.dtype = tg::Dtype::f32, .values = tg::Tensor::ones({2})}})); }},
      {"dtype", "gradcheck(differentiable boolean input)", K::dtype, "gradcheck",
       {"case c/n, input 0 of dtype boolean"},
       [bool_values](Fixture&) { tg::gradcheck(case_of({{.dtype = tg::Dtype::boolean, .values = bool_values}})); }},
      {"mask", "gradcheck(boolean input without values)", K::value, "gradcheck",
       {"case c/n, input 0: a boolean input of shape [2] without values"}, [](Fixture&) {
         tg::gradcheck(case_of({{.shape = {2}, .dtype = tg::Dtype::boolean, .differentiable = false}}));
       }},
      {"value", "gradcheck(no differentiable input)", K::value, "gradcheck",
       {"case c/n with 1 input, none differentiable"},
       [](Fixture&) { tg::gradcheck(case_of({{.shape = {2}, .differentiable = false}})); }},
      {"undefined", "gradcheck(function returns Var())", K::value, "gradcheck",
       {"case c/n returned a default-constructed Var"},
       [](Fixture&) { tg::gradcheck(case_of({{.shape = {2}}}, [](std::span<const tg::Var>) { return tg::Var(); })); }},
      {"foreign", "gradcheck(function returns a Var of another tape)", K::value, "gradcheck",
       {"case c/n returned a Var of another tape"},
       [](Fixture& f) {
         tg::gradcheck(case_of({{.shape = {2}}}, [&f](std::span<const tg::Var>) { return f.foreign; }));
       }},
      {"dtype", "gradcheck(function returns a boolean Var)", K::dtype, "gradcheck", {"case c/n returned dtype boolean"},
       [bool_values](Fixture&) {
         tg::gradcheck(case_of({{.shape = {2}}}, [bool_values](std::span<const tg::Var> inputs) {
           return inputs[0].tape().constant(bool_values);
         }));
       }},
      {"shape", "gradcheck(function raising on its inputs) propagates the op's error", K::shape, "matmul",
       {"a [2] (rank 1) and b [2] (rank 1)"}, [](Fixture&) {
         tg::gradcheck(case_of({{.shape = {2}}},
                               [](std::span<const tg::Var> inputs) { return tg::matmul(inputs[0], inputs[0]); }));
       }},
      {"undefined", "gradcheck(function, {Tensor()})", K::value, "gradcheck", {"input 0 undefined"},
       [](Fixture&) { tg::gradcheck(sum_of_squares, {tg::Tensor()}); }},
      {"value", "registry.add(case without a name)", K::value, "GradcheckRegistry::add", {"op 'c' and case ''"},
       [](Fixture&) {
         tg::GradcheckRegistry registry;
         registry.add({.op = "c", .function = sum_of_squares});
       }},
      {"undefined", "registry.add(case without a function)", K::value, "GradcheckRegistry::add",
       {"case c/n without one"}, [](Fixture&) {
         tg::GradcheckRegistry registry;
         registry.add({.op = "c", .name = "n"});
       }},
      {"value", "registry.add(override without a reason)", K::value, "GradcheckRegistry::add",
       {"case c/n with an override and an empty override_reason"}, [](Fixture&) {
         tg::GradcheckRegistry registry;
         registry.add({.op = "c", .name = "n", .function = sum_of_squares, .atol = 1e-3});
       }},
      {"value", "registry.add(the same case twice)", K::value, "GradcheckRegistry::add", {"a second case c/n"},
       [](Fixture&) {
         tg::GradcheckRegistry registry;
         registry.add(case_of({}));
         registry.add(case_of({}));
       }},
  });
  check_accepted({
      {"empty", "gradcheck of an empty input passes", [](Fixture&) {
         CHECK(tg::gradcheck(sum_of_squares, {tg::Tensor::zeros({0, 2})}).passed());
       }},
      {"mask", "gradcheck(function, {x, mask}) keeps the mask constant", [](Fixture&) {
         const tg::GradcheckResult result = tg::gradcheck(
             [](std::span<const tg::Var> inputs) { return tg::masked_sum(inputs[0], inputs[1].value()); },
             {tg::Tensor::ones({2, 2}), tg::Tensor::from_values({2, 2}, {1, 0, 0, 1}, tg::Dtype::boolean)});
         CHECK(result.passed());
         CHECK(result.inputs.size() == 1);
       }},
      {"value", "registry.cases_of an unknown op is empty", [](Fixture&) {
         CHECK(tg::GradcheckRegistry().cases_of("no_such_op").empty());
       }},
  });
}

// ---- Adam ---------------------------------------------------------------------------------------

TEST_CASE("catalogue: adam") {
  using K = Kind;
  const tg::Tensor parameter = tg::Tensor::from_values({2}, {1.0, 2.0});
  check_rejections({
      {"value", "Adam(lr -1)", K::value, "Adam", {"lr = -1"},
       [parameter](Fixture&) { tg::Adam({parameter}, {.lr = -1.0}); }},
      {"value", "Adam(lr nan)", K::value, "Adam", {"lr = nan"},
       [parameter](Fixture&) { tg::Adam({parameter}, {.lr = not_a_number}); }},
      {"value", "Adam(beta1 1)", K::value, "Adam", {"[0, 1)", "beta1 = 1"},
       [parameter](Fixture&) { tg::Adam({parameter}, {.beta1 = 1.0}); }},
      {"value", "Adam(beta2 -0.1)", K::value, "Adam", {"beta2 = -0.1"},
       [parameter](Fixture&) { tg::Adam({parameter}, {.beta2 = -0.1}); }},
      {"value", "Adam(eps inf)", K::value, "Adam", {"eps = inf"},
       [parameter](Fixture&) { tg::Adam({parameter}, {.eps = infinity}); }},
      {"value", "Adam(weight_decay -1)", K::value, "Adam", {"weight_decay = -1"},
       [parameter](Fixture&) { tg::Adam({parameter}, {.weight_decay = -1.0}); }},
      {"undefined", "Adam({w, Tensor()})", K::value, "Adam", {"an undefined tensor at position 1"},
       [parameter](Fixture&) { tg::Adam({parameter, tg::Tensor()}); }},
      {"dtype", "Adam({boolean [2]})", K::dtype, "Adam", {"parameter 0 of dtype boolean and shape [2]"},
       [](Fixture&) { tg::Adam({tg::Tensor::ones({2}, tg::Dtype::boolean)}); }},
      {"shape", "adam.step({}) for one parameter", K::value, "Adam::step", {"0 gradients for 1 parameters"},
       [parameter](Fixture&) { tg::Adam({parameter}).step(std::span<const tg::Tensor>()); }},
      {"shape", "adam.step({[3]}) for a [2] parameter", K::shape, "Adam::step",
       {"gradient 0 of shape [3] for a parameter of shape [2]"},
       [parameter](Fixture&) { tg::Adam({parameter}).step({tg::Tensor::ones({3})}); }},
      {"dtype", "adam.step({f32}) for an f64 parameter", K::dtype, "Adam::step",
       {"gradient 0 of dtype f32 for a parameter of dtype f64"},
       [parameter](Fixture&) { tg::Adam({parameter}).step({tg::Tensor::ones({2}, tg::Dtype::f32)}); }},
      {"value", "adam.step({[1, nan]})", K::value, "Adam::step", {"nan at flat index 1 of gradient 0 (shape [2])"},
       [parameter](Fixture&) { tg::Adam({parameter}).step({tg::Tensor::from_values({2}, {1.0, not_a_number})}); }},
      {"undefined", "adam.step({Tensor()})", K::value, "Adam::step", {"an undefined gradient 0"},
       [parameter](Fixture&) { tg::Adam({parameter}).step({tg::Tensor()}); }},
      {"index", "adam.first_moment(1) of one parameter", K::value, "Adam::first_moment", {"[0, 1)", "index 1"},
       [parameter](Fixture&) { (void)tg::Adam({parameter}).first_moment(1); }},
      {"index", "adam.second_moment(-1)", K::value, "Adam::second_moment", {"index -1"},
       [parameter](Fixture&) { (void)tg::Adam({parameter}).second_moment(-1); }},
      {"value", "adam.set_lr(-0.5)", K::value, "Adam", {"lr = -0.5"},
       [parameter](Fixture&) { tg::Adam({parameter}).set_lr(-0.5); }},
  });
  check_accepted({
      {"empty", "Adam({}) and step({})", [](Fixture&) {
         tg::Adam adam(std::vector<tg::Tensor>{});
         adam.step(std::span<const tg::Tensor>());
         CHECK(adam.step_count() == 1);
       }},
      {"empty", "Adam of an empty parameter steps", [](Fixture&) {
         tg::Adam adam({tg::Tensor::zeros({0, 3})});
         adam.step({tg::Tensor::zeros({0, 3})});
         CHECK(adam.step_count() == 1);
       }},
      {"value", "lr 0 and beta1 0 are valid and leave the parameter", [](Fixture&) {
         tg::Tensor w = tg::Tensor::from_values({2}, {1.0, 2.0});
         tg::Adam adam({w}, {.lr = 0.0, .beta1 = 0.0});
         adam.step({tg::Tensor::ones({2})});
         CHECK(w.to_vector() == std::vector<double>{1.0, 2.0});
       }},
  });
}

TEST_CASE("rejected adam step changes nothing") {
  // The gradient of the second parameter is bad, so nothing may move, not even the first one.
  tg::Tensor w = tg::Tensor::from_values({2}, {1.0, 2.0});
  tg::Tensor b = tg::Tensor::from_values({1}, {3.0});
  tg::Adam adam({w, b}, {.lr = 0.1});
  CHECK_THROWS_AS(adam.step({tg::Tensor::ones({2}), tg::Tensor::from_values({1}, {infinity})}), tg::ValueError);
  CHECK(w.to_vector() == std::vector<double>{1.0, 2.0});
  CHECK(b.to_vector() == std::vector<double>{3.0});
  CHECK(adam.step_count() == 0);
  CHECK(adam.first_moment(0).to_vector() == std::vector<double>{0.0, 0.0});
  // A good step afterwards is the first Adam step: θ − lr·sign(g), since m̂/√v̂ = g/|g| at t = 1.
  adam.step({tg::Tensor::ones({2}), tg::Tensor::from_values({1}, {-1.0})});
  CHECK(w.at({0}) == doctest::Approx(0.9).epsilon(1e-7));
  CHECK(b.at({0}) == doctest::Approx(3.1).epsilon(1e-7));
}

// ---- to_dot -------------------------------------------------------------------------------------

TEST_CASE("catalogue: to_dot") {
  // to_dot reads a tape and raises nothing: every tape, cleared or empty, and every DotOptions is
  // valid input. These rows check the results for the edge cases.
  check_accepted({
      {"empty", "to_dot of an empty tape is an empty digraph", [](Fixture&) {
         const tg::Tape tape;
         const std::string dot = tg::to_dot(tape);
         CHECK(dot.starts_with("digraph tape {\n"));
         CHECK(dot.ends_with("}\n"));
         CHECK(dot.find(" n0 ") == std::string::npos);
       }},
      {"stale", "to_dot after clear() shows no node from before it", [](Fixture& f) {
         f.tape.clear();
         CHECK(tg::to_dot(f.tape).find("n0 [") == std::string::npos);
       }},
      {"index", "a node name for an index that is not on the tape is ignored", [](Fixture& f) {
         const std::string dot = tg::to_dot(f.tape, {.node_names = {{99, "ghost"}}});
         CHECK(dot.find("ghost") == std::string::npos);
         CHECK(dot.find("n15 [") != std::string::npos);
       }},
      {"value", "quotes in names and titles are escaped", [](Fixture& f) {
         const std::string dot = tg::to_dot(f.tape, {.title = "a \"b\"", .node_names = {{0, "w\\1"}}});
         CHECK(dot.find("label=\"a \\\"b\\\"\"") != std::string::npos);
         CHECK(dot.find("w\\\\1") != std::string::npos);
       }},
  });
}

// ---- run_gradcheck_tool -------------------------------------------------------------------------

namespace {

struct ToolRow {
  std::string_view argument;
  std::vector<const char*> argv;  // after the program name
  int status;
  std::string_view err;  // a substring of the standard error output
};

}  // namespace

TEST_CASE("catalogue: run_gradcheck_tool") {
  tg::GradcheckRegistry registry;
  registry.add({.op = "square", .name = "vector", .inputs = {{.shape = {3}}}, .function = sum_of_squares});
  const std::vector<ToolRow> table = {
      {"value", {"no_such_op"}, tg::kGradcheckUsageError, "(known ops: square), but got 'no_such_op'"},
      {"value", {"--eps", "-1"}, tg::kGradcheckUsageError, "a finite number > 0, but got -1"},
      {"value", {"--eps", "nan"}, tg::kGradcheckUsageError, "a finite number > 0, but got nan"},
      {"value", {"--atol", "-0.5"}, tg::kGradcheckUsageError, "a finite number >= 0, but got -0.5"},
      {"value", {"--rtol", "inf"}, tg::kGradcheckUsageError, "a finite number >= 0, but got inf"},
      {"value", {"--format", "xml"}, tg::kGradcheckUsageError, "xml"},
      {"value", {"--seed", "abc"}, tg::kGradcheckUsageError, "abc"},
      {"value", {"--seed", "-3"}, tg::kGradcheckUsageError, "an integer from 0 to 18446744073709551615, but got -3"},
      {"value", {"--seed", "18446744073709551616"}, tg::kGradcheckUsageError, "but got 18446744073709551616"},
      {"value", {"--eps"}, tg::kGradcheckUsageError, "--eps"},
      {"value", {"--bogus"}, tg::kGradcheckUsageError, "--bogus"},
      {"empty", {}, tg::kGradcheckAllPassed, ""},
      {"value", {"--list"}, tg::kGradcheckAllPassed, ""},
  };
  for (const ToolRow& row : table) {
    std::vector<const char*> argv = {"tapegrad-gradcheck"};
    argv.insert(argv.end(), row.argv.begin(), row.argv.end());
    const std::string label = fmt::format("[{}] {}", row.argument, fmt::join(argv, " "));
    INFO(label);
    std::ostringstream out;
    std::ostringstream err;
    const int status = tg::run_gradcheck_tool(static_cast<int>(argv.size()), argv.data(), registry, out, err);
    CAPTURE(out.str());
    CAPTURE(err.str());
    CHECK(status == row.status);
    if (row.err.empty()) {
      CHECK(err.str().empty());
    } else {
      CHECK(err.str().find(row.err) != std::string::npos);
    }
  }
}

// ---- Anomaly mode -------------------------------------------------------------------------------

TEST_CASE("catalogue: anomaly mode") {
  // Forward: log(0) = -inf from a finite input is rejected before it is recorded.
  tg::Tape tape({.detect_anomaly = true});
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {0.0, 1.0}));
  tg::Var loss = tg::sum(x * x);
  const std::int64_t size_before = tape.size();
  CHECK_THROWS_AS(tg::log(x), tg::ValueError);
  CHECK_THROWS_WITH(tg::log(x), doctest::Contains("log: anomaly mode: a forward output must be finite"));
  CHECK_THROWS_WITH(tg::log(x), doctest::Contains("output of node 3 (forward pass, input shapes [2])"));
  CHECK(tape.size() == size_before);
  tape.backward(loss);
  CHECK(x.grad().to_vector() == std::vector<double>{0.0, 2.0});

  // Backward: ∂(a/b)/∂b = −a/b² overflows at b = 1e-200, and no leaf gradient changes.
  tg::Tape backward_tape({.detect_anomaly = true});
  tg::Var a = backward_tape.leaf(tg::Tensor::from_values({2}, {1.0, 1.0}));
  tg::Var b = backward_tape.leaf(tg::Tensor::from_values({2}, {1e-200, 1.0}));
  tg::Var quotient = tg::sum(a / b);
  CHECK_THROWS_AS(backward_tape.backward(quotient), tg::ValueError);
  CHECK_THROWS_WITH(backward_tape.backward(quotient),
                    doctest::Contains("div: anomaly mode: an input gradient must be finite when the cotangent is"));
  CHECK(b.grad().to_vector() == std::vector<double>{0.0, 0.0});

  // Accepted: -inf passed as an argument (the fill of where) is no anomaly.
  tg::Var filled = tg::where(tg::Tensor::from_values({2}, {1, 0}, tg::Dtype::boolean), x, -infinity);
  CHECK(values_of(filled) == std::vector<double>{0.0, -infinity});
}

TEST_CASE("anomaly in a composed op keeps its inner nodes") {
  // masked_logsumexp of a row with nothing selected ends in log(0) = -inf, which anomaly mode
  // rejects after the inner ops before log were recorded. They stay on the tape, as
  // docs/errors.md states, and the graph recorded before still differentiates.
  tg::Tape tape({.detect_anomaly = true});
  tg::Var x = tape.leaf(tg::Tensor::from_values({2, 2}, {1.0, 2.0, 3.0, 4.0}));
  tg::Var loss = tg::sum(x);
  const std::int64_t size_before = tape.size();
  const tg::Tensor mask = tg::Tensor::from_values({2, 2}, {1, 1, 0, 0}, tg::Dtype::boolean);
  CHECK_THROWS_WITH_AS(tg::masked_logsumexp(x, mask, 1), doctest::Contains("log: anomaly mode"), tg::ValueError);
  CHECK(tape.size() > size_before);
  tape.backward(loss);
  CHECK(x.grad().to_vector() == std::vector<double>{1.0, 1.0, 1.0, 1.0});
}

// ---- docs/errors.md -----------------------------------------------------------------------------

namespace {

// The message that `call` raises, or a note that it raised none.
std::string message_of(const std::function<void()>& call) {
  try {
    call();
  } catch (const tg::Error& error) {
    return error.what();
  }
  return "(no tapegrad::Error raised)";
}

// The calls behind each sample message of docs/errors.md, by the sample's name.
std::map<std::string, std::string> real_messages() {
  std::map<std::string, std::string> messages;
  messages["shape_error"] = message_of([] {
    tg::Tape tape;
    tg::matmul(tape.leaf(tg::Tensor::zeros({4, 3})), tape.leaf(tg::Tensor::zeros({5, 2})));
  });
  messages["dtype_error"] = message_of([] {
    tg::Tape tape;
    tg::add(tape.leaf(tg::Tensor::zeros({2, 3})), tape.leaf(tg::Tensor::zeros({2, 3}, tg::Dtype::f32)));
  });
  messages["value_error"] = message_of([] {
    tg::Tape tape;
    tg::nt_xent(tape.leaf(tg::Tensor::ones({4, 3})), {.temperature = 0.0});
  });
  messages["value_error_row"] = message_of([] {
    tg::Tape tape;
    tg::masked_mean(tape.leaf(tg::Tensor::ones({2, 3})),
                    tg::Tensor::from_values({2, 3}, {1, 0, 1, 0, 0, 0}, tg::Dtype::boolean), 1);
  });
  messages["tape_error"] = message_of([] {
    tg::Tape tape;
    tape.backward(tape.leaf(tg::Tensor::zeros({2, 3})));
  });
  messages["stale_handle"] = message_of([] {
    tg::Tape tape;
    tg::Var x = tape.leaf(tg::Tensor::ones({2, 3}));
    tape.clear();
    tg::exp(x);
  });
  messages["foreign_tape"] = message_of([] {
    tg::Tape first;
    tg::Tape second;
    tg::Var a = first.leaf(tg::Tensor::ones({2}));
    tg::Var b = second.leaf(tg::Tensor::ones({2}));
    tg::mul(a, b);
  });
  messages["anomaly_forward"] = message_of([] {
    tg::Tape tape({.detect_anomaly = true});
    tg::log(tape.leaf(tg::Tensor::from_values({2}, {0.0, 1.0})));
  });
  messages["anomaly_backward"] = message_of([] {
    tg::Tape tape({.detect_anomaly = true});
    tg::Var a = tape.leaf(tg::Tensor::from_values({1, 2}, {1.0, 1.0}));
    tg::Var b = tape.leaf(tg::Tensor::from_values({1, 2}, {1e-200, 1.0}));
    tape.backward(tg::sum(a / b));
  });
  return messages;
}

// The samples of a Markdown page: a line "<!-- sample: NAME -->", then a fenced block whose one
// line is the message.
std::map<std::string, std::string> read_samples(const std::string& path) {
  std::ifstream file(path);
  REQUIRE_MESSAGE(file.good(), "cannot open " << path);
  std::map<std::string, std::string> samples;
  const std::string marker = "<!-- sample: ";
  std::string line;
  while (std::getline(file, line)) {
    if (!line.starts_with(marker)) {
      continue;
    }
    const std::string name = line.substr(marker.size(), line.find(" -->") - marker.size());
    std::string fence;
    std::string message;
    std::string closing;
    std::getline(file, fence);
    std::getline(file, message);
    std::getline(file, closing);
    CHECK_MESSAGE(fence.starts_with("```"), "sample " << name << " must be a fenced block");
    CHECK_MESSAGE(closing == "```", "sample " << name << " must be one line");
    CHECK_MESSAGE(samples.count(name) == 0, "sample " << name << " appears twice");
    samples[name] = message;
  }
  return samples;
}

}  // namespace

TEST_CASE("docs/errors.md samples are the real messages") {
  const std::map<std::string, std::string> samples = read_samples(TAPEGRAD_ERRORS_DOC);
  const std::map<std::string, std::string> messages = real_messages();
  CHECK(samples.size() == messages.size());
  for (const auto& [name, message] : messages) {
    CAPTURE(name);
    REQUIRE(samples.count(name) == 1);
    CHECK(samples.at(name) == message);
  }
}
