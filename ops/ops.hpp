#pragma once
// Every op of tapegrad, and the registration of their gradcheck cases.

#include "arithmetic.hpp"
#include "exp_log.hpp"
#include "masked.hpp"
#include "matmul.hpp"
#include "normalize.hpp"
#include "reductions.hpp"
#include "relu.hpp"
#include "shape_ops.hpp"

namespace tapegrad {

// Adds the gradcheck cases of every op in ops/ to registry.
void register_op_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
