#pragma once
// Random augmentations of 8×8 digit images, the two "views" SimCLR contrasts.

#include <random>

namespace simclr {

struct AugmentOptions {
  int max_shift = 1;             // dx and dy are drawn uniformly from {−max_shift, …, max_shift}
  double scale_low = 0.8;        // pixel values are multiplied by a factor uniform in
  double scale_high = 1.2;       //   [scale_low, scale_high)
  double erase_probability = 0.5;  // chance of zeroing one rectangular patch
  int erase_min = 2;             // patch height and width, each drawn uniformly from
  int erase_max = 3;             //   {erase_min, …, erase_max}
  double noise_std = 0.1;        // standard deviation of the Gaussian noise added to every pixel
};

// Writes into out the image in moved by dx columns right and dy rows down. Pixels moved in from
// outside the image are 0. in and out are 8×8, row-major, and must not overlap.
void shift_image(const float* in, float* out, int dx, int dy);

// Writes one random view of in into out, applying in order: a shift with zero fill, an intensity
// scale, with probability erase_probability a zeroed patch placed uniformly inside the image,
// and Gaussian noise (values are not clipped). Draws every random number from generator, so a
// seeded generator gives the same views on every run with the same standard library.
void augment_image(const float* in, float* out, std::mt19937_64& generator, const AugmentOptions& options);

}  // namespace simclr
