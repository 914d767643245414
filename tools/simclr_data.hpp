#pragma once
// Loading the optdigits CSV and splitting it into train and test sets.

#include <cstdint>
#include <filesystem>
#include <vector>

namespace simclr {

inline constexpr std::int64_t image_side = 8;
inline constexpr std::int64_t image_size = image_side * image_side;
inline constexpr std::int64_t class_count = 10;
// Pixels in the file are counts of set bits in a 4×4 block, so 16 is the largest value.
inline constexpr int max_pixel = 16;

// Images as rows of image_size floats in [0, 1] (file value / 16), with their labels 0..9.
struct DigitSet {
  std::vector<float> pixels;  // [count, image_size], row-major
  std::vector<int> labels;    // [count]

  std::int64_t count() const { return static_cast<std::int64_t>(labels.size()); }
  const float* image(std::int64_t index) const { return pixels.data() + index * image_size; }
};

// Reads a CSV file of 65 integers per line: 64 pixels in 0..max_pixel, then a label in 0..9.
// Blank lines are skipped, and a trailing carriage return is accepted. Raises
// tapegrad::ValueError naming the file (and the line and column, for a bad value) when the file
// is missing or unreadable, contains no images, a line has another number of values, a pixel is not
// an integer in 0..16, or a label is not an integer in 0..9.
DigitSet load_digits(const std::filesystem::path& path);

struct DigitSplit {
  DigitSet train;
  DigitSet test;
};

// Shuffles the images with a permutation drawn from std::mt19937_64 seeded with seed, then puts
// the first train_count into train and the rest into test. Raises tapegrad::ValueError unless
// 0 < train_count < digits.count().
DigitSplit split_digits(const DigitSet& digits, std::int64_t train_count, std::uint64_t seed);

// Copies the images at the given positions, in that order.
DigitSet select_digits(const DigitSet& digits, const std::vector<std::int64_t>& positions);

// The optdigits.csv shipped with the demo, looked up next to the running executable:
//   <dir>/optdigits.csv                        the build tree, where meson copies the file
//   <dir>/../share/tapegrad/optdigits.csv      an installed tree (bin/ beside share/)
// where <dir> is the folder of /proc/self/exe. Returns the first that exists, or the installed
// path when neither does, so the error message names where the file was expected.
std::filesystem::path default_data_path();

}  // namespace simclr
