#pragma once
// Pieces shared by tapegrad-bench and the libtorch comparison: configuration lists, timing,
// peak resident memory of a fresh process, and the table and JSON output.
//
// Each configuration runs in a child process (the same executable, started again with
// --child), so the peak resident set size of one configuration is not mixed with the memory
// that an earlier configuration left in allocator caches or buffer pools.

#include <chrono>
#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>

namespace bench {

struct Configuration {
  std::int64_t n = 0;  // pairs: the batch has 2N rows
  std::int64_t d = 0;  // features per row
  std::string dtype;   // "f32" or "f64"
  std::string implementation;
};

// Splits "16,1024" into its items. Raises std::invalid_argument naming the option for an item
// that is not a positive integer.
std::vector<std::int64_t> parse_sizes(const std::string& option, const std::string& list);
std::vector<std::string> parse_names(const std::string& option, const std::string& list,
                                     const std::vector<std::string>& allowed);
// Parses a number that must be positive and finite, such as a time in seconds or a limit in MiB.
// Raises std::invalid_argument naming the option and the text for anything else (0, -1, inf,
// nan, 1e999, "2s").
double parse_positive(const std::string& option, const std::string& text);

// Formats value with three significant digits and no exponent ("0.0123", "14.5", "1616").
std::string format_significant(double value);

double median(std::vector<double> values);

// Seconds on a monotonic clock.
inline double now_seconds() {
  return std::chrono::duration<double>(std::chrono::steady_clock::now().time_since_epoch()).count();
}

// Resident set size and its peak (VmRSS and VmHWM of /proc/self/status) in bytes.
std::int64_t resident_bytes();
std::int64_t peak_resident_bytes();
// Resets the peak resident set size to the current one (writes 5 to /proc/self/clear_refs,
// Linux 4.0 and later). Returns false when the kernel rejects it.
bool reset_peak_resident();

// Runs `executable` with `arguments` and returns what it wrote to stdout. Raises
// std::runtime_error with the exit status when the child fails.
std::string run_child(const std::string& executable, const std::vector<std::string>& arguments);

// The last line of both tools' --help.
inline constexpr const char* help_footer =
    "The table columns and JSON fields are explained in docs/benchmarks.md, section \"What is measured\".";

// Adds what both tools' command lines share (the hidden --child flag, which sets `child`, and
// the help footer with the exit statuses), then parses. Returns the status to exit with when
// parsing ends the program (0 after --help, 1 for an invalid command line), or nothing.
std::optional<int> parse_command_line(CLI::App& app, bool& child, int argc, char** argv);

// Prints records as a table to stdout, one line per configuration. Each column shows one JSON
// field ("-" for null or missing) and is titled after it, so "peak extra MiB" is peak_extra_mib.
// steps and the thread counts are in the JSON only. Times keep three significant digits, so
// 0.0123 ms stays readable.
void print_table(const nlohmann::json& records);

}  // namespace bench
