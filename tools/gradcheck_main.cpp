// tapegrad-gradcheck: checks the VJPs of every op registered in the library against finite
// differences. Run it with --help for its options.
#include <tapegrad/tapegrad.hpp>

int main(int argc, char** argv) {
  tapegrad::GradcheckRegistry registry;
  tapegrad::register_op_cases(registry);
  // NOTE: the losses' cases join here when losses/ provides register_builtin_cases, which
  // registers the op cases and the loss cases together and then replaces the call above.
  return tapegrad::run_gradcheck_tool(argc, argv, registry);
}
