#include "bench_common.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <limits>
#include <sstream>
#include <stdexcept>
#include <string_view>

extern char** environ;

namespace bench {

namespace {

// The comma-separated items of `list`, empty ones included: "16," gives "16" and "", which the
// callers reject, where std::getline would drop the trailing empty item.
std::vector<std::string> split_items(const std::string& list) {
  std::vector<std::string> items;
  std::size_t begin = 0;
  while (true) {
    const std::size_t comma = list.find(',', begin);
    items.push_back(list.substr(begin, comma == std::string::npos ? std::string::npos : comma - begin));
    if (comma == std::string::npos) {
      return items;
    }
    begin = comma + 1;
  }
}

}  // namespace

std::vector<std::int64_t> parse_sizes(const std::string& option, const std::string& list) {
  std::vector<std::int64_t> sizes;
  for (const std::string& item : split_items(list)) {
    std::size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
    } catch (const std::out_of_range&) {
      throw std::invalid_argument(option + ": every item must be at most " +
                                  std::to_string(std::numeric_limits<long long>::max()) + ", but got '" + item +
                                  "' in '" + list + "'");
    } catch (const std::exception&) {
      used = 0;
    }
    if (used == 0 || used != item.size() || value <= 0) {
      throw std::invalid_argument(option + ": every item must be a positive integer, but got '" + item + "' in '" +
                                  list + "'");
    }
    sizes.push_back(value);
  }
  if (sizes.empty()) {
    throw std::invalid_argument(option + ": the list must not be empty");
  }
  return sizes;
}

std::vector<std::string> parse_names(const std::string& option, const std::string& list,
                                     const std::vector<std::string>& allowed) {
  std::vector<std::string> names;
  for (const std::string& item : split_items(list)) {
    if (std::find(allowed.begin(), allowed.end(), item) == allowed.end()) {
      std::string valid;
      for (const std::string& name : allowed) {
        valid += (valid.empty() ? "" : ", ") + name;
      }
      throw std::invalid_argument(option + ": every item must be one of " + valid + ", but got '" + item + "'");
    }
    names.push_back(item);
  }
  if (names.empty()) {
    throw std::invalid_argument(option + ": the list must not be empty");
  }
  return names;
}

double parse_positive(const std::string& option, const std::string& text) {
  std::size_t used = 0;
  double value = 0.0;
  try {
    value = std::stod(text, &used);
  } catch (const std::exception&) {
    used = 0;  // no number, or one out of the double range such as 1e999
  }
  if (used == 0 || used != text.size() || !std::isfinite(value) || !(value > 0)) {
    throw std::invalid_argument(option + ": the value must be a positive finite number, but got '" + text + "'");
  }
  return value;
}

std::optional<int> parse_command_line(CLI::App& app, bool& child, int argc, char** argv) {
  app.add_flag("--child", child, "Run exactly one configuration and print its JSON record (used internally)")
      ->group("");
  app.footer(std::string("Exit status: 0 on success, 1 for an invalid option or a failed configuration.\n") +
             help_footer);
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    const int status = app.exit(error);
    return status == 0 ? 0 : 1;
  }
  return std::nullopt;
}

std::string format_significant(double value) {
  if (!std::isfinite(value)) {
    return std::to_string(value);
  }
  if (value == 0) {
    return "0";
  }
  // Decimals that leave three significant digits: 2 for 1.23, 4 for 0.0123, none from 100 up.
  const int magnitude = static_cast<int>(std::floor(std::log10(std::abs(value))));
  const int decimals = std::max(0, 2 - magnitude);
  char text[64];
  std::snprintf(text, sizeof text, "%.*f", decimals, value);
  return text;
}

double median(std::vector<double> values) {
  if (values.empty()) {
    return 0.0;
  }
  std::sort(values.begin(), values.end());
  const std::size_t middle = values.size() / 2;
  return values.size() % 2 == 1 ? values[middle] : 0.5 * (values[middle - 1] + values[middle]);
}

namespace {

// The value of a "Name:   123 kB" line of /proc/self/status, in bytes, or -1 when it is missing.
std::int64_t status_kib_field(const std::string& name) {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line)) {
    if (line.rfind(name + ":", 0) == 0) {
      return std::stoll(line.substr(name.size() + 1)) * 1024;
    }
  }
  return -1;
}

}  // namespace

std::int64_t resident_bytes() { return status_kib_field("VmRSS"); }

std::int64_t peak_resident_bytes() { return status_kib_field("VmHWM"); }

bool reset_peak_resident() {
  std::ofstream clear_refs("/proc/self/clear_refs");
  clear_refs << "5";
  clear_refs.flush();
  return clear_refs.good();
}

std::string run_child(const std::string& executable, const std::vector<std::string>& arguments) {
  int pipe_ends[2];
  if (pipe(pipe_ends) != 0) {
    throw std::runtime_error("bench: creating a pipe to the child process failed");
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_adddup2(&actions, pipe_ends[1], STDOUT_FILENO);
  posix_spawn_file_actions_addclose(&actions, pipe_ends[0]);
  posix_spawn_file_actions_addclose(&actions, pipe_ends[1]);

  std::vector<std::string> storage = {executable};
  storage.insert(storage.end(), arguments.begin(), arguments.end());
  std::vector<char*> argv;
  for (std::string& argument : storage) {
    argv.push_back(argument.data());
  }
  argv.push_back(nullptr);

  pid_t child = 0;
  const int spawned = posix_spawn(&child, executable.c_str(), &actions, nullptr, argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  close(pipe_ends[1]);
  if (spawned != 0) {
    close(pipe_ends[0]);
    throw std::runtime_error("bench: starting " + executable + " failed with error " + std::to_string(spawned));
  }
  std::string output;
  char buffer[4096];
  ssize_t count = 0;
  while ((count = read(pipe_ends[0], buffer, sizeof buffer)) > 0) {
    output.append(buffer, static_cast<std::size_t>(count));
  }
  close(pipe_ends[0]);
  int status = 0;
  waitpid(child, &status, 0);
  if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
    throw std::runtime_error("bench: the child process for one configuration failed (" +
                             (WIFEXITED(status) ? "exit status " + std::to_string(WEXITSTATUS(status))
                                                : "signal " + std::to_string(WTERMSIG(status))) +
                             ")");
  }
  return output;
}

namespace {

enum class CellFormat {
  as_is,        // strings and integers
  significant,  // three significant digits
  fixed_2,      // two decimals, for a share between 0 and 1
  count,        // a whole number without decimals, else three significant digits
};

std::string format_cell(const nlohmann::json& value, CellFormat format) {
  if (value.is_null()) {
    return "-";
  }
  if (value.is_string()) {
    return value.get<std::string>();
  }
  const double number = value.get<double>();
  char text[64];
  switch (format) {
    case CellFormat::as_is:
      return value.dump();
    case CellFormat::significant:
      return format_significant(number);
    case CellFormat::fixed_2:
      std::snprintf(text, sizeof text, "%.2f", number);
      return text;
    case CellFormat::count:
      if (number == std::floor(number) && std::abs(number) < 1e15) {
        std::snprintf(text, sizeof text, "%.0f", number);
        return text;
      }
      return format_significant(number);
  }
  return value.dump();
}

}  // namespace

void print_table(const nlohmann::json& records) {
  struct Column {
    const char* key;
    const char* title;  // the key in words, so a reader finds the field in the JSON and the docs
    CellFormat format;
  };
  const Column columns[] = {
      {"n", "N", CellFormat::as_is},
      {"d", "D", CellFormat::as_is},
      {"dtype", "dtype", CellFormat::as_is},
      {"implementation", "implementation", CellFormat::as_is},
      {"forward_ms", "forward ms", CellFormat::significant},
      {"forward_backward_ms", "forward+backward ms", CellFormat::significant},
      {"gflops", "GFLOP/s", CellFormat::significant},
      {"floor_ms", "floor ms", CellFormat::significant},
      {"floor_share", "floor share", CellFormat::fixed_2},
      {"peak_extra_mib", "peak extra MiB", CellFormat::significant},
      {"peak_rss_extra_mib", "peak RSS extra MiB", CellFormat::significant},
      {"allocations_per_step", "allocations/step", CellFormat::count},
  };

  // Each column is as wide as its title or its widest cell, plus two spaces.
  std::vector<std::vector<std::string>> cells;
  std::vector<std::size_t> widths;
  for (const Column& column : columns) {
    widths.push_back(std::string_view(column.title).size());
  }
  for (const nlohmann::json& record : records) {
    std::vector<std::string>& row = cells.emplace_back();
    for (std::size_t c = 0; c < std::size(columns); ++c) {
      const auto found = record.find(columns[c].key);
      row.push_back(found == record.end() ? "-" : format_cell(*found, columns[c].format));
      widths[c] = std::max(widths[c], row.back().size());
    }
  }
  std::string line;
  for (std::size_t c = 0; c < std::size(columns); ++c) {
    line += std::string(widths[c] + 2 - std::string_view(columns[c].title).size(), ' ') + columns[c].title;
  }
  std::puts(line.c_str());
  for (const std::vector<std::string>& row : cells) {
    line.clear();
    for (std::size_t c = 0; c < row.size(); ++c) {
      line += std::string(widths[c] + 2 - row[c].size(), ' ') + row[c];
    }
    std::puts(line.c_str());
  }
}

}  // namespace bench
