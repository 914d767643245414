#pragma once
// Masked reductions and selection by a boolean mask.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

void register_masked_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
