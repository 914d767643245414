#pragma once
// The SimCLR training loop: two augmented views per image, NT-Xent on their projections, Adam.

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "simclr_augment.hpp"
#include "simclr_data.hpp"
#include "simclr_model.hpp"

namespace simclr {

struct TrainOptions {
  std::int64_t epochs = 30;
  std::int64_t batch = 256;  // image pairs per step
  double lr = 3e-3;
  double temperature = 0.2;
  std::uint64_t seed = 0;
  AugmentOptions augment{};
};

struct EpochReport {
  std::int64_t epoch;       // counting from 1
  std::int64_t epochs;
  double mean_loss;         // mean of the epoch's step losses
  double steps_per_second;  // over the epoch
  double seconds_left;      // estimate: the epochs left times the mean epoch time so far
};

struct TrainResult {
  std::vector<double> step_losses;
  std::vector<double> epoch_losses;  // mean step loss per epoch
  std::string step_dot;              // the tape of the last step, after backward, as Graphviz DOT
};

// Trains model in place on train.count() / batch steps per epoch (the last partial batch is
// dropped; the order is reshuffled every epoch). Each step records the parameters as leaves on one
// tape that is cleared between steps, so its buffers are reused. report is called after each epoch.
// Raises tapegrad::ValueError when batch is not in [1, train.count()] or epochs is negative.
TrainResult train(Model& model, const DigitSet& train, const TrainOptions& options,
                  const std::function<void(const EpochReport&)>& report);

}  // namespace simclr
