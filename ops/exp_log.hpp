#pragma once
// Elementwise exponential and natural logarithm.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Elementwise eˣ.
//   value: y = exp(x)
//   VJP:   x̄ = ȳ · y  (the saved output, so exp is evaluated once)
//   shape: y has x's shape and dtype.
//   edges: exp overflows to +inf above about 709.78 (f64) or 88.72 (f32) and underflows to 0.
Var exp(const Var& x);

// Elementwise natural logarithm.
//   value: y = log(x)
//   VJP:   x̄ = ȳ / x
//   shape: y has x's shape and dtype.
//   edges: as IEEE 754 says, log(0) = -inf, log(x < 0) = NaN, and then x̄ is ±inf or NaN.
//          Anomaly mode (TapeOptions::detect_anomaly) reports such values naming log.
Var log(const Var& x);

void register_exp_log_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
