#include "gradcheck.hpp"

#include <algorithm>
#include <bit>
#include <cmath>
#include <limits>

#include <fmt/ranges.h>

namespace tapegrad {
namespace {

constexpr std::string_view kOp = "gradcheck";
constexpr double kInfinity = std::numeric_limits<double>::infinity();

// ---- Preparing a case --------------------------------------------------------------------------

void check_options(double eps, double atol, double rtol) {
  if (!(eps > 0) || !std::isfinite(eps)) {
    raise<ValueError>(kOp, "the step eps must be positive and finite", "eps {}", eps);
  }
  if (!(atol >= 0) || !std::isfinite(atol) || !(rtol >= 0) || !std::isfinite(rtol)) {
    raise<ValueError>(kOp, "the tolerances atol and rtol must be finite and >= 0", "atol {} and rtol {}", atol, rtol);
  }
}

// The values of one input in the dtype the case gives it, drawn or copied.
Tensor make_input(const GradcheckCase& gradcheck_case, std::size_t position, std::uint64_t seed) {
  const GradcheckInput& spec = gradcheck_case.inputs[position];
  const auto name = [&] { return fmt::format("{}/{}", gradcheck_case.op, gradcheck_case.name); };
  if (spec.values) {
    const Tensor& values = *spec.values;
    if (!values.defined()) {
      raise<ValueError>(kOp, "given input values must be a defined tensor", "case {}, input {}: an undefined tensor",
                        name(), position);
    }
    // A default shape or dtype means "take them from the values"; anything else must agree.
    if (spec.shape.rank() != 0 && spec.shape != values.shape()) {
      raise<ShapeError>(kOp, "an input's shape must match the shape of its given values",
                        "case {}, input {}: shape {} and values of shape {}", name(), position, spec.shape,
                        values.shape());
    }
    if (spec.dtype != Dtype::f64 && spec.dtype != values.dtype()) {
      raise<DtypeError>(kOp, "an input's dtype must match the dtype of its given values",
                        "case {}, input {}: dtype {} and values of dtype {}", name(), position, spec.dtype,
                        values.dtype());
    }
    return values.clone();
  }
  if (spec.dtype == Dtype::boolean) {
    raise<ValueError>(kOp, "a boolean input (a mask) needs explicit values",
                      "case {}, input {}: a boolean input of shape {} without values", name(), position, spec.shape);
  }
  // Drawing in the input's own dtype keeps f32 inputs exactly representable in f32.
  return Tensor::uniform(spec.shape, spec.low, spec.high, seed * 1000003u + position, spec.dtype);
}

struct PreparedInputs {
  std::vector<Tensor> native;  // in the dtypes the case gives
  std::vector<Tensor> values;  // floating inputs in f64, the rest as given
  std::vector<char> differentiable;
  bool upcast = false;
};

PreparedInputs prepare_inputs(const GradcheckCase& gradcheck_case, std::uint64_t seed) {
  PreparedInputs prepared;
  bool any_differentiable = false;
  for (std::size_t i = 0; i < gradcheck_case.inputs.size(); ++i) {
    Tensor native = make_input(gradcheck_case, i, seed);
    const bool differentiable = gradcheck_case.inputs[i].differentiable;
    if (differentiable && !is_floating(native.dtype())) {
      raise<DtypeError>(kOp, "a differentiable input must be f32 or f64; mark a mask differentiable = false",
                        "case {}/{}, input {} of dtype {}", gradcheck_case.op, gradcheck_case.name, i,
                        native.dtype());
    }
    any_differentiable = any_differentiable || differentiable;
    prepared.upcast = prepared.upcast || native.dtype() == Dtype::f32;
    prepared.values.push_back(is_floating(native.dtype()) ? native.to(Dtype::f64) : native);
    prepared.native.push_back(std::move(native));
    prepared.differentiable.push_back(differentiable ? 1 : 0);
  }
  if (!any_differentiable) {
    const std::size_t count = gradcheck_case.inputs.size();
    raise<ValueError>(kOp, "a case needs at least one differentiable input", "case {}/{} with {} {}, none differentiable",
                      gradcheck_case.op, gradcheck_case.name, count, count == 1 ? "input" : "inputs");
  }
  return prepared;
}

std::vector<std::int64_t> unravel(std::int64_t flat_index, const Shape& shape) {
  std::vector<std::int64_t> index(static_cast<std::size_t>(shape.rank()), 0);
  for (std::int64_t axis = shape.rank() - 1; axis >= 0 && shape.numel() > 0; --axis) {
    index[static_cast<std::size_t>(axis)] = flat_index % shape[axis];
    flat_index /= shape[axis];
  }
  return index;
}

std::string describe_element(std::int64_t flat_index, const Shape& shape) {
  return fmt::format("[{}] (flat {})", fmt::join(unravel(flat_index, shape), ", "), flat_index);
}

// ---- Running the function ----------------------------------------------------------------------

// Records a case's function on one tape, reused (cleared) for every evaluation so that its
// buffers are recycled.
class CaseRunner {
 public:
  CaseRunner(const GradcheckCase& gradcheck_case, const std::vector<char>& differentiable)
      : case_(gradcheck_case), differentiable_(differentiable) {}

  // Clears the tape, records inputs and the function, and returns the checked output.
  Var record(const std::vector<Tensor>& inputs) {
    tape.clear();
    vars.clear();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      vars.push_back(differentiable_[i] ? tape.leaf(inputs[i]) : tape.constant(inputs[i]));
    }
    Var output = case_.function(vars);
    if (!output.defined() || &output.tape() != &tape) {
      raise<ValueError>(kOp, "a case's function must return a Var recorded on the tape of its inputs",
                        "case {}/{} returned {}", case_.op, case_.name,
                        output.defined() ? "a Var of another tape" : "a default-constructed Var");
    }
    if (!is_floating(output.dtype())) {
      raise<DtypeError>(kOp, "a case's function must return an f32 or f64 output", "case {}/{} returned dtype {}",
                        case_.op, case_.name, output.dtype());
    }
    return output;
  }

  // Evaluates the function at inputs and writes its output, as double, into values.
  void evaluate(const std::vector<Tensor>& inputs, std::vector<double>& values) {
    const Var output = record(inputs);
    const Tensor& tensor = output.value();
    values.resize(static_cast<std::size_t>(tensor.numel()));
    dispatch_floating(tensor.dtype(), [&](auto zero) {
      using T = decltype(zero);
      const T* data = tensor.data<T>();
      for (std::int64_t o = 0; o < tensor.numel(); ++o) {
        values[static_cast<std::size_t>(o)] = static_cast<double>(data[o]);
      }
    });
  }

  Tape tape;
  std::vector<Var> vars;

 private:
  const GradcheckCase& case_;
  const std::vector<char>& differentiable_;
};

// Runs one backward pass from output with seed and returns the gradient of every input
// (undefined for constants), as copies that outlive the tape's next clear.
std::vector<Tensor> backward_gradients(CaseRunner& runner, const Var& output, const Tensor& seed,
                                       const std::vector<char>& differentiable) {
  runner.tape.zero_grad();
  std::vector<Tensor> gradients(differentiable.size());
  if (!output.requires_grad()) {
    // The output depends on no leaf, so every gradient is zero.
    for (std::size_t i = 0; i < differentiable.size(); ++i) {
      if (differentiable[i]) {
        gradients[i] = Tensor::zeros(runner.vars[i].shape(), runner.vars[i].dtype());
      }
    }
    return gradients;
  }
  runner.tape.backward(output, seed);
  for (std::size_t i = 0; i < differentiable.size(); ++i) {
    if (differentiable[i]) {
      gradients[i] = runner.vars[i].grad().clone();
    }
  }
  return gradients;
}

// A unit vector of the given shape from standard normal samples, in f64.
Tensor random_unit(const Shape& shape, std::uint64_t seed) {
  Tensor vector = Tensor::randn(shape, seed, Dtype::f64);
  double* values = vector.data<double>();
  double norm = 0.0;
  for (std::int64_t i = 0; i < vector.numel(); ++i) {
    norm += values[i] * values[i];
  }
  norm = std::sqrt(norm);
  for (std::int64_t i = 0; i < vector.numel() && norm > 0; ++i) {
    values[i] /= norm;
  }
  return vector;
}

// The message of error already starts with its op, so the op is not repeated here.
std::string backward_failure(std::string_view when, const Error& error) {
  return fmt::format("the backward pass {} raised {}", when, error.what());
}

// ---- Invariants --------------------------------------------------------------------------------

// Checks that two backward passes with the same seed agree bit for bit and that a zero seed gives
// zero gradients, adding a message to result for each that does not hold.
void check_backward_invariants(CaseRunner& runner, const PreparedInputs& prepared, const Tensor& seed,
                               GradcheckResult& result) {
  try {
    const Var output = runner.record(prepared.values);
    const std::vector<Tensor> first = backward_gradients(runner, output, seed, prepared.differentiable);
    const std::vector<Tensor> second = backward_gradients(runner, output, seed, prepared.differentiable);
    for (std::size_t i = 0; i < first.size(); ++i) {
      if (!prepared.differentiable[i]) {
        continue;
      }
      const double* a = first[i].data<double>();
      const double* b = second[i].data<double>();
      for (std::int64_t k = 0; k < first[i].numel(); ++k) {
        if (std::bit_cast<std::uint64_t>(a[k]) != std::bit_cast<std::uint64_t>(b[k])) {
          result.broken_invariants.push_back(fmt::format(
              "two backward passes with the same seed differ at input {}, element {}: {:.17g} then {:.17g}", i,
              describe_element(k, first[i].shape()), a[k], b[k]));
          break;
        }
      }
    }

    const Tensor zero_seed = Tensor::zeros(seed.shape(), Dtype::f64);
    const std::vector<Tensor> zero = backward_gradients(runner, output, zero_seed, prepared.differentiable);
    for (std::size_t i = 0; i < zero.size(); ++i) {
      if (!prepared.differentiable[i]) {
        continue;
      }
      const double* g = zero[i].data<double>();
      for (std::int64_t k = 0; k < zero[i].numel(); ++k) {
        if (g[k] != 0.0) {
          result.broken_invariants.push_back(
              fmt::format("a zero seed gives a non-zero gradient at input {}, element {}: {:.17g}", i,
                          describe_element(k, zero[i].shape()), g[k]));
          break;
        }
      }
    }
  } catch (const Error& error) {
    result.broken_invariants.push_back(backward_failure("for the invariant checks", error));
  }
}

// Runs forward and backward once in the inputs' own dtypes, where the tape checks that each input
// gradient has its input's dtype (f32 for an f32 input), which the f64 check cannot see.
void check_native_dtypes(const GradcheckCase& gradcheck_case, const PreparedInputs& prepared, GradcheckResult& result) {
  CaseRunner runner(gradcheck_case, prepared.differentiable);
  Var output;
  try {
    output = runner.record(prepared.native);
  } catch (const Error& error) {
    result.notes.push_back(fmt::format(
        "the function raised on the inputs in their own dtypes, so their gradient dtypes were not checked: {}",
        error.what()));
    return;
  }
  try {
    const Tensor seed = Tensor::ones(output.shape(), output.dtype());
    (void)backward_gradients(runner, output, seed, prepared.differentiable);
  } catch (const Error& error) {
    result.broken_invariants.push_back(backward_failure("in the inputs' own dtypes", error));
  }
}

// ---- Full mode ---------------------------------------------------------------------------------

// Judges the Jacobian entries of one input and keeps the worst in its report. Failures rank by
// kind first (a non-finite numerical value, then an unexplained mismatch, then a kink), so the
// report shows the entry that decides the verdict. Within a kind, and among passing entries, the
// largest error relative to its tolerance is the worst.
class EntryJudge {
 public:
  EntryJudge(GradcheckInputReport& report, double atol, double rtol) : report_(report), atol_(atol), rtol_(rtol) {}

  void judge(std::int64_t output_index, std::int64_t element, double numerical, double analytical, double forward,
             double backward) {
    const double abs_error = std::abs(analytical - numerical);
    const double tolerance = atol_ + rtol_ * std::abs(numerical);
    const bool failed = !(abs_error <= tolerance);
    int rank = 0;
    if (failed) {
      ++report_.failed_entries;
      if (!std::isfinite(numerical)) {
        rank = 3;
        ++non_finite_entries_;
      } else if (is_kink(numerical, analytical, forward, backward)) {
        rank = 1;
        ++kink_entries_;
        auto& elements = report_.non_differentiable_elements;
        if (std::find(elements.begin(), elements.end(), element) == elements.end()) {
          elements.push_back(element);
        }
      } else {
        rank = 2;
      }
    }
    report_.max_abs_error = std::max(report_.max_abs_error, std::isnan(abs_error) ? kInfinity : abs_error);
    if (std::abs(numerical) > atol_ && std::isfinite(numerical)) {
      report_.max_rel_error = std::max(report_.max_rel_error, abs_error / std::abs(numerical));
    }

    // The error as a multiple of its tolerance, so entries of different sizes compare fairly.
    double ratio = abs_error / tolerance;
    if (std::isnan(ratio)) {
      ratio = abs_error == 0 ? 0.0 : kInfinity;
    }
    if (rank > worst_rank_ || (rank == worst_rank_ && ratio > worst_ratio_)) {
      worst_rank_ = rank;
      worst_ratio_ = ratio;
      report_.output_index = output_index;
      report_.flat_index = element;
      report_.numerical = numerical;
      report_.analytical = analytical;
      report_.forward_difference = forward;
      report_.backward_difference = backward;
      report_.abs_error = abs_error;
      report_.tolerance = tolerance;
      report_.rel_error = numerical != 0 ? abs_error / std::abs(numerical) : (abs_error == 0 ? 0.0 : kInfinity);
    }
  }

  // Sets the report's verdict and the worst element's multi-index.
  void finish(const Shape& shape) {
    std::sort(report_.non_differentiable_elements.begin(), report_.non_differentiable_elements.end());
    report_.multi_index = unravel(report_.flat_index, shape);
    if (report_.failed_entries == 0) {
      report_.verdict = GradcheckVerdict::passed;
    } else if (non_finite_entries_ > 0) {
      report_.verdict = GradcheckVerdict::numerical_not_finite;
    } else if (kink_entries_ == report_.failed_entries) {
      report_.verdict = GradcheckVerdict::non_differentiable_point;
    } else {
      report_.verdict = GradcheckVerdict::wrong_gradient;
    }
  }

 private:
  // True when the one-sided differences disagree beyond tolerance and the analytical value lies
  // between them, within the entry's tolerance: a kink, or a tie closer than the step.
  bool is_kink(double numerical, double analytical, double forward, double backward) const {
    const double spread_tolerance = atol_ + rtol_ * std::max(std::abs(forward), std::abs(backward));
    const double tolerance = atol_ + rtol_ * std::abs(numerical);
    const double low = std::min(forward, backward) - tolerance;
    const double high = std::max(forward, backward) + tolerance;
    return std::abs(forward - backward) > spread_tolerance && analytical >= low && analytical <= high;
  }

  GradcheckInputReport& report_;
  double atol_;
  double rtol_;
  int worst_rank_ = -1;
  double worst_ratio_ = -1.0;
  std::int64_t kink_entries_ = 0;
  std::int64_t non_finite_entries_ = 0;
};

// The analytical Jacobian of each differentiable input, row-major [output element, input element],
// from one backward pass per output element with a one-hot seed.
std::vector<std::vector<double>> analytical_jacobians(CaseRunner& runner, const PreparedInputs& prepared) {
  const Var output = runner.record(prepared.values);
  const std::int64_t output_count = output.value().numel();
  std::vector<std::vector<double>> jacobians(prepared.values.size());
  for (std::size_t i = 0; i < prepared.values.size(); ++i) {
    if (prepared.differentiable[i]) {
      jacobians[i].resize(static_cast<std::size_t>(output_count * prepared.values[i].numel()));
    }
  }
  Tensor seed = Tensor::zeros(output.shape(), Dtype::f64);
  double* seed_values = seed.data<double>();
  for (std::int64_t o = 0; o < output_count; ++o) {
    seed_values[o] = 1.0;
    const std::vector<Tensor> gradients = backward_gradients(runner, output, seed, prepared.differentiable);
    seed_values[o] = 0.0;
    for (std::size_t i = 0; i < gradients.size(); ++i) {
      if (!prepared.differentiable[i]) {
        continue;
      }
      const double* gradient = gradients[i].data<double>();
      const std::int64_t count = gradients[i].numel();
      std::copy(gradient, gradient + count, jacobians[i].begin() + o * count);
    }
  }
  return jacobians;
}

// Compares the whole numerical and analytical Jacobians and fills result's input reports. Returns
// false, with a broken invariant in result, when a backward pass raised.
bool compare_full_jacobians(CaseRunner& runner, PreparedInputs& prepared, GradcheckResult& result) {
  std::vector<std::vector<double>> jacobians;
  try {
    jacobians = analytical_jacobians(runner, prepared);
  } catch (const Error& error) {
    result.broken_invariants.push_back(backward_failure("for the analytical Jacobian", error));
    return false;
  }

  const double h = result.eps;
  std::vector<double> center;
  std::vector<double> plus;
  std::vector<double> minus;
  runner.evaluate(prepared.values, center);
  const auto output_count = static_cast<std::int64_t>(center.size());

  for (std::size_t i = 0; i < prepared.values.size(); ++i) {
    if (!prepared.differentiable[i]) {
      continue;
    }
    GradcheckInputReport report;
    report.input = static_cast<std::int64_t>(i);
    EntryJudge judge(report, result.atol, result.rtol);
    bool reported_non_finite = false;
    double* element = prepared.values[i].data<double>();
    const std::int64_t count = prepared.values[i].numel();
    for (std::int64_t k = 0; k < count; ++k) {
      const double original = element[k];
      element[k] = original + h;
      runner.evaluate(prepared.values, plus);
      element[k] = original - h;
      runner.evaluate(prepared.values, minus);
      element[k] = original;
      for (std::int64_t o = 0; o < output_count; ++o) {
        const auto out = static_cast<std::size_t>(o);
        const double numerical = (plus[out] - minus[out]) / (2 * h);
        const double analytical = jacobians[i][static_cast<std::size_t>(o * count + k)];
        judge.judge(o, k, numerical, analytical, (plus[out] - center[out]) / h, (center[out] - minus[out]) / h);
        if (!reported_non_finite && !std::isfinite(analytical) && std::isfinite(numerical)) {
          reported_non_finite = true;
          result.broken_invariants.push_back(fmt::format(
              "the gradient of input {} is {} at element {} (output element {}), where the numerical derivative is "
              "finite ({:.6g})",
              i, analytical, describe_element(k, prepared.values[i].shape()), o, numerical));
        }
      }
    }
    judge.finish(prepared.values[i].shape());
    result.inputs.push_back(std::move(report));
  }
  return true;
}

// ---- Fast mode ---------------------------------------------------------------------------------

enum class ProjectionOutcome { agreed, disagreed, backward_raised };

// Compares the projections v·(J u) and (vᵀJ)·u and stores them in result. Returns whether they
// agree within the scaled tolerance, or backward_raised (with a broken invariant in result) when
// the backward pass raised before the projections could be compared.
ProjectionOutcome compare_projections(CaseRunner& runner, PreparedInputs& prepared, const Tensor& v,
                                      GradcheckResult& result) {
  // u: one unit vector over all differentiable elements, split into one tensor per input.
  std::vector<Tensor> u(prepared.values.size());
  double u_norm_squared = 0.0;
  for (std::size_t i = 0; i < prepared.values.size(); ++i) {
    if (prepared.differentiable[i]) {
      u[i] = Tensor::randn(prepared.values[i].shape(), result.seed * 1000003u + 7919u + i, Dtype::f64);
      for (double value : u[i].to_vector()) {
        u_norm_squared += value * value;
      }
    }
  }
  const double u_norm = std::sqrt(u_norm_squared);
  double u_l1 = 0.0;
  for (std::size_t i = 0; i < u.size(); ++i) {
    if (u[i].defined() && u_norm > 0) {
      double* values = u[i].data<double>();
      for (std::int64_t k = 0; k < u[i].numel(); ++k) {
        values[k] /= u_norm;
        u_l1 += std::abs(values[k]);
      }
    }
  }
  double v_l1 = 0.0;
  for (double value : v.to_vector()) {
    v_l1 += std::abs(value);
  }

  // Numerical: one central difference along u, projected on v.
  const double h = result.eps;
  std::vector<Tensor> shifted = prepared.values;
  const auto evaluate_along_u = [&](double step) {
    for (std::size_t i = 0; i < shifted.size(); ++i) {
      if (!u[i].defined()) {
        continue;
      }
      shifted[i] = prepared.values[i].clone();
      double* values = shifted[i].data<double>();
      const double* direction = u[i].data<double>();
      for (std::int64_t k = 0; k < shifted[i].numel(); ++k) {
        values[k] += step * direction[k];
      }
    }
    std::vector<double> output;
    runner.evaluate(shifted, output);
    const double* weights = v.data<double>();
    double projection = 0.0;
    for (std::size_t o = 0; o < output.size(); ++o) {
      projection += weights[o] * output[o];
    }
    return projection;
  };
  const double numerical = (evaluate_along_u(h) - evaluate_along_u(-h)) / (2 * h);

  // Analytical: one backward pass seeded with v, dotted with u.
  std::vector<Tensor> gradients;
  try {
    const Var output = runner.record(prepared.values);
    gradients = backward_gradients(runner, output, v, prepared.differentiable);
  } catch (const Error& error) {
    result.broken_invariants.push_back(backward_failure("seeded with v", error));
    // NaN marks the values that were never computed, so no report shows them as zeros.
    result.projection_numerical = numerical;
    result.projection_analytical = std::numeric_limits<double>::quiet_NaN();
    result.projection_tolerance = std::numeric_limits<double>::quiet_NaN();
    return ProjectionOutcome::backward_raised;
  }
  double analytical = 0.0;
  for (std::size_t i = 0; i < gradients.size(); ++i) {
    if (!prepared.differentiable[i]) {
      continue;
    }
    const double* gradient = gradients[i].data<double>();
    const double* direction = u[i].data<double>();
    for (std::int64_t k = 0; k < gradients[i].numel(); ++k) {
      analytical += gradient[k] * direction[k];
      if (!std::isfinite(gradient[k]) && std::isfinite(numerical)) {
        result.broken_invariants.push_back(
            fmt::format("the gradient of input {} seeded with v is {} at element {}, where the numerical "
                        "projection is finite ({:.6g})",
                        i, gradient[k], describe_element(k, gradients[i].shape()), numerical));
        break;
      }
    }
  }

  result.projection_numerical = numerical;
  result.projection_analytical = analytical;
  result.projection_tolerance = result.atol * u_l1 * v_l1 + result.rtol * std::abs(numerical);
  return std::abs(analytical - numerical) <= result.projection_tolerance ? ProjectionOutcome::agreed
                                                                          : ProjectionOutcome::disagreed;
}

// ---- Verdict -----------------------------------------------------------------------------------

GradcheckVerdict overall_verdict(const GradcheckResult& result) {
  const auto any_input = [&](GradcheckVerdict verdict) {
    return std::any_of(result.inputs.begin(), result.inputs.end(),
                       [&](const GradcheckInputReport& report) { return report.verdict == verdict; });
  };
  if (any_input(GradcheckVerdict::numerical_not_finite)) {
    return GradcheckVerdict::numerical_not_finite;
  }
  if (any_input(GradcheckVerdict::wrong_gradient)) {
    return GradcheckVerdict::wrong_gradient;
  }
  if (!result.broken_invariants.empty()) {
    return GradcheckVerdict::invariant_broken;
  }
  if (any_input(GradcheckVerdict::non_differentiable_point)) {
    return GradcheckVerdict::non_differentiable_point;
  }
  return GradcheckVerdict::passed;
}

}  // namespace

std::string_view mode_name(GradcheckMode mode) {
  switch (mode) {
    case GradcheckMode::full: return "full";
    case GradcheckMode::fast: return "fast";
  }
  return "unknown";
}

std::string_view verdict_name(GradcheckVerdict verdict) {
  switch (verdict) {
    case GradcheckVerdict::passed: return "passed";
    case GradcheckVerdict::wrong_gradient: return "wrong gradient";
    case GradcheckVerdict::non_differentiable_point: return "non-differentiable point";
    case GradcheckVerdict::numerical_not_finite: return "numerical derivative not finite";
    case GradcheckVerdict::invariant_broken: return "invariant broken";
  }
  return "unknown";
}

double GradcheckResult::max_abs_error() const {
  if (inputs.empty()) {
    return std::abs(projection_analytical - projection_numerical);
  }
  double worst = 0.0;
  for (const GradcheckInputReport& report : inputs) {
    worst = std::max(worst, report.max_abs_error);
  }
  return worst;
}

double GradcheckResult::max_rel_error() const {
  if (inputs.empty()) {
    const double abs_error = std::abs(projection_analytical - projection_numerical);
    return projection_numerical != 0 ? abs_error / std::abs(projection_numerical) : 0.0;
  }
  double worst = 0.0;
  for (const GradcheckInputReport& report : inputs) {
    worst = std::max(worst, report.max_rel_error);
  }
  return worst;
}

GradcheckResult gradcheck(const GradcheckCase& gradcheck_case, const GradcheckOptions& options) {
  if (!gradcheck_case.function) {
    raise<ValueError>(kOp, "a case needs a function", "case {}/{} without one", gradcheck_case.op,
                      gradcheck_case.name);
  }
  GradcheckResult result;
  result.op = gradcheck_case.op;
  result.name = gradcheck_case.name;
  result.mode = options.mode;
  result.eps = gradcheck_case.eps.value_or(options.eps);
  result.atol = gradcheck_case.atol.value_or(options.atol);
  result.rtol = gradcheck_case.rtol.value_or(options.rtol);
  result.seed = options.seed + gradcheck_case.seed;
  check_options(result.eps, result.atol, result.rtol);

  PreparedInputs prepared = prepare_inputs(gradcheck_case, result.seed);
  if (prepared.upcast) {
    result.upcast_from_f32 = true;
    result.notes.push_back("f32 inputs were upcast to f64 for the check, because f32 finite differences are too "
                           "coarse to judge a gradient");
  }
  CaseRunner runner(gradcheck_case, prepared.differentiable);
  const Var output = runner.record(prepared.values);
  const Tensor v = random_unit(output.shape(), result.seed * 1000003u + 104729u);

  if (options.mode == GradcheckMode::fast) {
    const ProjectionOutcome projection = compare_projections(runner, prepared, v, result);
    if (projection == ProjectionOutcome::disagreed) {
      result.notes.push_back(fmt::format(
          "the projection check failed (v·(J u) = {:.9g} by differences, (vᵀJ)·u = {:.9g} by VJPs, tolerance "
          "{:.3g}), so the full Jacobians were compared",
          result.projection_numerical, result.projection_analytical, result.projection_tolerance));
    } else if (projection == ProjectionOutcome::backward_raised) {
      result.notes.push_back("the backward pass seeded with v raised, so the projections were not compared and the "
                             "full Jacobians were tried instead");
    }
    if (projection != ProjectionOutcome::agreed) {
      result.fell_back_to_full = true;
      compare_full_jacobians(runner, prepared, result);
    }
  } else {
    compare_full_jacobians(runner, prepared, result);
  }

  check_backward_invariants(runner, prepared, v, result);
  if (prepared.upcast) {
    check_native_dtypes(gradcheck_case, prepared, result);
  }
  result.verdict = overall_verdict(result);
  if (result.fell_back_to_full && result.verdict == GradcheckVerdict::passed) {
    result.notes.push_back("every Jacobian entry passed, so the projection failed only through its tolerance");
  }
  return result;
}

GradcheckResult gradcheck(GradcheckFunction function, std::vector<Tensor> inputs, const GradcheckOptions& options,
                          std::string op) {
  GradcheckCase gradcheck_case{.op = std::move(op), .name = "direct", .function = std::move(function)};
  for (Tensor& input : inputs) {
    if (!input.defined()) {
      raise<ValueError>(kOp, "every input must be a defined tensor", "input {} undefined",
                        gradcheck_case.inputs.size());
    }
    const bool differentiable = is_floating(input.dtype());
    gradcheck_case.inputs.push_back({.differentiable = differentiable, .values = std::move(input)});
  }
  return gradcheck(gradcheck_case, options);
}

std::string format_report(const GradcheckResult& result) {
  std::string text = fmt::format("{}/{}: {} ({} mode, eps {:g}, atol {:g}, rtol {:g}, seed {})\n", result.op,
                                 result.name, verdict_name(result.verdict), mode_name(result.mode), result.eps,
                                 result.atol, result.rtol, result.seed);
  auto out = std::back_inserter(text);
  if (result.mode == GradcheckMode::fast) {
    fmt::format_to(out, "  projection: v·(J u) = {:.9g} by differences, (vᵀJ)·u = {:.9g} by VJPs, tolerance {:.3g}\n",
                   result.projection_numerical, result.projection_analytical, result.projection_tolerance);
  }
  for (const GradcheckInputReport& report : result.inputs) {
    fmt::format_to(out,
                   "  input {}: {}, worst element [{}] (flat {}) for output element {}: numerical {:.9g}, "
                   "analytical {:.9g}, abs error {:.3g}, rel error {:.3g}, tolerance {:.3g}; one-sided differences "
                   "{:.9g} forward, {:.9g} backward; {} failed {}\n",
                   report.input, verdict_name(report.verdict), fmt::join(report.multi_index, ", "), report.flat_index,
                   report.output_index, report.numerical, report.analytical, report.abs_error, report.rel_error,
                   report.tolerance, report.forward_difference, report.backward_difference, report.failed_entries,
                   report.failed_entries == 1 ? "entry" : "entries");
    if (!report.non_differentiable_elements.empty()) {
      fmt::format_to(out, "  input {}: non-differentiable point at flat {} {}\n", report.input,
                     report.non_differentiable_elements.size() == 1 ? "element" : "elements",
                     fmt::join(report.non_differentiable_elements, ", "));
    }
  }
  for (const std::string& message : result.broken_invariants) {
    fmt::format_to(out, "  invariant broken: {}\n", message);
  }
  for (const std::string& note : result.notes) {
    fmt::format_to(out, "  note: {}\n", note);
  }
  return text;
}

}  // namespace tapegrad
