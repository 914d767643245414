#pragma once
// gradcheck: compares the Jacobian an op's VJPs produce with central finite differences.

#include <cstdint>
#include <string>
#include <vector>

#include "gradcheck_registry.hpp"

namespace tapegrad {

enum class GradcheckMode { full, fast };

struct GradcheckOptions {
  GradcheckMode mode = GradcheckMode::full;
  // Central-difference step. 1e-6 balances truncation error (∝ eps²) against rounding error
  // (∝ 1e-16 / eps) in float64 for functions whose values and derivatives are of order 1.
  double eps = 1e-6;
  // An element passes when |analytical − numerical| ≤ atol + rtol · |numerical|.
  double atol = 1e-5;
  double rtol = 1e-3;
  std::uint64_t seed = 0;
};

enum class GradcheckVerdict { passed, wrong_gradient, non_differentiable_point, invariant_broken };

std::string_view verdict_name(GradcheckVerdict verdict);

// The worst element of one differentiable input.
struct GradcheckInputReport {
  std::int64_t input = 0;                  // position among the case's inputs
  std::int64_t output_index = 0;           // flat index of the output element of the worst Jacobian entry
  std::int64_t flat_index = 0;             // flat index of the worst input element
  std::vector<std::int64_t> multi_index;   // the same element as one index per axis
  double numerical = 0.0;
  double analytical = 0.0;
  double abs_error = 0.0;
  double rel_error = 0.0;  // abs_error / max(|numerical|, tiny)
  GradcheckVerdict verdict = GradcheckVerdict::passed;
};

struct GradcheckResult {
  std::string op;
  std::string name;
  GradcheckMode mode = GradcheckMode::full;
  double eps = 0.0;
  double atol = 0.0;
  double rtol = 0.0;
  std::uint64_t seed = 0;
  bool upcast_from_f32 = false;  // f32 inputs were checked in f64
  std::vector<GradcheckInputReport> inputs;
  std::vector<std::string> messages;  // broken invariants and notes, one sentence each
  GradcheckVerdict verdict = GradcheckVerdict::passed;

  bool passed() const { return verdict == GradcheckVerdict::passed; }
  double max_abs_error() const;
  double max_rel_error() const;
};

// Runs one registered case with options, whose eps, atol and rtol the case's overrides replace.
GradcheckResult gradcheck(const GradcheckCase& gradcheck_case, const GradcheckOptions& options = {});

}  // namespace tapegrad
