#pragma once
// Reductions over all elements or along one axis.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

// Sum of all elements.
//   value: y = Σᵢ xᵢ, a scalar (shape [])
//   VJP:   x̄ᵢ = ȳ for every i
Var sum(const Var& x);

void register_reduction_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
