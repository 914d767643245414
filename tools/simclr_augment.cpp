#include "simclr_augment.hpp"

#include "simclr_data.hpp"

namespace simclr {

void shift_image(const float* in, float* out, int dx, int dy) {
  const int side = static_cast<int>(image_side);
  for (int row = 0; row < side; ++row) {
    const int source_row = row - dy;
    for (int column = 0; column < side; ++column) {
      const int source_column = column - dx;
      const bool inside = source_row >= 0 && source_row < side && source_column >= 0 && source_column < side;
      out[row * side + column] = inside ? in[source_row * side + source_column] : 0.0f;
    }
  }
}

void augment_image(const float* in, float* out, std::mt19937_64& generator, const AugmentOptions& options) {
  std::uniform_int_distribution<int> shift(-options.max_shift, options.max_shift);
  const int dx = shift(generator);
  const int dy = shift(generator);
  shift_image(in, out, dx, dy);

  std::uniform_real_distribution<float> scale(static_cast<float>(options.scale_low),
                                              static_cast<float>(options.scale_high));
  const float factor = scale(generator);
  for (std::int64_t i = 0; i < image_size; ++i) {
    out[i] *= factor;
  }

  std::bernoulli_distribution erase(options.erase_probability);
  if (erase(generator)) {
    std::uniform_int_distribution<int> extent(options.erase_min, options.erase_max);
    const int height = extent(generator);
    const int width = extent(generator);
    const int side = static_cast<int>(image_side);
    const int top = std::uniform_int_distribution<int>(0, side - height)(generator);
    const int left = std::uniform_int_distribution<int>(0, side - width)(generator);
    for (int row = top; row < top + height; ++row) {
      for (int column = left; column < left + width; ++column) {
        out[row * side + column] = 0.0f;
      }
    }
  }

  if (options.noise_std <= 0.0) {
    return;  // std::normal_distribution needs a positive standard deviation
  }
  std::normal_distribution<float> noise(0.0f, static_cast<float>(options.noise_std));
  for (std::int64_t i = 0; i < image_size; ++i) {
    out[i] += noise(generator);
  }
}

}  // namespace simclr
