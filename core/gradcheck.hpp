#pragma once
// gradcheck: checks an op's VJPs against finite differences and reports where they disagree.
//
// Full mode builds the whole Jacobian twice, in float64: numerically by central differences,
//
//     J_num[o, k] = (f(x + h·e_k)[o] − f(x − h·e_k)[o]) / 2h,
//
// and analytically by one backward pass per output element o with a one-hot seed e_o. An entry
// passes when |analytical − numerical| ≤ atol + rtol·|numerical|.
//
// Fast mode draws seeded random unit vectors u (over all differentiable inputs, flattened and
// concatenated) and v (over the output), and compares one directional central difference
//
//     numerical  = (v·f(x + h·u) − v·f(x − h·u)) / 2h      ≈ vᵀ J u
//
// with one backward pass seeded with v, dotted with u: analytical = (vᵀJ)·u. The tolerance is
// scaled for the projection as atol·‖u‖₁·‖v‖₁ + rtol·|numerical|. The first term is the sum of
// the per-entry atol over Σ_o Σ_k |v_o|·|u_k|, so it is exactly the slack that full mode would
// allow the same entries. When the projection fails, fast mode runs full mode for the report.
//
// A failing entry is a non-differentiable point, not a wrong gradient, under two conditions. The
// one-sided differences (f(x + h·e_k) − f(x))/h and (f(x) − f(x − h·e_k))/h disagree beyond the
// entry's tolerance, and the analytical value lies between them (within the tolerance). Then the
// function has a kink, or a tie closer than h, at that element, and the VJP returned one of its
// one-sided derivatives or a mix of them, as a subgradient does. An analytical value outside that interval
// stays a wrong gradient, so a VJP that is wrong at a kink is still caught. Only failing entries
// are classified: a kink where the VJP returns the central difference (|x| at 0 with slope 0)
// passes, and a smooth function whose one-sided differences differ by h·f″ is never flagged.
//
// Invariants checked alongside, each with its own message in GradcheckResult::broken_invariants:
//   - two backward passes with the same seed give bit-identical gradients;
//   - a zero seed gives zero gradients;
//   - every input gradient has its input's shape and dtype (the tape raises otherwise, and the
//     message quotes it), also in the inputs' own dtype when f32 inputs were upcast;
//   - no gradient element is NaN or infinite where the numerical derivative is finite.
//
// float32 inputs are upcast to float64 for the check, and GradcheckResult::upcast_from_f32 says
// so. Central differences in float32 give false failures: for f(x) = logsumexp(x / 0.1) at
// x = [0.3, -0.2, 0.1], float32 differences with h = 1e-6 are off by up to 6.55e-2, while in
// float64 they agree with the analytical gradient to better than 1e-8.

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "gradcheck_registry.hpp"

namespace tapegrad {

enum class GradcheckMode { full, fast };

std::string_view mode_name(GradcheckMode mode);

struct GradcheckOptions {
  GradcheckMode mode = GradcheckMode::full;
  // Central-difference step h. 1e-6 balances truncation error (∝ h²·f‴) against rounding error
  // (∝ 1e-16·|f| / h) in float64 for functions whose values and derivatives are of order 1, which
  // leaves an error of about 1e-10. The same value is PyTorch's gradcheck default (torch 2.x).
  double eps = 1e-6;
  // An entry passes when |analytical − numerical| ≤ atol + rtol·|numerical|. The values follow
  // PyTorch's float64 gradcheck (atol 1e-5, rtol 1e-3). They sit far above the ~1e-10 error of a
  // float64 central difference, so correct VJPs pass, yet far below the 1% error of a VJP with a
  // wrong constant factor.
  double atol = 1e-5;
  double rtol = 1e-3;
  // Added to each case's own seed. It draws the case's input values and, in fast mode, u and v.
  std::uint64_t seed = 0;
};

enum class GradcheckVerdict {
  passed,
  wrong_gradient,            // an analytical entry differs from the numerical one
  non_differentiable_point,  // every failing entry sits at a kink or a tie within the step
  numerical_not_finite,      // f(x ± h) is NaN or infinite: the case samples outside the domain
  invariant_broken,          // the derivatives agree, but an invariant above does not hold
};

std::string_view verdict_name(GradcheckVerdict verdict);

// The worst Jacobian entry of one differentiable input: the one whose error is the largest
// multiple of its tolerance, among the failing entries when there are any.
struct GradcheckInputReport {
  std::int64_t input = 0;                 // position among the case's inputs
  std::int64_t output_index = 0;          // flat index of the output element of the worst entry
  std::int64_t flat_index = 0;            // flat index of the worst input element
  std::vector<std::int64_t> multi_index;  // the same element, one index per axis
  double numerical = 0.0;                 // central difference
  double analytical = 0.0;                // from the VJPs
  double forward_difference = 0.0;        // (f(x + h·e_k) − f(x)) / h at the worst entry
  double backward_difference = 0.0;       // (f(x) − f(x − h·e_k)) / h at the worst entry
  double abs_error = 0.0;                 // |analytical − numerical| at the worst entry
  double rel_error = 0.0;                 // abs_error / |numerical|: infinite when numerical is 0
  double tolerance = 0.0;                 // atol + rtol·|numerical| at the worst entry
  // Over all entries of this input: the largest abs error, and the largest relative error among
  // entries with |numerical| > atol (smaller entries are judged by atol alone).
  double max_abs_error = 0.0;
  double max_rel_error = 0.0;
  std::int64_t failed_entries = 0;                    // entries outside their tolerance
  std::vector<std::int64_t> non_differentiable_elements;  // flat indices, ascending
  GradcheckVerdict verdict = GradcheckVerdict::passed;
};

struct GradcheckResult {
  std::string op;
  std::string name;
  GradcheckMode mode = GradcheckMode::full;
  double eps = 0.0;
  double atol = 0.0;
  double rtol = 0.0;
  std::uint64_t seed = 0;        // the seed actually used: options.seed + the case's seed
  bool upcast_from_f32 = false;  // some f32 inputs were checked in f64

  // Fast mode: the projections and the scaled tolerance.
  double projection_numerical = 0.0;
  double projection_analytical = 0.0;
  double projection_tolerance = 0.0;
  bool fell_back_to_full = false;  // the projection failed and the full Jacobian was compared

  // One report per differentiable input, from the full Jacobian: always in full mode, and in fast
  // mode only after a fallback.
  std::vector<GradcheckInputReport> inputs;
  std::vector<std::string> broken_invariants;  // one sentence each
  std::vector<std::string> notes;              // the upcast, the fallback: facts, not failures
  GradcheckVerdict verdict = GradcheckVerdict::passed;

  bool passed() const { return verdict == GradcheckVerdict::passed; }
  // The largest abs and relative errors of the input reports. In fast mode without a fallback
  // there are none, and these are the projection's errors.
  double max_abs_error() const;
  double max_rel_error() const;
};

// Runs one registered case. The case's eps, atol and rtol, when set, replace those of options.
// Raises ValueError, ShapeError or DtypeError naming "gradcheck" for a case that cannot be run.
// Such a case has invalid options, a boolean input marked differentiable or lacking values,
// contradicting shapes or dtypes, or no differentiable input, or its function returns something
// other than a floating Var of the tape it was given. Errors that the function raises on its
// inputs propagate unchanged.
GradcheckResult gradcheck(const GradcheckCase& gradcheck_case, const GradcheckOptions& options = {});

// Checks a function outside any registry at the given input values: floating inputs are
// differentiable, boolean ones (masks) are constants. `op` names the function in the result.
GradcheckResult gradcheck(GradcheckFunction function, std::vector<Tensor> inputs, const GradcheckOptions& options = {},
                          std::string op = "function");

// A multi-line description of a result: the verdict, and for each input the worst entry with
// both values, both one-sided differences, the errors, step and tolerances, then every broken
// invariant and note.
std::string format_report(const GradcheckResult& result);

}  // namespace tapegrad
