// The SimCLR demo's pieces: the CSV loader and its errors, the split, augmentations, k-NN
// evaluation, the shifted test set, and the loss chart.
#include <doctest/doctest.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <fstream>
#include <numeric>
#include <random>
#include <set>
#include <string>
#include <unistd.h>

#include <tapegrad/tapegrad.hpp>

#include "simclr_augment.hpp"
#include "simclr_data.hpp"
#include "simclr_eval.hpp"
#include "simclr_model.hpp"
#include "simclr_output.hpp"

namespace tg = tapegrad;
namespace fs = std::filesystem;

namespace {

// A folder of its own for each test process, removed at exit.
struct TempFolder {
  fs::path path = fs::temp_directory_path() / ("tapegrad_simclr_test_" + std::to_string(::getpid()));
  TempFolder() { fs::create_directories(path); }
  ~TempFolder() { fs::remove_all(path); }
};

fs::path write_file(const std::string& name, const std::string& text) {
  static TempFolder folder;
  const fs::path path = folder.path / name;
  std::ofstream(path, std::ios::binary) << text;
  return path;
}

// One CSV line: pixel i is (first + i) mod 17, then the label.
std::string csv_line(int first, int label) {
  std::string line;
  for (int i = 0; i < 64; ++i) {
    line += std::to_string((first + i) % 17) + ",";
  }
  return line + std::to_string(label);
}

std::string load_error(const fs::path& path) {
  try {
    simclr::load_digits(path);
  } catch (const tg::ValueError& error) {
    return error.what();
  }
  return "no error";
}

simclr::Features features(std::vector<float> values, std::int64_t dimension) {
  return {.values = std::move(values), .dimension = dimension};
}

}  // namespace

TEST_CASE("load_digits reads pixels and labels") {
  const fs::path path = write_file("good.csv", csv_line(0, 3) + "\r\n\n" + csv_line(5, 9) + "\n");
  const simclr::DigitSet digits = simclr::load_digits(path);
  REQUIRE(digits.count() == 2);
  CHECK(digits.labels == std::vector<int>{3, 9});
  CHECK(digits.image(0)[0] == 0.0f);
  CHECK(digits.image(0)[16] == 1.0f);          // 16 / 16
  CHECK(digits.image(0)[17] == 0.0f);          // (0 + 17) mod 17 = 0
  CHECK(digits.image(1)[0] == 5.0f / 16.0f);
  CHECK(digits.image(1)[63] == ((5 + 63) % 17) / 16.0f);
}

TEST_CASE("load_digits reads the shipped data") {
  const simclr::DigitSet digits = simclr::load_digits(fs::path(TAPEGRAD_SOURCE_ROOT) / "tools/data/optdigits.csv");
  CHECK(digits.count() == 1797);
  std::vector<int> per_class(10, 0);
  for (int label : digits.labels) {
    ++per_class[static_cast<std::size_t>(label)];
  }
  // Every class has between 174 and 183 images in this file (counted with python3's csv module).
  for (int count : per_class) {
    CHECK(count >= 174);
    CHECK(count <= 183);
  }
  CHECK(*std::max_element(digits.pixels.begin(), digits.pixels.end()) == 1.0f);
}

TEST_CASE("load_digits names a missing file") {
  const fs::path path = fs::temp_directory_path() / "tapegrad_no_such_folder" / "digits.csv";
  const std::string message = load_error(path);
  CHECK(message.find("load_digits: the data file must exist and be readable") != std::string::npos);
  CHECK(message.find(path.string()) != std::string::npos);
}

TEST_CASE("load_digits rejects an empty file") {
  CHECK(load_error(write_file("empty.csv", "")).find("must contain at least one image, but got no images in") !=
        std::string::npos);
  CHECK(load_error(write_file("blank.csv", "\n  \n")).find("(2 lines)") != std::string::npos);
}

TEST_CASE("load_digits rejects a wrong column count") {
  const fs::path path = write_file("short.csv", csv_line(0, 1) + "\n1,2,3\n");
  const std::string message = load_error(path);
  CHECK(message.find("each line must hold 65 comma-separated values") != std::string::npos);
  CHECK(message.find("3 values in " + path.string() + " line 2") != std::string::npos);
  const fs::path extra = write_file("long.csv", csv_line(0, 1) + ",4\n");
  CHECK(load_error(extra).find("66 values in " + extra.string() + " line 1") != std::string::npos);
}

TEST_CASE("load_digits rejects a pixel outside 0..16") {
  // csv_line with its first field replaced by `first`.
  const auto with_first = [](const std::string& first) {
    std::string line = first;
    line += csv_line(0, 1).substr(1);
    return line + "\n";
  };
  const fs::path too_big = write_file("big.csv", with_first("17"));
  CHECK(load_error(too_big).find("a pixel must be an integer in 0..16, but got \"17\" in " + too_big.string() +
                                 " line 1 column 1") != std::string::npos);
  const fs::path negative = write_file("negative.csv", with_first("-1"));
  CHECK(load_error(negative).find("\"-1\"") != std::string::npos);
  const fs::path fraction = write_file("fraction.csv", csv_line(0, 2) + "\n" + with_first("3.5"));
  CHECK(load_error(fraction).find("\"3.5\" in " + fraction.string() + " line 2 column 1") != std::string::npos);
  const fs::path empty_field = write_file("empty_field.csv", with_first(""));
  CHECK(load_error(empty_field).find("\"\" in " + empty_field.string() + " line 1 column 1") != std::string::npos);
  const fs::path word = write_file("word.csv", with_first("x"));
  CHECK(load_error(word).find("\"x\" in " + word.string() + " line 1 column 1") != std::string::npos);
}

TEST_CASE("load_digits rejects a label outside 0..9") {
  const fs::path path = write_file("label.csv", csv_line(0, 10) + "\n");
  CHECK(load_error(path).find("a label must be an integer in 0..9, but got \"10\" in " + path.string() +
                              " line 1 column 65") != std::string::npos);
}

TEST_CASE("split_digits is a seeded permutation") {
  simclr::DigitSet digits;
  for (int i = 0; i < 50; ++i) {
    digits.pixels.insert(digits.pixels.end(), 64, static_cast<float>(i));
    digits.labels.push_back(i % 10);
  }
  const simclr::DigitSplit split = simclr::split_digits(digits, 40, 7);
  CHECK(split.train.count() == 40);
  CHECK(split.test.count() == 10);
  std::set<float> seen;
  for (const simclr::DigitSet* part : {&split.train, &split.test}) {
    for (std::int64_t i = 0; i < part->count(); ++i) {
      const float id = part->image(i)[0];
      seen.insert(id);
      CHECK(part->labels[static_cast<std::size_t>(i)] == static_cast<int>(id) % 10);  // labels follow images
    }
  }
  CHECK(seen.size() == 50);
  CHECK(simclr::split_digits(digits, 40, 7).train.pixels == split.train.pixels);
  CHECK(simclr::split_digits(digits, 40, 8).train.pixels != split.train.pixels);
  CHECK_THROWS_WITH_AS(simclr::split_digits(digits, 50, 0), doctest::Contains("train_count 50 for 50 images"),
                       tg::ValueError);
  CHECK_THROWS_AS(simclr::split_digits(digits, 0, 0), tg::ValueError);
}

TEST_CASE("shift_image moves pixels and fills zeros") {
  std::vector<float> image(64);
  for (int i = 0; i < 64; ++i) {
    image[static_cast<std::size_t>(i)] = static_cast<float>(i + 1);  // pixel (row r, column c) = 8r + c + 1
  }
  std::vector<float> out(64);
  simclr::shift_image(image.data(), out.data(), 1, -1);  // one column right, one row up
  CHECK(out[0] == 0.0f);                 // column 0 comes from outside
  CHECK(out[1] == 9.0f);                 // (0, 1) ← (1, 0) = 8 + 0 + 1
  CHECK(out[7 * 8 + 3] == 0.0f);         // the last row comes from below the image
  CHECK(out[6 * 8 + 7] == 7 * 8 + 6 + 1);  // (6, 7) ← (7, 6)
  simclr::shift_image(image.data(), out.data(), 0, 0);
  CHECK(out == image);
}

TEST_CASE("augment_image without randomness is the identity") {
  const simclr::AugmentOptions none{
      .max_shift = 0, .scale_low = 1.0, .scale_high = 1.0, .erase_probability = 0.0, .noise_std = 0.0};
  std::vector<float> image(64);
  std::iota(image.begin(), image.end(), 0.0f);
  std::vector<float> out(64);
  std::mt19937_64 generator(3);
  simclr::augment_image(image.data(), out.data(), generator, none);
  CHECK(out == image);
}

TEST_CASE("augment_image scale, erase and noise") {
  const std::vector<float> image(64, 1.0f);
  std::vector<float> out(64);
  std::mt19937_64 generator(11);

  // Scale only: every pixel equals the one drawn factor, which lies in [0.8, 1.2).
  simclr::augment_image(image.data(), out.data(), generator,
                        {.max_shift = 0, .erase_probability = 0.0, .noise_std = 0.0});
  CHECK(out[0] >= 0.8f);
  CHECK(out[0] < 1.2f);
  CHECK(std::count(out.begin(), out.end(), out[0]) == 64);

  // Erase always: between 2×2 = 4 and 3×3 = 9 pixels are zeroed.
  for (int trial = 0; trial < 20; ++trial) {
    simclr::augment_image(image.data(), out.data(), generator,
                          {.max_shift = 0, .scale_low = 1.0, .scale_high = 1.0, .erase_probability = 1.0,
                           .noise_std = 0.0});
    const auto zeros = std::count(out.begin(), out.end(), 0.0f);
    CHECK(zeros >= 4);
    CHECK(zeros <= 9);
  }

  // Noise only: over 64 × 200 draws the sample standard deviation is within 5% of 0.1.
  double sum = 0.0;
  double squares = 0.0;
  for (int trial = 0; trial < 200; ++trial) {
    simclr::augment_image(image.data(), out.data(), generator,
                          {.max_shift = 0, .scale_low = 1.0, .scale_high = 1.0, .erase_probability = 0.0});
    for (float value : out) {
      sum += value - 1.0;
      squares += (value - 1.0) * (value - 1.0);
    }
  }
  const double n = 64.0 * 200.0;
  CHECK(std::abs(sum / n) < 0.005);
  CHECK(std::sqrt(squares / n) == doctest::Approx(0.1).epsilon(0.05));
}

TEST_CASE("augment_image is reproducible from the seed") {
  std::vector<float> image(64, 0.5f);
  std::vector<float> first(64);
  std::vector<float> second(64);
  std::mt19937_64 generator_a(5);
  std::mt19937_64 generator_b(5);
  simclr::augment_image(image.data(), first.data(), generator_a, {});
  simclr::augment_image(image.data(), second.data(), generator_b, {});
  CHECK(first == second);
  simclr::augment_image(image.data(), second.data(), generator_b, {});
  CHECK(first != second);
}

TEST_CASE("knn_accuracy votes among the k nearest") {
  // Class 0 near the x axis, class 1 near the y axis.
  const auto train = features({1, 0, 1, 0.1f, 1, -0.1f, 0, 1, 0.1f, 1}, 2);
  const std::vector<int> train_labels{0, 0, 0, 1, 1};
  const auto test = features({1, 0.05f, 0.05f, 1}, 2);
  // With k = 3 the second query has two class-1 neighbours and (1, 0.1) as the third.
  CHECK(simclr::knn_accuracy(train, train_labels, test, {0, 1}, 3) == 1.0);
  CHECK(simclr::knn_accuracy(train, train_labels, test, {1, 1}, 3) == 0.5);
  // With k = 5 all five train rows vote for every query, and class 0 has the majority.
  CHECK(simclr::knn_accuracy(train, train_labels, test, {0, 0}, 5) == 1.0);
}

TEST_CASE("knn_accuracy breaks ties by the nearest neighbour") {
  const auto train = features({1, 0, 0.8f, 0.6f}, 2);
  const std::vector<int> train_labels{3, 7};
  // k = 2 gives one vote each. (0.9, 0.1) is nearer (1, 0); (0.6, 0.8) is nearer (0.8, 0.6).
  const auto test = features({0.9f, 0.1f, 0.6f, 0.8f}, 2);
  CHECK(simclr::knn_accuracy(train, train_labels, test, {3, 7}, 2) == 1.0);
  CHECK(simclr::knn_accuracy(train, train_labels, test, {7, 3}, 2) == 0.0);
}

TEST_CASE("knn_accuracy uses cosine, not Euclidean distance") {
  // (1, 0.2) has cosine 0.981 with (10, 0) and 0.832 with (0.5, 0.5), but Euclidean distance 9.0 to
  // the first and 0.58 to the second: only the cosine neighbour is class 0.
  const auto train = features({10, 0, 0.5f, 0.5f}, 2);
  CHECK(simclr::knn_accuracy(train, {0, 1}, features({1, 0.2f}, 2), {0}, 1) == 1.0);
}

TEST_CASE("knn_accuracy rejects bad arguments") {
  const auto train = features({1, 0, 0, 1}, 2);
  const auto test = features({1, 0}, 2);
  CHECK_THROWS_WITH_AS(simclr::knn_accuracy(train, {0, 1}, test, {0}, 0), doctest::Contains("k must be in [1, 2]"),
                       tg::ValueError);
  CHECK_THROWS_WITH_AS(simclr::knn_accuracy(train, {0, 1}, test, {0}, 3), doctest::Contains("k 3"), tg::ValueError);
  CHECK_THROWS_WITH_AS(simclr::knn_accuracy(train, {0, 1}, features({1, 0, 0}, 3), {0}, 1),
                       doctest::Contains("train dimension 2 and test dimension 3"), tg::ValueError);
  CHECK_THROWS_WITH_AS(simclr::knn_accuracy(train, {0}, test, {0}, 1),
                       doctest::Contains("2 train rows with 1 labels"), tg::ValueError);
  CHECK_THROWS_WITH_AS(simclr::knn_accuracy(train, {0, 12}, test, {0}, 1), doctest::Contains("label 12"),
                       tg::ValueError);
}

TEST_CASE("shift_digits applies one non-zero shift per image") {
  simclr::DigitSet digits;
  std::mt19937_64 generator(1);
  std::uniform_real_distribution<float> pixel(0.1f, 1.0f);  // no zeros, so every shift is visible
  for (int i = 0; i < 40; ++i) {
    for (int j = 0; j < 64; ++j) {
      digits.pixels.push_back(pixel(generator));
    }
    digits.labels.push_back(i % 10);
  }
  const simclr::DigitSet shifted = simclr::shift_digits(digits, 4);
  CHECK(shifted.labels == digits.labels);
  std::set<std::pair<int, int>> used;
  std::vector<float> candidate(64);
  for (std::int64_t i = 0; i < digits.count(); ++i) {
    int matches = 0;
    for (int dx = -1; dx <= 1; ++dx) {
      for (int dy = -1; dy <= 1; ++dy) {
        simclr::shift_image(digits.image(i), candidate.data(), dx, dy);
        if (std::equal(candidate.begin(), candidate.end(), shifted.image(i))) {
          ++matches;
          CHECK((dx != 0 || dy != 0));
          used.insert({dx, dy});
        }
      }
    }
    CHECK(matches == 1);
  }
  CHECK(used.size() >= 6);  // 40 uniform draws from 8 shifts miss more than 2 with probability < 1e-3
  CHECK(simclr::shift_digits(digits, 4).pixels == shifted.pixels);
}

TEST_CASE("encode_images matches a hand-built forward pass") {
  const simclr::Model model = simclr::init_model({}, 3);
  std::vector<float> images(2 * 64);
  std::mt19937_64 generator(2);
  std::uniform_real_distribution<float> pixel(0.0f, 1.0f);
  std::generate(images.begin(), images.end(), [&] { return pixel(generator); });
  const std::vector<float> h = simclr::encode_images(model, images.data(), 2);
  REQUIRE(h.size() == 2 * 64);

  // relu(x·W1 + b1)·W2 + b2 in double loops, independent of the ops.
  const float* w1 = model.hidden.weight.data<float>();
  const float* b1 = model.hidden.bias.data<float>();
  const float* w2 = model.embedding.weight.data<float>();
  const float* b2 = model.embedding.bias.data<float>();
  for (int row = 0; row < 2; ++row) {
    std::vector<double> hidden(128);
    for (int j = 0; j < 128; ++j) {
      double sum = b1[j];
      for (int i = 0; i < 64; ++i) {
        sum += static_cast<double>(images[static_cast<std::size_t>(row * 64 + i)]) * w1[i * 128 + j];
      }
      hidden[static_cast<std::size_t>(j)] = std::max(sum, 0.0);
    }
    for (int k = 0; k < 64; ++k) {
      double sum = b2[k];
      for (int j = 0; j < 128; ++j) {
        sum += hidden[static_cast<std::size_t>(j)] * w2[j * 64 + k];
      }
      INFO("row " << row << " feature " << k);
      CHECK(h[static_cast<std::size_t>(row * 64 + k)] == doctest::Approx(sum).epsilon(1e-4));
    }
  }
}

TEST_CASE("init_model draws within the fan-in bound") {
  const simclr::Model model = simclr::init_model({}, 0);
  const auto check_bound = [](const tg::Tensor& tensor, double fan_in) {
    const double bound = 1.0 / std::sqrt(fan_in);
    const std::vector<double> values = tensor.to_vector();
    CHECK(*std::max_element(values.begin(), values.end()) < bound);
    CHECK(*std::min_element(values.begin(), values.end()) >= -bound);
    CHECK(*std::max_element(values.begin(), values.end()) > 0.9 * bound);  // spread over the range
  };
  check_bound(model.hidden.weight, 64);
  check_bound(model.embedding.weight, 128);
  check_bound(model.projection.bias, 64);
  CHECK(model.hidden.weight.shape() == tg::Shape{64, 128});
  CHECK(model.projection.weight.shape() == tg::Shape{64, 32});
  CHECK(simclr::init_model({}, 1).hidden.weight.to_vector() != model.hidden.weight.to_vector());
}

TEST_CASE("render_loss_svg plots one point per step") {
  const std::string svg = simclr::render_loss_svg({3.0, 2.5, 2.25, 2.0}, "loss <per> step");
  CHECK(svg.find("<polyline") != std::string::npos);
  const std::size_t points = svg.find("points=\"");
  const std::string list = svg.substr(points + 8, svg.find('"', points + 8) - points - 8);
  CHECK(std::count(list.begin(), list.end(), ',') == 4);
  CHECK(svg.find("loss &lt;per&gt; step") != std::string::npos);
  CHECK(svg.find("training step") != std::string::npos);
  CHECK(simclr::render_loss_svg({}, "empty").find("no steps to plot") != std::string::npos);
}

TEST_CASE("render_loss_svg leaves out non-finite losses") {
  const std::string svg = simclr::render_loss_svg({3.0, std::nan(""), INFINITY, 2.0}, "diverged");
  const std::size_t points = svg.find("points=\"");
  const std::string list = svg.substr(points + 8, svg.find('"', points + 8) - points - 8);
  CHECK(std::count(list.begin(), list.end(), ',') == 2);
  CHECK(list.find("nan") == std::string::npos);
  CHECK(list.find("inf") == std::string::npos);
  CHECK(svg.find("2 non-finite losses not plotted") != std::string::npos);
}
