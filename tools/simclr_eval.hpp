#pragma once
// Evaluation of a representation by k-nearest-neighbour classification.

#include <cstdint>
#include <vector>

#include "simclr_data.hpp"

namespace simclr {

// Features of count items, dimension values each, row-major.
struct Features {
  std::vector<float> values;
  std::int64_t dimension = 0;

  std::int64_t count() const { return dimension > 0 ? static_cast<std::int64_t>(values.size()) / dimension : 0; }
  const float* row(std::int64_t index) const { return values.data() + index * dimension; }
};

// Scales every row to unit L2 norm. A zero row stays zero (it has cosine 0 with every row).
void normalize_rows(Features& features);

// Classifies each test row by its k nearest train rows under cosine similarity, with rows
// L2-normalized first, and returns the fraction of correct labels in [0, 1]. The prediction is
// the majority label of the k neighbours. Among labels with equal votes, the label of the nearest
// neighbour wins, and equal similarities are ordered by train index. Raises tapegrad::ValueError
// when k is not in [1, train count], the dimensions differ, or a label count differs from its
// row count.
double knn_accuracy(Features train, const std::vector<int>& train_labels, Features test,
                    const std::vector<int>& test_labels, std::int64_t k);

// The test images, each moved by one of the 8 shifts (dx, dy) in {−1, 0, 1}² other than (0, 0),
// drawn uniformly with std::mt19937_64 seeded with seed. Moved-in pixels are 0.
DigitSet shift_digits(const DigitSet& digits, std::uint64_t seed);

}  // namespace simclr
