#include "bench_common.hpp"

#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <sstream>
#include <stdexcept>

extern char** environ;

namespace bench {

std::vector<std::int64_t> parse_sizes(const std::string& option, const std::string& list) {
  std::vector<std::int64_t> sizes;
  std::stringstream stream(list);
  std::string item;
  while (std::getline(stream, item, ',')) {
    std::size_t used = 0;
    long long value = 0;
    try {
      value = std::stoll(item, &used);
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
  std::stringstream stream(list);
  std::string item;
  while (std::getline(stream, item, ',')) {
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

void print_table(const nlohmann::json& records) {
  struct Column {
    const char* key;
    const char* title;
    int width;
    int precision;
  };
  const Column columns[] = {
      {"n", "N", 6, 0},
      {"d", "D", 5, 0},
      {"dtype", "dtype", 6, 0},
      {"implementation", "implementation", 15, 0},
      {"forward_ms", "fwd ms", 10, 2},
      {"forward_backward_ms", "fwd+bwd ms", 11, 2},
      {"gflops", "GFLOP/s", 9, 1},
      {"floor_ms", "floor ms", 10, 2},
      {"floor_share", "floor share", 12, 2},
      {"peak_extra_mib", "peak MiB", 10, 1},
      {"peak_rss_extra_mib", "peak RSS MiB", 13, 1},
      {"allocations_per_step", "allocs/step", 12, 1},
  };
  std::string line;
  for (const Column& column : columns) {
    char cell[64];
    std::snprintf(cell, sizeof cell, "%*s", column.width, column.title);
    line += cell;
  }
  std::puts(line.c_str());
  for (const nlohmann::json& record : records) {
    line.clear();
    for (const Column& column : columns) {
      char cell[64];
      const auto found = record.find(column.key);
      if (found == record.end() || found->is_null()) {
        std::snprintf(cell, sizeof cell, "%*s", column.width, "-");
      } else if (found->is_string()) {
        std::snprintf(cell, sizeof cell, "%*s", column.width, found->get<std::string>().c_str());
      } else {
        std::snprintf(cell, sizeof cell, "%*.*f", column.width, column.precision, found->get<double>());
      }
      line += cell;
    }
    std::puts(line.c_str());
  }
}

}  // namespace bench
