// gradcheck and the gradcheck tool: planted VJP faults are caught with the right op, input and
// element, kinks get their own verdict, f32 inputs are upcast, invariants are checked, and the
// tool's exit codes and JSON fields hold.
#include <doctest/doctest.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>
#include <tapegrad/tapegrad.hpp>

namespace tg = tapegrad;

namespace {

// ---- Ops with planted faults, defined here with tape.record ------------------------------------

// How a test op's VJP is broken. The fault travels in OpAttributes::integer, because a VJP is a
// captureless function.
enum Fault : std::int64_t {
  correct,
  scaled_by_1_01,
  two_elements_swapped,
  ignores_cotangent,
  differs_between_runs,
  nonzero_for_zero_cotangent,
  returns_inf,
  returns_f32,
  first_row_only,      // add_row: b's gradient is the cotangent's first row instead of the column sums
  not_reduced,         // add_row: b's gradient is the whole cotangent, of a's shape
};

// y = x² elementwise, in f64 or f32, with a VJP x̄ = ȳ·2x broken as `fault` selects.
tg::Var square(const tg::Var& x, Fault fault = correct) {
  tg::Tape& tape = tg::common_tape("square", {x});
  const tg::Tensor& input = x.value();
  tg::Tensor y = tape.allocate(input.shape(), input.dtype());
  for (std::int64_t i = 0; i < input.numel(); ++i) {
    if (input.dtype() == tg::Dtype::f32) {
      y.data<float>()[i] = input.data<float>()[i] * input.data<float>()[i];
    } else {
      y.data<double>()[i] = input.data<double>()[i] * input.data<double>()[i];
    }
  }
  return tape.record(
      "square", std::move(y), {x},
      [](tg::VjpContext& context) {
        static std::atomic<int> runs{0};
        const auto fault = static_cast<Fault>(context.attributes().integer);
        const tg::Tensor x = context.input(0).to(tg::Dtype::f64);
        const tg::Tensor g = context.cotangent().to(tg::Dtype::f64);
        tg::Tensor dx = tg::Tensor::zeros(x.shape(), tg::Dtype::f64);
        double* out = dx.data<double>();
        for (std::int64_t i = 0; i < x.numel(); ++i) {
          const double cotangent = fault == ignores_cotangent ? 1.0 : g.data<double>()[i];
          out[i] = cotangent * 2 * x.data<double>()[i];
        }
        if (fault == scaled_by_1_01) {
          for (std::int64_t i = 0; i < x.numel(); ++i) {
            out[i] *= 1.01;
          }
        } else if (fault == two_elements_swapped) {
          std::swap(out[1], out[2]);
        } else if (fault == differs_between_runs && (runs++ % 2) == 1) {
          out[0] = std::nextafter(out[0], 1e300);
        } else if (fault == nonzero_for_zero_cotangent) {
          out[0] += 1e-9;  // inside atol, so only the zero-seed invariant can see it
        } else if (fault == returns_inf) {
          out[x.numel() - 1] = std::numeric_limits<double>::infinity();
        }
        const tg::Dtype dtype = fault == returns_f32 ? tg::Dtype::f32 : context.input(0).dtype();
        context.accumulate(0, dx.to(dtype));
      },
      {}, {.integer = fault});
}

// y = a + b for a [R, C] and b [1, C], b broadcast over the rows; b̄ = Σ_rows ȳ, broken by `fault`.
tg::Var add_row(const tg::Var& a, const tg::Var& b, Fault fault = correct) {
  tg::Tape& tape = tg::common_tape("add_row", {a, b});
  const std::int64_t rows = a.shape()[0];
  const std::int64_t columns = a.shape()[1];
  tg::Tensor y = tape.allocate(a.shape(), tg::Dtype::f64);
  for (std::int64_t r = 0; r < rows; ++r) {
    for (std::int64_t c = 0; c < columns; ++c) {
      y.data<double>()[r * columns + c] = a.value().data<double>()[r * columns + c] + b.value().data<double>()[c];
    }
  }
  return tape.record(
      "add_row", std::move(y), {a, b},
      [](tg::VjpContext& context) {
        const auto fault = static_cast<Fault>(context.attributes().integer);
        const tg::Tensor& g = context.cotangent();
        context.accumulate(0, g.clone());
        if (fault == not_reduced) {
          context.accumulate(1, g.clone());
          return;
        }
        const std::int64_t rows = g.shape()[0];
        const std::int64_t columns = g.shape()[1];
        tg::Tensor db = tg::Tensor::zeros({1, columns});
        const std::int64_t summed_rows = fault == first_row_only ? 1 : rows;
        for (std::int64_t r = 0; r < summed_rows; ++r) {
          for (std::int64_t c = 0; c < columns; ++c) {
            db.data<double>()[c] += g.data<double>()[r * columns + c];
          }
        }
        context.accumulate(1, std::move(db));
      },
      {}, {.integer = fault});
}

// The max of the entries of a 1-D x where mask is true, as a scalar. Tied maxima share the
// gradient evenly, as tapegrad's max does.
tg::Var split_max(const tg::Var& x, const tg::Tensor& mask) {
  tg::Tape& tape = tg::common_tape("split_max", {x});
  double best = -std::numeric_limits<double>::infinity();
  for (std::int64_t i = 0; i < x.value().numel(); ++i) {
    if (mask.data<bool>()[i]) {
      best = std::max(best, x.value().data<double>()[i]);
    }
  }
  return tape.record(
      "split_max", tg::Tensor::full({}, best), {x},
      [](tg::VjpContext& context) {
        const tg::Tensor& x = context.input(0);
        const tg::Tensor& mask = context.saved(0);
        const double best = context.output().item();
        std::int64_t ties = 0;
        for (std::int64_t i = 0; i < x.numel(); ++i) {
          ties += mask.data<bool>()[i] && x.data<double>()[i] == best ? 1 : 0;
        }
        tg::Tensor dx = tg::Tensor::zeros(x.shape());
        for (std::int64_t i = 0; i < x.numel(); ++i) {
          if (mask.data<bool>()[i] && x.data<double>()[i] == best) {
            dx.data<double>()[i] = context.cotangent().item() / static_cast<double>(ties);
          }
        }
        context.accumulate(0, std::move(dx));
      },
      {mask});
}

// |x| elementwise, whose VJP uses slope_at_zero as the derivative at 0.
tg::Var abs_value(const tg::Var& x, double slope_at_zero) {
  tg::Tape& tape = tg::common_tape("abs_value", {x});
  tg::Tensor y = tape.allocate(x.shape(), tg::Dtype::f64);
  for (std::int64_t i = 0; i < x.value().numel(); ++i) {
    y.data<double>()[i] = std::abs(x.value().data<double>()[i]);
  }
  return tape.record(
      "abs_value", std::move(y), {x},
      [](tg::VjpContext& context) {
        const double at_zero = context.attributes().scalar;
        const tg::Tensor& x = context.input(0);
        tg::Tensor dx = tg::Tensor::zeros(x.shape());
        for (std::int64_t i = 0; i < x.numel(); ++i) {
          const double value = x.data<double>()[i];
          const double slope = value > 0 ? 1.0 : (value < 0 ? -1.0 : at_zero);
          dx.data<double>()[i] = context.cotangent().data<double>()[i] * slope;
        }
        context.accumulate(0, std::move(dx));
      },
      {}, {.scalar = slope_at_zero});
}

// logsumexp(x / 0.1) of a 1-D x, computed in x's dtype; x̄ = ȳ·softmax(x / 0.1) / 0.1.
template <class T>
T logsumexp_over_tenth(const T* x, std::int64_t count) {
  T best = x[0] / T(0.1);
  for (std::int64_t i = 1; i < count; ++i) {
    best = std::max(best, x[i] / T(0.1));
  }
  T total = 0;
  for (std::int64_t i = 0; i < count; ++i) {
    total += std::exp(x[i] / T(0.1) - best);
  }
  return best + std::log(total);
}

tg::Var sharp_logsumexp(const tg::Var& x) {
  tg::Tape& tape = tg::common_tape("sharp_logsumexp", {x});
  const tg::Tensor& input = x.value();
  const double value = input.dtype() == tg::Dtype::f32 ? logsumexp_over_tenth(input.data<float>(), input.numel())
                                                       : logsumexp_over_tenth(input.data<double>(), input.numel());
  return tape.record("sharp_logsumexp", tg::Tensor::full({}, value, input.dtype()), {x}, [](tg::VjpContext& context) {
    const tg::Tensor x = context.input(0).to(tg::Dtype::f64);
    const double y = context.output().item();
    tg::Tensor dx = tg::Tensor::zeros(x.shape());
    for (std::int64_t i = 0; i < x.numel(); ++i) {
      dx.data<double>()[i] = context.cotangent().item() * std::exp(x.data<double>()[i] / 0.1 - y) / 0.1;
    }
    context.accumulate(0, dx.to(context.input(0).dtype()));
  });
}

tg::GradcheckFunction square_with(Fault fault) {
  return [fault](std::span<const tg::Var> inputs) { return square(inputs[0], fault); };
}

tg::GradcheckFunction add_row_with(Fault fault) {
  return [fault](std::span<const tg::Var> inputs) { return add_row(inputs[0], inputs[1], fault); };
}

bool contains(const std::string& text, const std::string& part) { return text.find(part) != std::string::npos; }

bool any_contains(const std::vector<std::string>& messages, const std::string& part) {
  return std::any_of(messages.begin(), messages.end(), [&](const std::string& m) { return contains(m, part); });
}

const tg::GradcheckOptions kFast{.mode = tg::GradcheckMode::fast};

}  // namespace

// ---- Planted faults ------------------------------------------------------------------------------

TEST_CASE("gradcheck passes a correct VJP in both modes") {
  const tg::Tensor x = tg::Tensor::from_values({2, 2}, {0.5, -1.5, 0.25, 1.0});
  for (const tg::GradcheckOptions& options : {tg::GradcheckOptions{}, kFast}) {
    const tg::GradcheckResult result = tg::gradcheck(square_with(correct), {x}, options, "square");
    CAPTURE(tg::format_report(result));
    CHECK(result.passed());
    CHECK(result.broken_invariants.empty());
    CHECK(result.max_abs_error() < 1e-8);
    CHECK(result.op == "square");
  }
}

TEST_CASE("gradcheck catches a VJP scaled by 1.01") {
  // x̄ = 1.01·2x is off by 0.02·|x|, largest at x = -1.5 (flat 1, index [0, 1]): numerical 2x = -3
  // and analytical -3.03.
  const tg::Tensor x = tg::Tensor::from_values({2, 2}, {0.5, -1.5, 0.25, 1.0});
  const tg::GradcheckResult result = tg::gradcheck(square_with(scaled_by_1_01), {x}, {}, "scaled_square");
  CAPTURE(tg::format_report(result));
  CHECK(result.op == "scaled_square");
  CHECK(result.verdict == tg::GradcheckVerdict::wrong_gradient);
  REQUIRE(result.inputs.size() == 1);
  const tg::GradcheckInputReport& report = result.inputs[0];
  CHECK(report.input == 0);
  CHECK(report.flat_index == 1);
  CHECK(report.multi_index == std::vector<std::int64_t>{0, 1});
  CHECK(report.output_index == 1);
  CHECK(report.numerical == doctest::Approx(-3.0).epsilon(1e-8));
  CHECK(report.analytical == doctest::Approx(-3.03).epsilon(1e-12));
  CHECK(report.abs_error == doctest::Approx(0.03).epsilon(1e-6));
  CHECK(report.rel_error == doctest::Approx(0.01).epsilon(1e-6));
  CHECK(report.tolerance == doctest::Approx(1e-5 + 1e-3 * 3.0).epsilon(1e-6));
  CHECK(report.failed_entries == 4);
  CHECK(result.eps == 1e-6);
}

TEST_CASE("gradcheck catches a VJP with two elements swapped") {
  // The diagonal Jacobian is 2x = [0.2, 0.4, 1.4, 0.8], and the VJP swaps elements 1 and 2 of its
  // result. Seeded with e₂ it returns 1.4 at element 1 and 0 at element 2, seeded with e₁ it
  // returns 0.4 at element 2 and 0 at element 1. Error over tolerance, by hand: (output 2,
  // element 1) 1.4 / 1e-5, (1, 2) 0.4 / 1e-5, (1, 1) 0.4 / 4.1e-4, (2, 2) 1.4 / 1.41e-3.
  const tg::Tensor x = tg::Tensor::from_values({4}, {0.1, 0.2, 0.7, 0.4});
  const tg::GradcheckResult result = tg::gradcheck(square_with(two_elements_swapped), {x}, {}, "swapped_square");
  CAPTURE(tg::format_report(result));
  CHECK(result.verdict == tg::GradcheckVerdict::wrong_gradient);
  REQUIRE(result.inputs.size() == 1);
  const tg::GradcheckInputReport& report = result.inputs[0];
  CHECK(report.flat_index == 1);
  CHECK(report.output_index == 2);
  CHECK(report.numerical == 0.0);  // x₁ does not reach y₂, so f(x ± h·e₁)[2] is unchanged
  CHECK(report.analytical == doctest::Approx(1.4).epsilon(1e-15));
  CHECK(report.failed_entries == 4);  // elements 0 and 3 are right
}

TEST_CASE("gradcheck catches a missing broadcast reduction") {
  // b [1, 2] is broadcast over 3 rows, so b̄ must sum ȳ over the rows. Taking only the first row
  // gives 0 instead of 1 for the entries of rows 1 and 2: 4 of b's 12 entries. a's VJP is right.
  const tg::Tensor a = tg::Tensor::from_values({3, 2}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
  const tg::Tensor b = tg::Tensor::from_values({1, 2}, {-0.5, 0.5});
  const tg::GradcheckResult result = tg::gradcheck(add_row_with(first_row_only), {a, b}, {}, "add_row");
  CAPTURE(tg::format_report(result));
  CHECK(result.verdict == tg::GradcheckVerdict::wrong_gradient);
  REQUIRE(result.inputs.size() == 2);
  CHECK(result.inputs[0].verdict == tg::GradcheckVerdict::passed);
  const tg::GradcheckInputReport& report = result.inputs[1];
  CHECK(report.input == 1);
  CHECK(report.verdict == tg::GradcheckVerdict::wrong_gradient);
  CHECK(report.failed_entries == 4);
  // All four have error 1 up to rounding: any may be the worst, but it is an output of row 1 or 2
  // and the element of b in its column.
  CHECK(report.output_index >= 2);
  CHECK(report.multi_index == std::vector<std::int64_t>{0, report.output_index % 2});
  CHECK(report.numerical == doctest::Approx(1.0).epsilon(1e-8));
  CHECK(report.analytical == 0.0);
}

TEST_CASE("gradcheck reports an unreduced gradient of the wrong shape") {
  // Without any reduction, b̄ has a's shape [3, 2]: the tape rejects it, and gradcheck reports
  // the broken shape invariant with the tape's message.
  const tg::Tensor a = tg::Tensor::from_values({3, 2}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
  const tg::Tensor b = tg::Tensor::from_values({1, 2}, {-0.5, 0.5});
  for (const tg::GradcheckOptions& options : {tg::GradcheckOptions{}, kFast}) {
    const tg::GradcheckResult result = tg::gradcheck(add_row_with(not_reduced), {a, b}, options, "add_row");
    CAPTURE(tg::format_report(result));
    CHECK(result.verdict == tg::GradcheckVerdict::invariant_broken);
    CHECK(any_contains(result.broken_invariants, "add_row: a VJP must return an input gradient with the input's shape"));
    CHECK(any_contains(result.broken_invariants, "a gradient of shape [3, 2] for input 1 of shape [1, 2]"));
  }
}

TEST_CASE("gradcheck catches a VJP that ignores its cotangent") {
  // x̄ = 2x for every seed: seeded with e₀, element 1 gets 2·x₁ = 1 where the numerical value is 0,
  // and a zero seed gives a non-zero gradient.
  const tg::Tensor x = tg::Tensor::from_values({3}, {0.25, 0.5, -1.0});
  const tg::GradcheckResult result = tg::gradcheck(square_with(ignores_cotangent), {x}, {}, "deaf_square");
  CAPTURE(tg::format_report(result));
  CHECK(result.verdict == tg::GradcheckVerdict::wrong_gradient);
  REQUIRE(result.inputs.size() == 1);
  // Off-diagonal entries are wrong by |2x_k| against a tolerance of atol, largest for x₂ = -1.
  CHECK(result.inputs[0].flat_index == 2);
  CHECK(result.inputs[0].analytical == -2.0);
  CHECK(result.inputs[0].numerical == doctest::Approx(0.0).epsilon(1e-9));
  CHECK(result.inputs[0].failed_entries == 6);
  CHECK(any_contains(result.broken_invariants, "a zero seed gives a non-zero gradient at input 0"));
}

TEST_CASE("fast mode catches each planted fault and reports it in full") {
  const tg::Tensor x4 = tg::Tensor::from_values({4}, {0.1, 0.2, 0.7, 0.4});
  const tg::Tensor a = tg::Tensor::from_values({3, 2}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
  const tg::Tensor b = tg::Tensor::from_values({1, 2}, {-0.5, 0.5});
  struct Planted {
    const char* name;
    tg::GradcheckFunction function;
    std::vector<tg::Tensor> inputs;
    std::int64_t wrong_input;
  };
  const std::vector<Planted> planted = {
      {"scaled", square_with(scaled_by_1_01), {x4}, 0},
      {"swapped", square_with(two_elements_swapped), {x4}, 0},
      {"first_row_only", add_row_with(first_row_only), {a, b}, 1},
      {"ignores_cotangent", square_with(ignores_cotangent), {x4}, 0},
  };
  for (const Planted& fault : planted) {
    for (std::uint64_t seed = 0; seed < 5; ++seed) {
      CAPTURE(fault.name);
      CAPTURE(seed);
      const tg::GradcheckResult result =
          tg::gradcheck(fault.function, fault.inputs, {.mode = tg::GradcheckMode::fast, .seed = seed}, fault.name);
      CAPTURE(tg::format_report(result));
      CHECK(result.mode == tg::GradcheckMode::fast);
      CHECK(result.seed == seed);
      CHECK(result.fell_back_to_full);
      CHECK(result.verdict == tg::GradcheckVerdict::wrong_gradient);
      CHECK(std::abs(result.projection_analytical - result.projection_numerical) > result.projection_tolerance);
      REQUIRE(result.inputs.size() == fault.inputs.size());
      CHECK(result.inputs[static_cast<std::size_t>(fault.wrong_input)].verdict ==
            tg::GradcheckVerdict::wrong_gradient);
    }
  }
}

TEST_CASE("fast mode passes a correct VJP without a fallback") {
  const tg::Tensor a = tg::Tensor::from_values({3, 2}, {0.1, 0.2, 0.3, 0.4, 0.5, 0.6});
  const tg::Tensor b = tg::Tensor::from_values({1, 2}, {-0.5, 0.5});
  const tg::GradcheckResult result = tg::gradcheck(add_row_with(correct), {a, b}, {.mode = tg::GradcheckMode::fast, .seed = 42});
  CAPTURE(tg::format_report(result));
  CHECK(result.passed());
  CHECK_FALSE(result.fell_back_to_full);
  CHECK(result.inputs.empty());
  CHECK(result.seed == 42);
  // add_row is linear, so the directional difference is exact up to rounding.
  CHECK(std::abs(result.projection_analytical - result.projection_numerical) < 1e-8);
  CHECK(result.projection_tolerance > 0);
  CHECK(contains(tg::format_report(result), "seed 42"));
}

// ---- Non-differentiable points -------------------------------------------------------------------

tg::GradcheckFunction split_max_with(tg::Tensor mask) {
  return [mask](std::span<const tg::Var> inputs) { return split_max(inputs[0], mask); };
}

TEST_CASE("gradcheck flags tied maxima as non-differentiable points") {
  // max over the first four entries of [2, 2, 2, 2, 5], with the fifth masked out. Raising one
  // tied entry by h raises the max by h, and lowering it changes nothing. So the forward
  // difference is 1, the backward one 0, the central one 0.5, and the even split gives 0.25.
  const tg::Tensor x = tg::Tensor::from_values({5}, {2, 2, 2, 2, 5});
  const tg::Tensor mask = tg::Tensor::from_values({5}, {1, 1, 1, 1, 0}, tg::Dtype::boolean);
  const tg::GradcheckResult result = tg::gradcheck(split_max_with(mask), {x}, {}, "split_max");
  CAPTURE(tg::format_report(result));
  CHECK(result.verdict == tg::GradcheckVerdict::non_differentiable_point);
  CHECK_FALSE(result.passed());
  REQUIRE(result.inputs.size() == 1);
  const tg::GradcheckInputReport& report = result.inputs[0];
  CHECK(report.verdict == tg::GradcheckVerdict::non_differentiable_point);
  CHECK(report.non_differentiable_elements == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK(report.failed_entries == 4);  // element 4 is consistent: 0 by differences and by the VJP
  CHECK(report.numerical == doctest::Approx(0.5).epsilon(1e-9));
  CHECK(report.analytical == 0.25);
  CHECK(report.forward_difference == doctest::Approx(1.0).epsilon(1e-9));
  CHECK(report.backward_difference == doctest::Approx(0.0).epsilon(1e-9));
  CHECK(contains(tg::format_report(result), "non-differentiable point at flat elements 0, 1, 2, 3"));
}

TEST_CASE("gradcheck passes a max without ties") {
  const tg::Tensor x = tg::Tensor::from_values({5}, {2, 1.5, 1.9, 0.3, 5});
  const tg::Tensor mask = tg::Tensor::from_values({5}, {1, 1, 1, 1, 0}, tg::Dtype::boolean);
  const tg::GradcheckResult result = tg::gradcheck(split_max_with(mask), {x}, {}, "split_max");
  CAPTURE(tg::format_report(result));
  CHECK(result.passed());
}

TEST_CASE("gradcheck flags a runner-up within the step") {
  // [1, 0.9999996, 0]: the runner-up is 4e-7 below the max, closer than h = 1e-6. For element 0
  // the forward difference is 1, the backward (1 − 0.9999996)/h = 0.4 and the central 0.7, with
  // analytical 1; for element 1 they are 0.6, 0 and 0.3, with analytical 0.
  const tg::Tensor x = tg::Tensor::from_values({3}, {1, 0.9999996, 0});
  const tg::Tensor mask = tg::Tensor::from_values({3}, {1, 1, 1}, tg::Dtype::boolean);
  const tg::GradcheckResult result = tg::gradcheck(split_max_with(mask), {x}, {}, "split_max");
  CAPTURE(tg::format_report(result));
  CHECK(result.verdict == tg::GradcheckVerdict::non_differentiable_point);
  REQUIRE(result.inputs.size() == 1);
  CHECK(result.inputs[0].non_differentiable_elements == std::vector<std::int64_t>{0, 1});
}

TEST_CASE("gradcheck judges a VJP at a kink by the one-sided differences") {
  // |x| at 0 has one-sided differences 1 and -1 and central difference 0. A VJP slope of 0 there
  // matches the central difference and passes. A slope of 0.5 lies between the one-sided
  // differences, a valid subgradient: a non-differentiable point. A slope of 3 lies outside them:
  // a wrong gradient. x = -0.5 has slope -1 in every variant.
  const tg::Tensor x = tg::Tensor::from_values({2}, {0.0, -0.5});
  const auto abs_with_slope = [](double slope_at_zero) -> tg::GradcheckFunction {
    return [slope_at_zero](std::span<const tg::Var> inputs) { return abs_value(inputs[0], slope_at_zero); };
  };

  const tg::GradcheckResult central = tg::gradcheck(abs_with_slope(0.0), {x}, {}, "abs_value");
  CAPTURE(tg::format_report(central));
  CHECK(central.passed());

  const tg::GradcheckResult kink = tg::gradcheck(abs_with_slope(0.5), {x}, {}, "abs_value");
  CAPTURE(tg::format_report(kink));
  CHECK(kink.verdict == tg::GradcheckVerdict::non_differentiable_point);
  CHECK(kink.inputs.at(0).non_differentiable_elements == std::vector<std::int64_t>{0});
  CHECK(kink.inputs.at(0).forward_difference == doctest::Approx(1.0).epsilon(1e-9));
  CHECK(kink.inputs.at(0).backward_difference == doctest::Approx(-1.0).epsilon(1e-9));

  const tg::GradcheckResult wrong = tg::gradcheck(abs_with_slope(3.0), {x}, {}, "abs_value");
  CAPTURE(tg::format_report(wrong));
  CHECK(wrong.verdict == tg::GradcheckVerdict::wrong_gradient);
  CHECK(wrong.inputs.at(0).flat_index == 0);
  CHECK(wrong.inputs.at(0).analytical == 3.0);
  CHECK(wrong.inputs.at(0).non_differentiable_elements.empty());
}

TEST_CASE("gradcheck flags ties of the library's masked_max") {
  // The same three points as with split_max above, through the library's masked_max, whose tied
  // maxima share the gradient evenly.
  const auto masked_max_of = [](tg::Tensor mask) -> tg::GradcheckFunction {
    return [mask](std::span<const tg::Var> inputs) { return tg::masked_max(inputs[0], mask); };
  };
  const tg::Tensor first_four = tg::Tensor::from_values({5}, {1, 1, 1, 1, 0}, tg::Dtype::boolean);

  const tg::Tensor tied = tg::Tensor::from_values({5}, {2, 2, 2, 2, 5});
  const tg::GradcheckResult ties = tg::gradcheck(masked_max_of(first_four), {tied}, {}, "masked_max");
  CAPTURE(tg::format_report(ties));
  CHECK(ties.verdict == tg::GradcheckVerdict::non_differentiable_point);
  REQUIRE(ties.inputs.size() == 1);
  CHECK(ties.inputs[0].non_differentiable_elements == std::vector<std::int64_t>{0, 1, 2, 3});
  CHECK(ties.inputs[0].numerical == doctest::Approx(0.5).epsilon(1e-9));
  CHECK(ties.inputs[0].analytical == 0.25);

  const tg::Tensor untied = tg::Tensor::from_values({5}, {2, 1.5, 1.9, 0.3, 5});
  const tg::GradcheckResult no_ties = tg::gradcheck(masked_max_of(first_four), {untied}, {}, "masked_max");
  CAPTURE(tg::format_report(no_ties));
  CHECK(no_ties.passed());

  const tg::Tensor all_three = tg::Tensor::from_values({3}, {1, 1, 1}, tg::Dtype::boolean);
  const tg::Tensor near_tie = tg::Tensor::from_values({3}, {1, 0.9999996, 0});
  const tg::GradcheckResult near = tg::gradcheck(masked_max_of(all_three), {near_tie}, {}, "masked_max");
  CAPTURE(tg::format_report(near));
  CHECK(near.verdict == tg::GradcheckVerdict::non_differentiable_point);
  REQUIRE(near.inputs.size() == 1);
  CHECK(near.inputs[0].non_differentiable_elements == std::vector<std::int64_t>{0, 1});
}

// ---- float32 -------------------------------------------------------------------------------------

TEST_CASE("gradcheck upcasts float32 inputs") {
  // f(x) = logsumexp(x / 0.1) at x = [0.3, -0.2, 0.1] stored in f32.
  const tg::Tensor x = tg::Tensor::from_values({3}, {0.3, -0.2, 0.1}, tg::Dtype::f32);
  // ∂f/∂x = softmax(x / 0.1) / 0.1 at the f32-rounded x, computed with python3's math module in
  // float64 (at exactly [0.3, -0.2, 0.1] it is [8.756005950630875, 0.05899750401902782,
  // 1.1849965453500961]).
  const std::vector<double> expected = {8.756006066556962, 0.05899749600881899, 1.1849964374342186};

  // Central differences in f32 with h = 1e-6 are far off the gradient: this is why the check
  // runs in f64.
  std::vector<float> values = {0.3f, -0.2f, 0.1f};
  double f32_worst = 0.0;
  for (std::size_t k = 0; k < 3; ++k) {
    const float original = values[k];
    values[k] = original + 1e-6f;
    const float plus = logsumexp_over_tenth(values.data(), 3);
    values[k] = original - 1e-6f;
    const float minus = logsumexp_over_tenth(values.data(), 3);
    values[k] = original;
    f32_worst = std::max(f32_worst, std::abs((plus - minus) / 2e-6 - expected[k]));
  }
  CHECK(f32_worst > 1e-2);

  const auto function = [](std::span<const tg::Var> inputs) { return sharp_logsumexp(inputs[0]); };
  const tg::GradcheckResult result = tg::gradcheck(function, {x}, {}, "sharp_logsumexp");
  CAPTURE(tg::format_report(result));
  CHECK(result.passed());
  CHECK(result.upcast_from_f32);
  CHECK(any_contains(result.notes, "f32 inputs were upcast to f64"));
  REQUIRE(result.inputs.size() == 1);
  const tg::GradcheckInputReport& report = result.inputs[0];
  CHECK(report.analytical == doctest::Approx(expected[static_cast<std::size_t>(report.flat_index)]).epsilon(1e-12));
  CHECK(report.max_abs_error < 1e-6);
}

TEST_CASE("gradcheck checks gradient dtypes in float32") {
  // The VJP returns f64 gradients whatever the input dtype. That is right in f64, but the tape
  // rejects it for an f32 input, and only the pass in the inputs' own dtypes runs one.
  const tg::Tensor x = tg::Tensor::from_values({3}, {0.5, -0.25, 1.0}, tg::Dtype::f32);
  const auto always_f64 = [](std::span<const tg::Var> inputs) {
    tg::Tape& tape = inputs[0].tape();
    tg::Tensor y = inputs[0].value().clone();
    return tape.record("copy_f64_grad", std::move(y), {inputs[0]}, [](tg::VjpContext& context) {
      context.accumulate(0, context.cotangent().to(tg::Dtype::f64));
    });
  };
  const tg::GradcheckResult result = tg::gradcheck(always_f64, {x}, {}, "copy_f64_grad");
  CAPTURE(tg::format_report(result));
  CHECK(result.upcast_from_f32);
  CHECK(result.verdict == tg::GradcheckVerdict::invariant_broken);
  CHECK(any_contains(result.broken_invariants, "in the inputs' own dtypes"));
  CHECK(any_contains(result.broken_invariants, "a gradient of dtype f64 for input 0 of dtype f32"));
}

// ---- Invariants ----------------------------------------------------------------------------------

TEST_CASE("gradcheck reports backward passes that differ") {
  const tg::Tensor x = tg::Tensor::from_values({3}, {0.5, -0.25, 1.0});
  const tg::GradcheckResult result = tg::gradcheck(square_with(differs_between_runs), {x}, {}, "flaky_square");
  CAPTURE(tg::format_report(result));
  CHECK(result.verdict == tg::GradcheckVerdict::invariant_broken);
  CHECK(any_contains(result.broken_invariants, "two backward passes with the same seed differ at input 0, element [0] (flat 0)"));
  CHECK(result.inputs.at(0).verdict == tg::GradcheckVerdict::passed);
}

TEST_CASE("gradcheck reports a gradient from a zero seed") {
  const tg::Tensor x = tg::Tensor::from_values({3}, {0.5, -0.25, 1.0});
  for (const tg::GradcheckOptions& options : {tg::GradcheckOptions{}, kFast}) {
    const tg::GradcheckResult result =
        tg::gradcheck(square_with(nonzero_for_zero_cotangent), {x}, options, "leaky_square");
    CAPTURE(tg::format_report(result));
    CHECK(result.verdict == tg::GradcheckVerdict::invariant_broken);
    CHECK(any_contains(result.broken_invariants, "a zero seed gives a non-zero gradient at input 0, element [0] (flat 0)"));
    CHECK(any_contains(result.broken_invariants, "1.0000000000000001e-09"));
  }
}

TEST_CASE("gradcheck reports an infinite gradient") {
  const tg::Tensor x = tg::Tensor::from_values({2, 2}, {0.5, -0.25, 1.0, 2.0});
  const tg::GradcheckResult full = tg::gradcheck(square_with(returns_inf), {x}, {}, "inf_square");
  CAPTURE(tg::format_report(full));
  CHECK(full.verdict == tg::GradcheckVerdict::wrong_gradient);
  CHECK(any_contains(full.broken_invariants, "the gradient of input 0 is inf at element [1, 1] (flat 3)"));
  CHECK(full.inputs.at(0).flat_index == 3);

  const tg::GradcheckResult fast = tg::gradcheck(square_with(returns_inf), {x}, kFast, "inf_square");
  CAPTURE(tg::format_report(fast));
  CHECK(fast.verdict == tg::GradcheckVerdict::wrong_gradient);
  CHECK(any_contains(fast.broken_invariants, "seeded with v is inf at element [1, 1] (flat 3)"));
}

TEST_CASE("gradcheck reports a gradient of the wrong dtype") {
  const tg::Tensor x = tg::Tensor::from_values({3}, {0.5, -0.25, 1.0});
  const tg::GradcheckResult result = tg::gradcheck(square_with(returns_f32), {x}, {}, "f32_square");
  CAPTURE(tg::format_report(result));
  CHECK(result.verdict == tg::GradcheckVerdict::invariant_broken);
  CHECK(any_contains(result.broken_invariants, "square: a VJP must return an input gradient with the input's dtype"));
}

// ---- Bad cases and options -----------------------------------------------------------------------

TEST_CASE("gradcheck rejects invalid cases and options") {
  const tg::Tensor x = tg::Tensor::from_values({3}, {0.5, -0.25, 1.0});
  const tg::Tensor mask = tg::Tensor::from_values({3}, {1, 0, 1}, tg::Dtype::boolean);

  CHECK_THROWS_WITH_AS(tg::gradcheck(square_with(correct), {x}, {.eps = -1.0}),
                       "gradcheck: the step eps must be positive and finite, but got eps -1", tg::ValueError);
  CHECK_THROWS_WITH_AS(tg::gradcheck(square_with(correct), {x}, {.rtol = std::nan("")}),
                       "gradcheck: the tolerances atol and rtol must be finite and >= 0, but got atol 1e-05 and rtol nan",
                       tg::ValueError);
  // Only a boolean input: nothing to differentiate.
  CHECK_THROWS_AS(tg::gradcheck(square_with(correct), {mask}), tg::ValueError);

  tg::GradcheckCase boolean_differentiable{
      .op = "square", .name = "mask", .inputs = {{.values = mask}}, .function = square_with(correct)};
  CHECK_THROWS_WITH_AS(tg::gradcheck(boolean_differentiable),
                       "gradcheck: a differentiable input must be f32 or f64; mark a mask differentiable = false, but got "
                       "case square/mask, input 0 of dtype boolean",
                       tg::DtypeError);

  tg::GradcheckCase shapes_disagree{
      .op = "square", .name = "shapes", .inputs = {{.shape = {2, 2}, .values = x}}, .function = square_with(correct)};
  CHECK_THROWS_WITH_AS(tg::gradcheck(shapes_disagree),
                       "gradcheck: an input's shape must match the shape of its given values, but got case "
                       "square/shapes, input 0: shape [2, 2] and values of shape [3]",
                       tg::ShapeError);

  tg::GradcheckCase mask_without_values{.op = "square",
                                        .name = "random_mask",
                                        .inputs = {{.shape = {3}}, {.shape = {3}, .dtype = tg::Dtype::boolean, .differentiable = false}},
                                        .function = square_with(correct)};
  CHECK_THROWS_AS(tg::gradcheck(mask_without_values), tg::ValueError);

  tg::Tape other;
  const tg::Var stranger = other.leaf(x);
  const auto wrong_tape = [&stranger](std::span<const tg::Var>) { return stranger; };
  CHECK_THROWS_WITH_AS(tg::gradcheck(wrong_tape, {x}),
                       "gradcheck: a case's function must return a Var recorded on the tape of its inputs, but got case "
                       "function/direct returned a Var of another tape",
                       tg::ValueError);
}

TEST_CASE("case overrides replace the options and need a reason") {
  tg::GradcheckRegistry registry;
  CHECK_THROWS_AS(registry.add({.op = "square", .name = "loose", .inputs = {{.shape = {3}}},
                                .function = square_with(correct), .atol = 1e-3}),
                  tg::ValueError);
  registry.add({.op = "square",
                .name = "coarse_step",
                .inputs = {{.shape = {3}}},
                .function = square_with(correct),
                .eps = 1e-4,
                .override_reason = "tests that the case's step replaces the default"});
  const tg::GradcheckResult result = tg::gradcheck(*registry.cases_of("square").at(0), {.eps = 1e-6});
  CHECK(result.eps == 1e-4);
  CHECK(result.atol == 1e-5);
  CHECK(result.passed());
}

// ---- The tool ------------------------------------------------------------------------------------

namespace {

struct ToolRun {
  int status = -1;
  std::string out;
  std::string err;
};

// Runs the tool as a program whose argv[0] is `program`.
ToolRun run_tool(const tg::GradcheckRegistry& registry, std::vector<std::string> arguments,
                 const std::string& program = "tapegrad-gradcheck") {
  arguments.insert(arguments.begin(), program);
  std::vector<const char*> argv;
  for (const std::string& argument : arguments) {
    argv.push_back(argument.c_str());
  }
  std::ostringstream out;
  std::ostringstream err;
  ToolRun run;
  run.status = tg::run_gradcheck_tool(static_cast<int>(argv.size()), argv.data(), registry, out, err);
  run.out = out.str();
  run.err = err.str();
  return run;
}

tg::GradcheckRegistry tool_registry() {
  tg::GradcheckRegistry registry;
  registry.add({.op = "square", .name = "vector", .inputs = {{.shape = {4}}}, .function = square_with(correct)});
  registry.add({.op = "square", .name = "f32_matrix", .inputs = {{.shape = {2, 3}, .dtype = tg::Dtype::f32}},
                .function = square_with(correct)});
  registry.add({.op = "add_row", .name = "three_rows", .inputs = {{.shape = {3, 2}}, {.shape = {1, 2}}},
                .function = add_row_with(correct)});
  registry.add({.op = "scaled_square", .name = "vector",
                .inputs = {{.values = tg::Tensor::from_values({3}, {0.5, -1.5, 0.25})}},
                .function = square_with(scaled_by_1_01)});
  return registry;
}

}  // namespace

TEST_CASE("tool exits 0 when every selected case passes") {
  const ToolRun run = run_tool(tool_registry(), {"square", "add_row"});
  CAPTURE(run.out);
  CHECK(run.status == 0);
  CHECK(run.err.empty());
  CHECK(contains(run.out, "\n3 passed, 0 failed\n"));
  CHECK(run.out.ends_with("3 passed, 0 failed\n"));
  CHECK(contains(run.out, "f32 inputs checked in f64"));
  CHECK_FALSE(contains(run.out, "scaled_square"));
}

TEST_CASE("tool exits 1 and names the failing op") {
  const ToolRun run = run_tool(tool_registry(), {});
  CAPTURE(run.out);
  CHECK(run.status == 1);
  CHECK(run.out.ends_with("\n3 passed, 1 failed\n"));
  CHECK(contains(run.out, "wrong gradient at input 0, element [1]"));
  // The failing case's line starts with its op and case.
  CHECK(contains(run.out, "\nscaled_square  vector"));
}

TEST_CASE("tool exits 2 for an unknown op and lists the known ones") {
  const ToolRun run = run_tool(tool_registry(), {"square", "cube"});
  CHECK(run.status == 2);
  CHECK(run.out.empty());
  CHECK(contains(run.err, "known ops: square, add_row, scaled_square"));
  CHECK(contains(run.err, "but got 'cube'"));
  CHECK(contains(run.err, "OP/CASE or case name"));
  CHECK(contains(run.err, "run tapegrad-gradcheck --list to see every case"));
}

TEST_CASE("tool selects one case by OP/CASE") {
  const ToolRun run = run_tool(tool_registry(), {"square/f32_matrix"});
  CAPTURE(run.out);
  CHECK(run.status == 0);
  CHECK(run.err.empty());
  CHECK(contains(run.out, "\nsquare  f32_matrix"));
  CHECK_FALSE(contains(run.out, "square  vector"));
  CHECK(run.out.ends_with("\n1 passed, 0 failed\n"));
}

TEST_CASE("tool selects one case by a unique case name") {
  // three_rows is a case of add_row only, and f32_matrix of square only.
  const ToolRun run = run_tool(tool_registry(), {"three_rows", "f32_matrix"});
  CAPTURE(run.out);
  CHECK(run.status == 0);
  CHECK(run.err.empty());
  CHECK(contains(run.out, "\nadd_row  three_rows"));
  CHECK(contains(run.out, "\nsquare   f32_matrix"));
  CHECK(run.out.ends_with("\n2 passed, 0 failed\n"));
}

TEST_CASE("tool rejects a case name of several ops") {
  // Both square and scaled_square have a case named vector.
  const ToolRun run = run_tool(tool_registry(), {"vector"});
  CHECK(run.status == 2);
  CHECK(run.out.empty());
  CHECK(contains(run.err, "tapegrad-gradcheck: a case name must belong to one op, or be written as OP/CASE, but got "
                          "'vector', a case of 2 ops (square/vector, scaled_square/vector)"));
}

TEST_CASE("tool rejects an OP/CASE that is not registered") {
  const ToolRun wrong_case = run_tool(tool_registry(), {"square/three_rows"});
  CHECK(wrong_case.status == 2);
  CHECK(contains(wrong_case.err, "but got 'square/three_rows'"));
  const ToolRun empty_case = run_tool(tool_registry(), {"square/"});
  CHECK(empty_case.status == 2);
  CHECK(contains(empty_case.err, "but got 'square/'"));
}

TEST_CASE("tool names itself after argv[0]") {
  const ToolRun help = run_tool(tool_registry(), {"--help"}, "/opt/my tools/myop");
  CAPTURE(help.out);
  CHECK(help.status == 0);
  CHECK(contains(help.out, "myop"));
  CHECK_FALSE(contains(help.out, "tapegrad-gradcheck"));
  CHECK_FALSE(contains(help.out, "/opt/my tools"));

  const ToolRun unknown = run_tool(tool_registry(), {"cube"}, "./myop");
  CHECK(unknown.status == 2);
  CHECK(unknown.err.starts_with("myop: each OP must be"));
  CHECK(contains(unknown.err, "run myop --list"));

  // An empty argv[0] falls back to the tool's own name.
  const ToolRun unnamed = run_tool(tool_registry(), {"cube"}, "");
  CHECK(unnamed.err.starts_with("tapegrad-gradcheck: each OP must be"));
}

TEST_CASE("tool exits 2 for invalid options") {
  CHECK(run_tool(tool_registry(), {"--eps", "0"}).status == 2);
  CHECK(run_tool(tool_registry(), {"--atol", "-1"}).status == 2);
  CHECK(run_tool(tool_registry(), {"--format", "yaml"}).status == 2);
  CHECK(run_tool(tool_registry(), {"--seed", "minus"}).status == 2);
  const ToolRun run = run_tool(tool_registry(), {"--rtol", "inf"});
  CHECK(run.status == 2);
  CHECK(contains(run.err, "--rtol: the value must be a finite number >= 0, but got inf"));
}

TEST_CASE("tool help documents every option and its default") {
  const ToolRun run = run_tool(tool_registry(), {"--help"});
  CHECK(run.status == 0);
  for (const char* option : {"--list", "--fast", "--eps", "--atol", "--rtol", "--seed", "--format"}) {
    CAPTURE(option);
    CHECK(contains(run.out, option));
  }
  CHECK(contains(run.out, "=1e-06"));
  CHECK(contains(run.out, "=1e-05"));
  CHECK(contains(run.out, "=0.001"));
  CHECK(contains(run.out, "=table"));
  CHECK(contains(run.out, "Exit status"));
}

TEST_CASE("tool lists cases without checking them") {
  const ToolRun run = run_tool(tool_registry(), {"--list", "square"});
  CHECK(run.status == 0);
  CHECK(run.out == "square/vector: [4] f64\nsquare/f32_matrix: [2, 3] f32\n");
}

TEST_CASE("tool shows no error for a case that compared nothing") {
  // add_row's unreduced b̄ has a's shape, so every backward pass raises and no derivative is
  // compared: the error columns show "-" in the table and null in JSON.
  tg::GradcheckRegistry registry;
  registry.add({.op = "add_row", .name = "not_reduced", .inputs = {{.shape = {3, 2}}, {.shape = {1, 2}}},
                .function = add_row_with(not_reduced)});
  for (const char* mode : {"--eps=1e-6", "--fast"}) {
    CAPTURE(mode);
    const ToolRun table = run_tool(registry, {mode});
    CAPTURE(table.out);
    CHECK(table.status == 1);
    const std::size_t start = table.out.find("\nadd_row  not_reduced");
    REQUIRE(start != std::string::npos);
    const std::string line = table.out.substr(start + 1, table.out.find('\n', start + 1) - start - 1);
    std::istringstream columns(line);
    std::string op, name, run_mode, abs_error, rel_error;
    columns >> op >> name >> run_mode >> abs_error >> rel_error;
    CHECK(abs_error == "-");
    CHECK(rel_error == "-");
    CHECK(contains(line, "invariant broken ("));
    CHECK(contains(line, " invariants)"));
    CHECK_FALSE(contains(table.out, "0.000e+00"));
    // The op leads the tape's message once, not twice.
    CHECK(contains(table.out, "raised add_row: a VJP must return an input gradient with the input's shape"));
    CHECK_FALSE(contains(table.out, "add_row: add_row:"));

    const ToolRun json = run_tool(registry, {mode, "--format", "json"});
    CHECK(json.status == 1);
    const nlohmann::json record = nlohmann::json::parse(json.out)["cases"][0];
    CAPTURE(record.dump());
    CHECK(record["verdict"] == "invariant broken");
    CHECK(record["max_abs_error"].is_null());
    CHECK(record["max_rel_error"].is_null());
    CHECK(record["worst_index"].is_null());
    CHECK(record["numerical"].is_null());
    CHECK(record["analytical"].is_null());
  }
}

TEST_CASE("reports put counts and nouns in agreement") {
  // One element scaled by 1.01: one failed Jacobian entry.
  const tg::Tensor x = tg::Tensor::from_values({1}, {0.5});
  const tg::GradcheckResult one = tg::gradcheck(square_with(scaled_by_1_01), {x}, {}, "square");
  CHECK(contains(tg::format_report(one), "; 1 failed entry\n"));
  const tg::Tensor x3 = tg::Tensor::from_values({3}, {0.5, -1.5, 0.25});
  const tg::GradcheckResult three = tg::gradcheck(square_with(scaled_by_1_01), {x3}, {}, "square");
  CHECK(contains(tg::format_report(three), "; 3 failed entries\n"));

  // A case with one constant input: the message reads "1 input", not "1 inputs".
  tg::GradcheckCase constant_only{.op = "square", .name = "constant", .inputs = {{.shape = {2}, .differentiable = false}},
                                  .function = square_with(correct)};
  CHECK_THROWS_WITH_AS(tg::gradcheck(constant_only),
                       "gradcheck: a case needs at least one differentiable input, but got case square/constant with 1 "
                       "input, none differentiable",
                       tg::ValueError);

  // A VJP with a gradient for a zero cotangent breaks exactly one invariant.
  tg::GradcheckRegistry registry;
  registry.add({.op = "square", .name = "leaky", .inputs = {{.shape = {3}}},
                .function = square_with(nonzero_for_zero_cotangent)});
  const ToolRun run = run_tool(registry, {});
  CAPTURE(run.out);
  CHECK(contains(run.out, "invariant broken (1 invariant)"));
}

TEST_CASE("tool writes JSON records with the report fields") {
  const ToolRun run = run_tool(tool_registry(), {"--format", "json", "--fast", "--seed", "7"});
  CAPTURE(run.out);
  CHECK(run.status == 1);
  const nlohmann::json document = nlohmann::json::parse(run.out);
  CHECK(document["mode"] == "fast");
  CHECK(document["seed"] == 7);
  CHECK(document["passed"] == 3);
  CHECK(document["failed"] == 1);
  REQUIRE(document["cases"].size() == 4);
  for (const nlohmann::json& record : document["cases"]) {
    for (const char* field : {"op", "case", "mode", "passed", "max_abs_error", "max_rel_error", "worst_index",
                              "numerical", "analytical", "seed", "upcast_from_f32", "broken_invariants", "notes"}) {
      CAPTURE(field);
      CHECK(record.contains(field));
    }
  }
  const nlohmann::json& f32_case = document["cases"][1];
  CHECK(f32_case["upcast_from_f32"] == true);
  CHECK(f32_case["worst_index"].is_null());  // fast mode passed: one projection, no element

  const nlohmann::json& failing = document["cases"][3];
  CHECK(failing["op"] == "scaled_square");
  CHECK(failing["passed"] == false);
  CHECK(failing["verdict"] == "wrong gradient");
  CHECK(failing["fell_back_to_full"] == true);
  CHECK(failing["worst_index"]["input"] == 0);
  CHECK(failing["worst_index"]["flat_index"] == 1);
  CHECK(failing["worst_index"]["multi_index"] == nlohmann::json::array({1}));
  CHECK(failing["numerical"].get<double>() == doctest::Approx(-3.0).epsilon(1e-8));
  CHECK(failing["analytical"].get<double>() == doctest::Approx(-3.03).epsilon(1e-12));
  CHECK(failing["max_abs_error"].get<double>() == doctest::Approx(0.03).epsilon(1e-6));
  CHECK(failing["seed"] == 7);
}

TEST_CASE("user program with a wrong VJP gets status 1") {
  // A program outside the library registers its own op and calls the tool's entry point, as its
  // main would.
  tg::GradcheckRegistry registry;
  registry.add({.op = "user_square",
                .name = "wrong_factor",
                .inputs = {{.shape = {2, 3}, .low = 0.5, .high = 2.0}},
                .function = square_with(scaled_by_1_01)});
  const ToolRun run = run_tool(registry, {"user_square"});
  CAPTURE(run.out);
  CHECK(run.status == 1);
  CHECK(contains(run.out, "user_square"));
  CHECK(contains(run.out, "wrong gradient"));
  CHECK(run.out.ends_with("0 passed, 1 failed\n"));
}
