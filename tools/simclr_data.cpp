#include "simclr_data.hpp"

#include <algorithm>
#include <charconv>
#include <cstring>
#include <fstream>
#include <numeric>
#include <random>
#include <string>
#include <string_view>
#include <system_error>

#include <tapegrad/tapegrad.hpp>

namespace simclr {
namespace {

namespace tg = tapegrad;

constexpr std::int64_t values_per_line = image_size + 1;

// Parses one comma-separated field as an integer in [low, high], or raises naming its position.
int parse_field(std::string_view field, int low, int high, const std::filesystem::path& path, std::int64_t line,
                std::int64_t column, std::string_view what) {
  int value = 0;
  const char* end = field.data() + field.size();
  const auto [stop, error] = std::from_chars(field.data(), end, value);
  if (field.empty() || error != std::errc() || stop != end || value < low || value > high) {
    tg::raise<tg::ValueError>("load_digits", fmt::format("a {} must be an integer in {}..{}", what, low, high),
                              "\"{}\" in {} line {} column {}", field, path.string(), line, column);
  }
  return value;
}

// Splits line into its comma-separated fields, or raises when their count is not values_per_line.
std::vector<std::string_view> split_fields(std::string_view line, const std::filesystem::path& path,
                                           std::int64_t line_number) {
  std::vector<std::string_view> fields;
  fields.reserve(values_per_line);
  std::size_t start = 0;
  while (true) {
    const std::size_t comma = line.find(',', start);
    fields.push_back(line.substr(start, comma == std::string_view::npos ? std::string_view::npos : comma - start));
    if (comma == std::string_view::npos) {
      break;
    }
    start = comma + 1;
  }
  if (static_cast<std::int64_t>(fields.size()) != values_per_line) {
    tg::raise<tg::ValueError>("load_digits",
                              fmt::format("each line must hold {} comma-separated values (64 pixels, then the label)",
                                          values_per_line),
                              "{} values in {} line {}", fields.size(), path.string(), line_number);
  }
  return fields;
}

}  // namespace

DigitSet load_digits(const std::filesystem::path& path) {
  std::ifstream file(path);
  if (!file) {
    tg::raise<tg::ValueError>("load_digits", "the data file must exist and be readable", "{} ({})", path.string(),
                              std::strerror(errno));
  }
  DigitSet digits;
  std::string line;
  std::int64_t line_number = 0;
  while (std::getline(file, line)) {
    ++line_number;
    if (!line.empty() && line.back() == '\r') {
      line.pop_back();
    }
    if (line.find_first_not_of(" \t") == std::string::npos) {
      continue;
    }
    const std::vector<std::string_view> fields = split_fields(line, path, line_number);
    for (std::int64_t i = 0; i < image_size; ++i) {
      const int pixel = parse_field(fields[static_cast<std::size_t>(i)], 0, max_pixel, path, line_number, i + 1, "pixel");
      digits.pixels.push_back(static_cast<float>(pixel) / static_cast<float>(max_pixel));
    }
    digits.labels.push_back(
        parse_field(fields.back(), 0, class_count - 1, path, line_number, values_per_line, "label"));
  }
  if (file.bad()) {
    tg::raise<tg::ValueError>("load_digits", "the data file must be readable to the end", "a read error in {} after line {}",
                              path.string(), line_number);
  }
  if (digits.count() == 0) {
    tg::raise<tg::ValueError>("load_digits", "the data file must contain at least one image",
                              "no images in {} ({} lines)", path.string(), line_number);
  }
  return digits;
}

DigitSet select_digits(const DigitSet& digits, const std::vector<std::int64_t>& positions) {
  DigitSet selected;
  selected.pixels.reserve(positions.size() * image_size);
  selected.labels.reserve(positions.size());
  for (std::int64_t position : positions) {
    const float* image = digits.image(position);
    selected.pixels.insert(selected.pixels.end(), image, image + image_size);
    selected.labels.push_back(digits.labels[static_cast<std::size_t>(position)]);
  }
  return selected;
}

DigitSplit split_digits(const DigitSet& digits, std::int64_t train_count, std::uint64_t seed) {
  if (train_count <= 0 || train_count >= digits.count()) {
    tg::raise<tg::ValueError>("split_digits", "the train split must leave at least one image on each side",
                              "train_count {} for {} images", train_count, digits.count());
  }
  std::vector<std::int64_t> order(static_cast<std::size_t>(digits.count()));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  std::mt19937_64 generator(seed);
  std::shuffle(order.begin(), order.end(), generator);
  const auto middle = order.begin() + train_count;
  return {.train = select_digits(digits, {order.begin(), middle}), .test = select_digits(digits, {middle, order.end()})};
}

std::filesystem::path default_data_path() {
  std::error_code error;
  const std::filesystem::path executable = std::filesystem::read_symlink("/proc/self/exe", error);
  const std::filesystem::path folder = error ? std::filesystem::current_path() : executable.parent_path();
  const std::filesystem::path build_tree = folder / "optdigits.csv";
  const std::filesystem::path installed = (folder / ".." / "share" / "tapegrad" / "optdigits.csv").lexically_normal();
  if (std::filesystem::exists(build_tree, error)) {
    return build_tree;
  }
  return installed;
}

}  // namespace simclr
