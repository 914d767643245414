// A program built outside the source tree against an installed tapegrad, as
// tools/check_install.sh does. It defines an op of its own, cube(x) = x³, with a deliberately
// wrong VJP (2x² instead of 3x²), registers a gradcheck case for it and runs the library's
// gradcheck tool on it. The program exits 0 only when the tool exits 1 and its report names
// the op, so the check of a user's op is shown to catch a wrong derivative.
#include <tapegrad/tapegrad.hpp>

#include <cstdio>
#include <sstream>
#include <string>

namespace tg = tapegrad;

namespace {

tg::Var cube(const tg::Var& x) {
  tg::Tape& tape = tg::common_tape("user_cube", {x});
  const tg::Tensor& input = x.value();
  tg::Tensor y = tape.allocate(input.shape(), input.dtype());
  for (std::int64_t i = 0; i < input.numel(); ++i) {
    y.data<double>()[i] = input.data<double>()[i] * input.data<double>()[i] * input.data<double>()[i];
  }
  return tape.record("user_cube", std::move(y), {x}, [](tg::VjpContext& context) {
    const tg::Tensor& input = context.input(0);
    tg::Tensor gradient = context.allocate(input.shape(), input.dtype());
    for (std::int64_t i = 0; i < input.numel(); ++i) {
      const double value = input.data<double>()[i];
      // Wrong on purpose: d(x³)/dx is 3x².
      gradient.data<double>()[i] = context.cotangent().data<double>()[i] * 2.0 * value * value;
    }
    context.accumulate(0, std::move(gradient));
  });
}

}  // namespace

int main() {
  tg::GradcheckRegistry registry;
  registry.add({.op = "user_cube",
                .name = "matrix",
                .inputs = {{.shape = {2, 3}, .low = 0.5, .high = 2.0}},
                .function = [](std::span<const tg::Var> inputs) { return cube(inputs[0]); }});
  char program[] = "gradcheck_user_op";
  char* arguments[] = {program, nullptr};
  std::ostringstream output;
  std::ostringstream errors;
  const int status = tg::run_gradcheck_tool(1, arguments, registry, output, errors);
  const std::string report = output.str();
  if (status != 1 || report.find("user_cube") == std::string::npos) {
    // The report is printed only here, so a passing check does not print the tool's failure lines.
    std::printf("%s%s", report.c_str(), errors.str().c_str());
    std::printf("gradcheck_user_op: expected exit status 1 and a report naming user_cube, got status %d\n", status);
    return 1;
  }
  std::printf("gradcheck_user_op: the tool rejected the wrong VJP of user_cube with status 1\n");
  return 0;
}
