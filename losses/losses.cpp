#include "losses.hpp"

#include "../ops/ops.hpp"
#include "nt_xent_fused.hpp"

namespace tapegrad {

void register_loss_cases(GradcheckRegistry& registry) {
  register_nt_xent_cases(registry);
  register_nt_xent_fused_cases(registry);
}

void register_builtin_cases(GradcheckRegistry& registry) {
  register_op_cases(registry);
  register_loss_cases(registry);
}

}  // namespace tapegrad
