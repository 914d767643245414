#pragma once
// Every loss of tapegrad, and the registration of the library's gradcheck cases.

#include "nt_xent.hpp"

namespace tapegrad {

// Adds the gradcheck cases of every loss in losses/ to registry.
void register_loss_cases(GradcheckRegistry& registry);

// Adds every gradcheck case the library ships, ops and losses: what tapegrad-gradcheck checks.
void register_builtin_cases(GradcheckRegistry& registry);

}  // namespace tapegrad
