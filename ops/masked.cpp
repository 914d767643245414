#include "masked.hpp"

#include "common.hpp"

namespace tapegrad {

void register_masked_cases(GradcheckRegistry& registry) { (void)registry; }

}  // namespace tapegrad
