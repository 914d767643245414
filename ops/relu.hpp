#pragma once
// Rectified linear unit.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

void register_relu_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
