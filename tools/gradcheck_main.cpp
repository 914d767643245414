// tapegrad-gradcheck: checks the VJPs of every op and loss registered in the library against
// finite differences. Run it with --help for its options.
#include <tapegrad/tapegrad.hpp>

int main(int argc, char** argv) {
  tapegrad::GradcheckRegistry registry;
  tapegrad::register_builtin_cases(registry);
  return tapegrad::run_gradcheck_tool(argc, argv, registry);
}
