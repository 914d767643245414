#pragma once
// Elementwise exponential and natural logarithm.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Elementwise eˣ.
//   value: y = exp(x)
//   VJP:   x̄ = ȳ · y  (the saved output, so exp is evaluated once)
//   shape: y has x's shape and dtype.
//   edges: exp overflows to +inf above about 709.78 (f64) or 88.72 (f32) and underflows to 0.
//          Where ȳ is 0, x̄ is exactly 0 even where y overflowed, so an entry that a mask or a
//          zero weight removes later keeps a zero gradient instead of 0 · inf = NaN.
Var exp(const Var& x);

// Elementwise natural logarithm.
//   value: y = log(x)
//   VJP:   x̄ = ȳ / x
//   shape: y has x's shape and dtype.
//   edges: as IEEE 754 specifies, log(0) = -inf with x̄ = ȳ / 0 = ±inf, and log(x < 0) = NaN while
//          x̄ = ȳ / x stays finite. Where ȳ is 0, x̄ is exactly 0, also at x = 0.
//          Anomaly mode (TapeOptions::detect_anomaly) reports a non-finite output naming log.
Var log(const Var& x);

void register_exp_log_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
