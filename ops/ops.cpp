#include "ops.hpp"

namespace tapegrad {

void register_op_cases(GradcheckRegistry& registry) {
  register_arithmetic_cases(registry);
  register_exp_log_cases(registry);
  register_relu_cases(registry);
  register_matmul_cases(registry);
  register_shape_op_cases(registry);
  register_normalize_cases(registry);
  register_reduction_cases(registry);
  register_masked_cases(registry);
}

}  // namespace tapegrad
