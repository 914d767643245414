#pragma once
// Ops that move elements without arithmetic: transpose, reshape, concat, row selection.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

void register_shape_op_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
