#include "gradcheck_tool.hpp"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <filesystem>
#include <iostream>
#include <limits>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <fmt/format.h>
#include <fmt/ranges.h>
#include <nlohmann/json.hpp>

#include "gradcheck.hpp"

namespace tapegrad {
namespace {

// The program name for help, usage and errors: the basename of argv[0], so that a user's own
// program that calls run_gradcheck_tool names itself.
std::string program_name(int argc, const char* const* argv) {
  if (argc > 0 && argv != nullptr && argv[0] != nullptr) {
    std::string name = std::filesystem::path(argv[0]).filename().string();
    if (!name.empty()) {
      return name;
    }
  }
  return "tapegrad-gradcheck";
}

// "1 element", "2 elements": a count and its noun in agreement.
std::string count_of(std::size_t count, std::string_view singular, std::string_view plural) {
  return fmt::format("{} {}", count, count == 1 ? singular : plural);
}

struct ToolOptions {
  std::vector<std::string> selectors;  // op names, OP/CASE or case names
  bool list = false;
  std::string format = "table";
  GradcheckOptions check;
};

// The outcome of one case: its result, or the message of the error it raised.
struct CaseOutcome {
  const GradcheckCase* gradcheck_case = nullptr;
  GradcheckResult result;
  std::string error;

  bool passed() const { return error.empty() && result.passed(); }

  // False when the case raised, or when a backward pass raised before any derivative was compared
  // (no input report and no projection), so there are no errors to show.
  bool compared() const {
    if (!error.empty()) {
      return false;
    }
    const bool projection_only = result.mode == GradcheckMode::fast && !result.fell_back_to_full;
    return !result.inputs.empty() || projection_only;
  }
};

std::string describe_inputs(const GradcheckCase& gradcheck_case) {
  std::vector<std::string> inputs;
  for (const GradcheckInput& input : gradcheck_case.inputs) {
    const Shape shape = input.values ? input.values->shape() : input.shape;
    const Dtype dtype = input.values ? input.values->dtype() : input.dtype;
    inputs.push_back(fmt::format("{} {}{}", shape, dtype, input.differentiable ? "" : " constant"));
  }
  return fmt::format("{}", fmt::join(inputs, ", "));
}

// The input report that decides the verdict: a failing one if any, else the closest to failing.
const GradcheckInputReport* worst_input(const GradcheckResult& result) {
  const GradcheckInputReport* worst = nullptr;
  for (const GradcheckInputReport& report : result.inputs) {
    const auto key = [](const GradcheckInputReport& r) {
      return std::pair(r.verdict != GradcheckVerdict::passed, r.abs_error / r.tolerance);
    };
    if (worst == nullptr || key(report) > key(*worst)) {
      worst = &report;
    }
  }
  return worst;
}

// The verdict column: the verdict and where it applies.
std::string describe_verdict(const CaseOutcome& outcome) {
  if (!outcome.error.empty()) {
    return fmt::format("error: {}", outcome.error);
  }
  const GradcheckResult& result = outcome.result;
  std::string text(verdict_name(result.verdict));
  const GradcheckInputReport* worst = worst_input(result);
  if (result.verdict == GradcheckVerdict::non_differentiable_point && worst != nullptr) {
    const std::vector<std::int64_t>& elements = worst->non_differentiable_elements;
    text += fmt::format(" at input {}, {} {}", worst->input, elements.size() == 1 ? "element" : "elements",
                        fmt::join(elements, ", "));
  } else if (result.verdict != GradcheckVerdict::passed && result.verdict != GradcheckVerdict::invariant_broken &&
             worst != nullptr) {
    text += fmt::format(" at input {}, element [{}]", worst->input, fmt::join(worst->multi_index, ", "));
  } else if (result.verdict == GradcheckVerdict::invariant_broken && !result.broken_invariants.empty()) {
    text += fmt::format(" ({})", count_of(result.broken_invariants.size(), "invariant", "invariants"));
  }
  if (result.upcast_from_f32) {
    text += " (f32 inputs checked in f64)";
  }
  return text;
}

std::string describe_mode(const CaseOutcome& outcome) {
  const GradcheckResult& result = outcome.result;
  if (result.fell_back_to_full) {
    return "fast>full";
  }
  return std::string(mode_name(result.mode));
}

// ---- Table -------------------------------------------------------------------------------------

void write_table(std::ostream& out, const ToolOptions& options, const std::vector<CaseOutcome>& outcomes) {
  out << fmt::format("gradcheck: {} mode, seed {}, eps {:g}, atol {:g}, rtol {:g} (a case's own override of eps, "
                     "atol or rtol, which states its reason, replaces these)\n",
                     mode_name(options.check.mode), options.check.seed, options.check.eps, options.check.atol,
                     options.check.rtol);
  std::size_t op_width = 2;
  std::size_t case_width = 4;
  for (const CaseOutcome& outcome : outcomes) {
    op_width = std::max(op_width, outcome.gradcheck_case->op.size());
    case_width = std::max(case_width, outcome.gradcheck_case->name.size());
  }
  out << fmt::format("{:<{}}  {:<{}}  {:<9}  {:>13}  {:>13}  {}\n", "op", op_width, "case", case_width, "mode",
                     "max abs error", "max rel error", "verdict");
  std::int64_t passed = 0;
  for (const CaseOutcome& outcome : outcomes) {
    const GradcheckCase& gradcheck_case = *outcome.gradcheck_case;
    const bool ran = outcome.error.empty();
    const bool compared = outcome.compared();
    out << fmt::format("{:<{}}  {:<{}}  {:<9}  {:>13}  {:>13}  {}\n", gradcheck_case.op, op_width,
                       gradcheck_case.name, case_width, ran ? describe_mode(outcome) : "-",
                       compared ? fmt::format("{:.3e}", outcome.result.max_abs_error()) : "-",
                       compared ? fmt::format("{:.3e}", outcome.result.max_rel_error()) : "-",
                       describe_verdict(outcome));
    if (outcome.passed()) {
      ++passed;
    } else if (ran) {
      // The details of a failure, indented under its line: the first line of the report repeats
      // the table line, so it is left out.
      const std::string report = format_report(outcome.result);
      out << report.substr(report.find('\n') + 1);
    }
  }
  out << fmt::format("{} passed, {} failed\n", passed, static_cast<std::int64_t>(outcomes.size()) - passed);
}

// ---- JSON --------------------------------------------------------------------------------------

nlohmann::json input_report_json(const GradcheckInputReport& report) {
  return {
      {"input", report.input},
      {"verdict", verdict_name(report.verdict)},
      {"flat_index", report.flat_index},
      {"multi_index", report.multi_index},
      {"output_index", report.output_index},
      {"numerical", report.numerical},
      {"analytical", report.analytical},
      {"forward_difference", report.forward_difference},
      {"backward_difference", report.backward_difference},
      {"abs_error", report.abs_error},
      {"rel_error", report.rel_error},
      {"tolerance", report.tolerance},
      {"max_abs_error", report.max_abs_error},
      {"max_rel_error", report.max_rel_error},
      {"failed_entries", report.failed_entries},
      {"non_differentiable_elements", report.non_differentiable_elements},
  };
}

nlohmann::json case_json(const CaseOutcome& outcome) {
  const GradcheckCase& gradcheck_case = *outcome.gradcheck_case;
  nlohmann::json record = {{"op", gradcheck_case.op}, {"case", gradcheck_case.name}, {"passed", outcome.passed()}};
  if (!outcome.error.empty()) {
    record["verdict"] = "error";
    record["error"] = outcome.error;
    return record;
  }
  const GradcheckResult& result = outcome.result;
  record["mode"] = mode_name(result.mode);
  record["fell_back_to_full"] = result.fell_back_to_full;
  record["verdict"] = verdict_name(result.verdict);
  if (!outcome.compared()) {
    // A backward pass raised before any comparison: there is no error and no worst element.
    record["max_abs_error"] = nullptr;
    record["max_rel_error"] = nullptr;
    record["worst_index"] = nullptr;
    record["numerical"] = nullptr;
    record["analytical"] = nullptr;
  } else if (const GradcheckInputReport* worst = worst_input(result)) {
    record["max_abs_error"] = result.max_abs_error();
    record["max_rel_error"] = result.max_rel_error();
    record["worst_index"] = {{"input", worst->input},
                             {"flat_index", worst->flat_index},
                             {"multi_index", worst->multi_index},
                             {"output_index", worst->output_index}};
    record["numerical"] = worst->numerical;
    record["analytical"] = worst->analytical;
  } else {
    // Fast mode without a fallback compares one projection, which has no element.
    record["max_abs_error"] = result.max_abs_error();
    record["max_rel_error"] = result.max_rel_error();
    record["worst_index"] = nullptr;
    record["numerical"] = result.projection_numerical;
    record["analytical"] = result.projection_analytical;
  }
  if (result.mode == GradcheckMode::fast) {
    record["projection"] = {{"numerical", result.projection_numerical},
                            {"analytical", result.projection_analytical},
                            {"tolerance", result.projection_tolerance}};
  }
  record["eps"] = result.eps;
  record["atol"] = result.atol;
  record["rtol"] = result.rtol;
  record["seed"] = result.seed;
  record["upcast_from_f32"] = result.upcast_from_f32;
  record["inputs"] = nlohmann::json::array();
  for (const GradcheckInputReport& report : result.inputs) {
    record["inputs"].push_back(input_report_json(report));
  }
  record["broken_invariants"] = result.broken_invariants;
  record["notes"] = result.notes;
  return record;
}

void write_json(std::ostream& out, const ToolOptions& options, const std::vector<CaseOutcome>& outcomes) {
  nlohmann::json document = {{"mode", mode_name(options.check.mode)},
                             {"seed", options.check.seed},
                             {"eps", options.check.eps},
                             {"atol", options.check.atol},
                             {"rtol", options.check.rtol},
                             {"cases", nlohmann::json::array()}};
  std::int64_t passed = 0;
  for (const CaseOutcome& outcome : outcomes) {
    document["cases"].push_back(case_json(outcome));
    passed += outcome.passed() ? 1 : 0;
  }
  document["passed"] = passed;
  document["failed"] = static_cast<std::int64_t>(outcomes.size()) - passed;
  // NaN and infinity have no JSON form, and nlohmann::json writes them as null.
  out << document.dump(2) << '\n';
}

// ---- --list ------------------------------------------------------------------------------------

void write_list(std::ostream& out, const ToolOptions& options, const std::vector<const GradcheckCase*>& cases) {
  if (options.format == "json") {
    nlohmann::json list = nlohmann::json::array();
    for (const GradcheckCase* gradcheck_case : cases) {
      list.push_back({{"op", gradcheck_case->op},
                      {"case", gradcheck_case->name},
                      {"inputs", describe_inputs(*gradcheck_case)},
                      {"override_reason", gradcheck_case->override_reason}});
    }
    out << list.dump(2) << '\n';
    return;
  }
  // OP/CASE is also the form that selects one case on the command line.
  for (const GradcheckCase* gradcheck_case : cases) {
    out << fmt::format("{}/{}: {}\n", gradcheck_case->op, gradcheck_case->name, describe_inputs(*gradcheck_case));
  }
}

// ---- Command line ------------------------------------------------------------------------------

// A validator for a number that is finite and, with strict, positive, or else >= 0. CLI11's own
// range validators accept infinity and NaN and print the whole double range in their message.
CLI::Validator finite_number(bool strict) {
  const std::string rule = strict ? "a finite number > 0" : "a finite number >= 0";
  return CLI::Validator(
      [strict, rule](std::string& text) -> std::string {
        double value = 0.0;
        if (!CLI::detail::lexical_cast(text, value) || !std::isfinite(value) || (strict ? !(value > 0) : !(value >= 0))) {
          return fmt::format("the value must be {}, but got {}", rule, text);
        }
        return {};
      },
      strict ? "POSITIVE" : "NONNEGATIVE");
}

// Accepts an integer in [0, 2^64 - 1] and nothing else. CLI11 alone wraps "-3" to 2^64 - 3 and
// turns 2^64 into 2^64 - 1.
CLI::Validator unsigned_integer() {
  return CLI::Validator(
      [](std::string& text) -> std::string {
        std::uint64_t value = 0;
        const char* end = text.data() + text.size();
        const auto [stop, error] = std::from_chars(text.data(), end, value);
        if (text.empty() || error != std::errc() || stop != end) {
          return fmt::format("the value must be an integer from 0 to {}, but got {}",
                             std::numeric_limits<std::uint64_t>::max(), text);
        }
        return {};
      },
      "UINT");
}

void add_options(CLI::App& app, ToolOptions& options) {
  app.add_option("OP", options.selectors,
                 "What to check: an op name selects all its cases, OP/CASE selects one case, and a case name "
                 "selects that case when only one op has a case of that name; --list shows the OP/CASE names "
                 "(default: every registered case)");
  app.add_flag("--list", options.list, "List the selected cases with their input shapes and dtypes, and check none (default: off)");
  app.add_flag_callback(
      "--fast", [&options] { options.check.mode = GradcheckMode::fast; },
      "Compare one random projection v·J·u per case instead of the whole Jacobian; a case that fails is then "
      "compared in full for the report (default: off, full Jacobians)");
  app.add_option("--eps", options.check.eps, "Central-difference step h")
      ->capture_default_str()
      ->check(finite_number(true));
  app.add_option("--atol", options.check.atol, "Absolute tolerance: an entry passes when |a - n| <= atol + rtol*|n|")
      ->capture_default_str()
      ->check(finite_number(false));
  app.add_option("--rtol", options.check.rtol, "Relative tolerance, as in --atol")
      ->capture_default_str()
      ->check(finite_number(false));
  app.add_option("--seed", options.check.seed,
                 "Base seed, added to each case's seed; it draws the input values and the fast mode's u and v")
      ->capture_default_str()
      ->check(unsigned_integer());
  app.add_option("--format", options.format,
                 "Output format: table (one line per case and a closing 'N passed, N failed' line) or json (one "
                 "document with a record per case)")
      ->capture_default_str()
      ->check(CLI::IsMember({"table", "json"}));
  app.footer(
      "Exit status: 0 when every case passed (and for --help and --list), 1 when any failed, 2 for a usage "
      "error such as an unknown op or case.\nA case's own eps, atol or rtol, which it must justify, replaces the "
      "command-line value.");
}

void add_unique(std::vector<const GradcheckCase*>& selected, const GradcheckCase* gradcheck_case) {
  if (std::find(selected.begin(), selected.end(), gradcheck_case) == selected.end()) {
    selected.push_back(gradcheck_case);
  }
}

// The cases that one command-line argument selects: every case of an op, the case OP/CASE, or the
// one case of that name. Returns false and writes to err when the argument selects nothing or,
// as a bare case name, names cases of several ops.
bool select_by_argument(const std::string& argument, const GradcheckRegistry& registry, const std::string& program,
                        std::vector<const GradcheckCase*>& selected, std::ostream& err) {
  const std::vector<std::string> known = registry.ops();
  if (std::find(known.begin(), known.end(), argument) != known.end()) {
    for (const GradcheckCase* gradcheck_case : registry.cases_of(argument)) {
      add_unique(selected, gradcheck_case);
    }
    return true;
  }

  std::vector<const GradcheckCase*> matches;
  for (const GradcheckCase& gradcheck_case : registry.cases()) {
    if (argument == gradcheck_case.name || argument == gradcheck_case.op + "/" + gradcheck_case.name) {
      matches.push_back(&gradcheck_case);
    }
  }
  if (matches.size() == 1) {
    add_unique(selected, matches.front());
    return true;
  }
  if (matches.size() > 1) {
    std::vector<std::string> names;
    for (const GradcheckCase* gradcheck_case : matches) {
      names.push_back(fmt::format("{}/{}", gradcheck_case->op, gradcheck_case->name));
    }
    err << fmt::format("{}: a case name must belong to one op, or be written as OP/CASE, but got '{}', a case of {} "
                       "ops ({})\n",
                       program, argument, matches.size(), fmt::join(names, ", "));
    return false;
  }
  err << fmt::format("{}: each OP must be a registered op, OP/CASE or case name ({}), but got '{}'; run {} --list "
                     "to see every case\n",
                     program,
                     known.empty() ? "none is registered" : fmt::format("known ops: {}", fmt::join(known, ", ")),
                     argument, program);
  return false;
}

// The cases the arguments select, in argument order without repeats, or every case when there are
// no arguments. Returns false when an argument selects nothing.
bool select_cases(const ToolOptions& options, const GradcheckRegistry& registry, const std::string& program,
                  std::vector<const GradcheckCase*>& selected, std::ostream& err) {
  if (options.selectors.empty()) {
    for (const GradcheckCase& gradcheck_case : registry.cases()) {
      selected.push_back(&gradcheck_case);
    }
    return true;
  }
  for (const std::string& argument : options.selectors) {
    if (!select_by_argument(argument, registry, program, selected, err)) {
      return false;
    }
  }
  return true;
}

}  // namespace

int run_gradcheck_tool(int argc, const char* const* argv, const GradcheckRegistry& registry, std::ostream& out,
                       std::ostream& err) {
  const std::string program = program_name(argc, argv);
  CLI::App app("Checks the VJPs of registered ops against finite differences, in float64.", program);
  ToolOptions options;
  add_options(app, options);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int status = app.exit(error, out, err);
    return status == 0 ? kGradcheckAllPassed : kGradcheckUsageError;
  }

  std::vector<const GradcheckCase*> selected;
  if (!select_cases(options, registry, program, selected, err)) {
    return kGradcheckUsageError;
  }
  if (options.list) {
    write_list(out, options, selected);
    return kGradcheckAllPassed;
  }

  std::vector<CaseOutcome> outcomes;
  for (const GradcheckCase* gradcheck_case : selected) {
    CaseOutcome outcome;
    outcome.gradcheck_case = gradcheck_case;
    try {
      outcome.result = gradcheck(*gradcheck_case, options.check);
    } catch (const Error& error) {
      // A case that cannot run (its function rejects its inputs, say) counts as failed and the
      // remaining cases still run.
      outcome.error = error.what();
    }
    outcomes.push_back(std::move(outcome));
  }

  if (options.format == "json") {
    write_json(out, options, outcomes);
  } else {
    write_table(out, options, outcomes);
  }
  const bool all_passed =
      std::all_of(outcomes.begin(), outcomes.end(), [](const CaseOutcome& outcome) { return outcome.passed(); });
  return all_passed ? kGradcheckAllPassed : kGradcheckSomeFailed;
}

int run_gradcheck_tool(int argc, const char* const* argv, const GradcheckRegistry& registry) {
  return run_gradcheck_tool(argc, argv, registry, std::cout, std::cerr);
}

}  // namespace tapegrad
