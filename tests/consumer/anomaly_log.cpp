// A program built outside the source tree against an installed tapegrad, as
// tools/check_install.sh does. sum(log(x)) at x = [0, 1] is -inf, as IEEE 754 defines, with anomaly
// mode off. With it on, recording log must raise tapegrad::ValueError naming `log` and the
// forward pass. The program exits with status 1 unless both hold.
#include <tapegrad/tapegrad.hpp>

#include <cmath>
#include <cstdio>
#include <string>

namespace tg = tapegrad;

namespace {

int check_anomaly_off() {
  tg::Tape tape;
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {0.0, 1.0}));
  const double value = tg::sum(tg::log(x)).value().item();
  if (!(std::isinf(value) && value < 0.0)) {
    std::printf("anomaly_log: with anomaly mode off sum(log([0, 1])) is %g, expected -inf\n", value);
    return 1;
  }
  return 0;
}

int check_anomaly_on() {
  tg::Tape tape({.detect_anomaly = true});
  tg::Var x = tape.leaf(tg::Tensor::from_values({2}, {0.0, 1.0}));
  try {
    tg::Var y = tg::sum(tg::log(x));
    std::printf("anomaly_log: with anomaly mode on log([0, 1]) raised nothing (sum %g)\n", y.value().item());
    return 1;
  } catch (const tg::ValueError& error) {
    const std::string message = error.what();
    if (error.op() != "log" || message.find("anomaly mode") == std::string::npos ||
        message.find("forward pass") == std::string::npos) {
      std::printf("anomaly_log: the error names op '%s', expected 'log' and the forward pass: %s\n",
                  std::string(error.op()).c_str(), message.c_str());
      return 1;
    }
    std::printf("anomaly_log: %s\n", message.c_str());
  }
  return 0;
}

}  // namespace

int main() {
  const int failures = check_anomaly_off() + check_anomaly_on();
  std::printf("anomaly_log: %s\n", failures == 0 ? "passed" : "failed");
  return failures == 0 ? 0 : 1;
}
