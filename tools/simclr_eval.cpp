#include "simclr_eval.hpp"

#include <algorithm>
#include <array>
#include <cmath>
#include <random>

#include <tapegrad/tapegrad.hpp>

#include "simclr_augment.hpp"

namespace simclr {
namespace {

namespace tg = tapegrad;

struct Neighbour {
  float similarity;
  std::int64_t index;
};

// The k train rows most similar to query, most similar first, ties ordered by train index.
std::vector<Neighbour> nearest(const Features& train, const float* query, std::int64_t k,
                               std::vector<Neighbour>& scratch) {
  scratch.clear();
  for (std::int64_t i = 0; i < train.count(); ++i) {
    const float* row = train.row(i);
    float dot = 0.0f;
    for (std::int64_t j = 0; j < train.dimension; ++j) {
      dot += row[j] * query[j];
    }
    scratch.push_back({dot, i});
  }
  const auto closer = [](const Neighbour& a, const Neighbour& b) {
    return a.similarity > b.similarity || (a.similarity == b.similarity && a.index < b.index);
  };
  std::partial_sort(scratch.begin(), scratch.begin() + k, scratch.end(), closer);
  return {scratch.begin(), scratch.begin() + k};
}

// The majority label of neighbours (ordered nearest first); a tie goes to the label whose
// nearest member comes first.
int vote(const std::vector<Neighbour>& neighbours, const std::vector<int>& train_labels) {
  std::array<int, class_count> votes{};
  for (const Neighbour& neighbour : neighbours) {
    ++votes[static_cast<std::size_t>(train_labels[static_cast<std::size_t>(neighbour.index)])];
  }
  const int most = *std::max_element(votes.begin(), votes.end());
  for (const Neighbour& neighbour : neighbours) {
    const int label = train_labels[static_cast<std::size_t>(neighbour.index)];
    if (votes[static_cast<std::size_t>(label)] == most) {
      return label;
    }
  }
  return -1;  // unreachable, because some neighbour has the most votes
}

void check_knn_arguments(const Features& train, const std::vector<int>& train_labels, const Features& test,
                         const std::vector<int>& test_labels, std::int64_t k) {
  if (train.dimension != test.dimension) {
    tg::raise<tg::ValueError>("knn_accuracy", "train and test features must have the same dimension",
                              "train dimension {} and test dimension {}", train.dimension, test.dimension);
  }
  if (train.count() != static_cast<std::int64_t>(train_labels.size()) ||
      test.count() != static_cast<std::int64_t>(test_labels.size())) {
    tg::raise<tg::ValueError>("knn_accuracy", "there must be one label per feature row",
                              "{} train rows with {} labels and {} test rows with {} labels", train.count(),
                              train_labels.size(), test.count(), test_labels.size());
  }
  if (k < 1 || k > train.count()) {
    tg::raise<tg::ValueError>("knn_accuracy", fmt::format("k must be in [1, {}], the train row count", train.count()),
                              "k {}", k);
  }
  for (int label : train_labels) {
    if (label < 0 || label >= class_count) {
      tg::raise<tg::ValueError>("knn_accuracy", "train labels must be in 0..9", "label {}", label);
    }
  }
}

}  // namespace

void normalize_rows(Features& features) {
  for (std::int64_t i = 0; i < features.count(); ++i) {
    float* row = features.values.data() + i * features.dimension;
    double squares = 0.0;
    for (std::int64_t j = 0; j < features.dimension; ++j) {
      squares += static_cast<double>(row[j]) * row[j];
    }
    if (squares == 0.0) {
      continue;
    }
    const auto scale = static_cast<float>(1.0 / std::sqrt(squares));
    for (std::int64_t j = 0; j < features.dimension; ++j) {
      row[j] *= scale;
    }
  }
}

double knn_accuracy(Features train, const std::vector<int>& train_labels, Features test,
                    const std::vector<int>& test_labels, std::int64_t k) {
  check_knn_arguments(train, train_labels, test, test_labels, k);
  normalize_rows(train);
  normalize_rows(test);
  std::vector<Neighbour> scratch;
  scratch.reserve(static_cast<std::size_t>(train.count()));
  std::int64_t correct = 0;
  for (std::int64_t i = 0; i < test.count(); ++i) {
    const int predicted = vote(nearest(train, test.row(i), k, scratch), train_labels);
    correct += predicted == test_labels[static_cast<std::size_t>(i)] ? 1 : 0;
  }
  return test.count() > 0 ? static_cast<double>(correct) / static_cast<double>(test.count()) : 0.0;
}

DigitSet shift_digits(const DigitSet& digits, std::uint64_t seed) {
  static constexpr std::array<std::array<int, 2>, 8> shifts{
      {{-1, -1}, {0, -1}, {1, -1}, {-1, 0}, {1, 0}, {-1, 1}, {0, 1}, {1, 1}}};
  std::mt19937_64 generator(seed);
  std::uniform_int_distribution<std::size_t> pick(0, shifts.size() - 1);
  DigitSet shifted = digits;
  for (std::int64_t i = 0; i < digits.count(); ++i) {
    const auto [dx, dy] = shifts[pick(generator)];
    shift_image(digits.image(i), shifted.pixels.data() + i * image_size, dx, dy);
  }
  return shifted;
}

}  // namespace simclr
