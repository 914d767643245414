#include "ops.hpp"

namespace tapegrad {

void register_op_cases(GradcheckRegistry& registry) {
  register_arithmetic_cases(registry);
  register_exp_log_cases(registry);
  register_reduction_cases(registry);
}

}  // namespace tapegrad
