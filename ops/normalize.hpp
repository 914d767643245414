#pragma once
// L2 normalization along an axis.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

void register_normalize_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
