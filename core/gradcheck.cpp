#include "gradcheck.hpp"

#include <algorithm>
#include <cmath>
#include <limits>

namespace tapegrad {
namespace {

// Draws or copies the inputs of a case, in float64.
std::vector<Tensor> make_inputs(const GradcheckCase& gradcheck_case, std::uint64_t seed, bool& upcast) {
  std::vector<Tensor> inputs;
  for (std::size_t i = 0; i < gradcheck_case.inputs.size(); ++i) {
    const GradcheckInput& spec = gradcheck_case.inputs[i];
    Tensor value = spec.values ? *spec.values
                               : Tensor::uniform(spec.shape, spec.low, spec.high, seed * 1000003u + i, Dtype::f64);
    if (value.dtype() == Dtype::f32 || spec.dtype == Dtype::f32) {
      upcast = true;
    }
    inputs.push_back(is_floating(value.dtype()) ? value.to(Dtype::f64) : value.clone());
  }
  return inputs;
}

// Evaluates the case on a fresh tape and returns the output values.
Tensor evaluate(const GradcheckCase& gradcheck_case, const std::vector<Tensor>& inputs) {
  Tape tape;
  std::vector<Var> vars;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    vars.push_back(gradcheck_case.inputs[i].differentiable ? tape.leaf(inputs[i]) : tape.constant(inputs[i]));
  }
  return gradcheck_case.function(vars).value().clone();
}

// The analytical Jacobian rows: for each output element o, the gradient of y[o] with respect to
// each input, from one backward pass with a one-hot seed.
std::vector<std::vector<Tensor>> analytical_rows(const GradcheckCase& gradcheck_case, const std::vector<Tensor>& inputs,
                                                 std::int64_t output_count) {
  Tape tape;
  std::vector<Var> vars;
  for (std::size_t i = 0; i < inputs.size(); ++i) {
    vars.push_back(gradcheck_case.inputs[i].differentiable ? tape.leaf(inputs[i]) : tape.constant(inputs[i]));
  }
  Var output = gradcheck_case.function(vars);
  std::vector<std::vector<Tensor>> rows;
  for (std::int64_t o = 0; o < output_count; ++o) {
    tape.zero_grad();
    Tensor seed = Tensor::zeros(output.shape(), Dtype::f64);
    seed.data<double>()[o] = 1.0;
    tape.backward(output, seed);
    std::vector<Tensor> row;
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      row.push_back(gradcheck_case.inputs[i].differentiable ? vars[i].grad().clone() : Tensor());
    }
    rows.push_back(std::move(row));
  }
  return rows;
}

}  // namespace

std::string_view verdict_name(GradcheckVerdict verdict) {
  switch (verdict) {
    case GradcheckVerdict::passed: return "passed";
    case GradcheckVerdict::wrong_gradient: return "wrong gradient";
    case GradcheckVerdict::non_differentiable_point: return "non-differentiable point";
    case GradcheckVerdict::invariant_broken: return "invariant broken";
  }
  return "unknown";
}

double GradcheckResult::max_abs_error() const {
  double worst = 0.0;
  for (const GradcheckInputReport& report : inputs) {
    worst = std::max(worst, report.abs_error);
  }
  return worst;
}

double GradcheckResult::max_rel_error() const {
  double worst = 0.0;
  for (const GradcheckInputReport& report : inputs) {
    worst = std::max(worst, report.rel_error);
  }
  return worst;
}

GradcheckResult gradcheck(const GradcheckCase& gradcheck_case, const GradcheckOptions& options) {
  GradcheckResult result;
  result.op = gradcheck_case.op;
  result.name = gradcheck_case.name;
  result.mode = GradcheckMode::full;
  result.eps = gradcheck_case.eps.value_or(options.eps);
  result.atol = gradcheck_case.atol.value_or(options.atol);
  result.rtol = gradcheck_case.rtol.value_or(options.rtol);
  result.seed = options.seed + gradcheck_case.seed;

  std::vector<Tensor> inputs = make_inputs(gradcheck_case, result.seed, result.upcast_from_f32);
  const Tensor output = evaluate(gradcheck_case, inputs);
  const std::int64_t output_count = output.numel();
  const auto rows = analytical_rows(gradcheck_case, inputs, output_count);

  for (std::size_t i = 0; i < inputs.size(); ++i) {
    if (!gradcheck_case.inputs[i].differentiable) {
      continue;
    }
    GradcheckInputReport report;
    report.input = static_cast<std::int64_t>(i);
    double worst_excess = -std::numeric_limits<double>::infinity();
    double* element = inputs[i].data<double>();
    for (std::int64_t k = 0; k < inputs[i].numel(); ++k) {
      const double original = element[k];
      element[k] = original + result.eps;
      const Tensor plus = evaluate(gradcheck_case, inputs);
      element[k] = original - result.eps;
      const Tensor minus = evaluate(gradcheck_case, inputs);
      element[k] = original;
      for (std::int64_t o = 0; o < output_count; ++o) {
        const double numerical = (plus.data<double>()[o] - minus.data<double>()[o]) / (2 * result.eps);
        const double analytical = rows[static_cast<std::size_t>(o)][i].data<double>()[k];
        const double abs_error = std::abs(analytical - numerical);
        const double excess = abs_error - (result.atol + result.rtol * std::abs(numerical));
        if (excess > worst_excess || std::isnan(abs_error)) {
          worst_excess = std::isnan(abs_error) ? std::numeric_limits<double>::infinity() : excess;
          report.output_index = o;
          report.flat_index = k;
          report.numerical = numerical;
          report.analytical = analytical;
          report.abs_error = abs_error;
          report.rel_error = abs_error / std::max(std::abs(numerical), std::numeric_limits<double>::min());
        }
      }
    }
    // Convert the worst flat index to one index per axis.
    std::int64_t remainder = report.flat_index;
    report.multi_index.assign(static_cast<std::size_t>(inputs[i].rank()), 0);
    for (std::int64_t axis = inputs[i].rank() - 1; axis >= 0 && inputs[i].numel() > 0; --axis) {
      report.multi_index[static_cast<std::size_t>(axis)] = remainder % inputs[i].shape()[axis];
      remainder /= inputs[i].shape()[axis];
    }
    if (worst_excess > 0) {
      report.verdict = GradcheckVerdict::wrong_gradient;
      result.verdict = GradcheckVerdict::wrong_gradient;
    }
    result.inputs.push_back(std::move(report));
  }
  return result;
}

}  // namespace tapegrad
