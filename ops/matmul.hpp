#pragma once
// Matrix products through BLAS.

#include "../core/gradcheck_registry.hpp"

namespace tapegrad {

void register_matmul_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
