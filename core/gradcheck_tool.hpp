#pragma once
// The tapegrad-gradcheck command-line tool as a library function, so that a program with its own
// registered ops gets the same tool by calling it from main:
//
//     int main(int argc, char** argv) {
//       tapegrad::GradcheckRegistry registry;
//       register_my_op_cases(registry);
//       return tapegrad::run_gradcheck_tool(argc, argv, registry);
//     }
//
// Usage: PROGRAM [OP | OP/CASE | CASE ...] [--list] [--fast] [--eps X] [--atol X] [--rtol X]
//                [--seed N] [--format table|json] [--help]
//
// PROGRAM, the basename of argv[0], names the program in help, usage and error messages. An op
// name selects every case of that op, OP/CASE one case, and a bare case name the one case of that
// name (a usage error when several ops have a case of that name).
//
// The table has one line per case (op, case, mode, max abs error, max rel error, verdict), the
// details of each failing case indented below its line, and a closing line "N passed, N failed".
// A case whose backward pass raised before any comparison has "-" in both error columns and null
// errors in JSON.
// The JSON format is one document: the options used, one record per case and the two counts.

#include <iosfwd>

#include "gradcheck_registry.hpp"

namespace tapegrad {

// Exit statuses of run_gradcheck_tool.
inline constexpr int kGradcheckAllPassed = 0;
inline constexpr int kGradcheckSomeFailed = 1;
inline constexpr int kGradcheckUsageError = 2;  // invalid options, or an unknown op or case

// Parses the command line, checks the selected cases of registry and writes the report to out
// and usage errors to err. Returns 0 when every case passed (and for --help and --list), 1 when
// any failed or raised, 2 for a usage error.
int run_gradcheck_tool(int argc, const char* const* argv, const GradcheckRegistry& registry, std::ostream& out,
                       std::ostream& err);

// The same, writing to std::cout and std::cerr.
int run_gradcheck_tool(int argc, const char* const* argv, const GradcheckRegistry& registry);

}  // namespace tapegrad
