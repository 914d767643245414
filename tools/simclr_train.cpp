#include "simclr_train.hpp"

#include <algorithm>
#include <chrono>
#include <numeric>
#include <random>

namespace simclr {
namespace {

using Clock = std::chrono::steady_clock;

// Fills views, shape [2B, 64], with a first view of each batch image in rows 0..B−1 and a second
// view in rows B..2B−1: the concatenated layout, where row a's positive is row (a + B) mod 2B.
void fill_views(tg::Tensor& views, const DigitSet& train, std::span<const std::int64_t> batch,
                std::mt19937_64& generator, const AugmentOptions& options) {
  float* rows = views.data<float>();
  const auto batch_size = static_cast<std::int64_t>(batch.size());
  for (std::int64_t i = 0; i < batch_size; ++i) {
    const float* image = train.image(batch[static_cast<std::size_t>(i)]);
    augment_image(image, rows + i * image_size, generator, options);
    augment_image(image, rows + (batch_size + i) * image_size, generator, options);
  }
}

std::string export_step(const tg::Tape& tape, const ModelVars& vars, std::int64_t views_index) {
  tg::DotOptions options{.title = "Tape of one SimCLR training step (last step, after backward)", .node_names = {}};
  const tg::Var leaves[] = {vars.w1, vars.b1, vars.w2, vars.b2, vars.w3, vars.b3};
  for (std::size_t i = 0; i < std::size(leaves); ++i) {
    options.node_names[leaves[i].index()] = parameter_names[i];
  }
  options.node_names[views_index] = "two views";
  return tg::to_dot(tape, options);
}

void check_options(const TrainOptions& options, const DigitSet& train) {
  if (options.epochs < 0) {
    tg::raise<tg::ValueError>("train", "epochs must be >= 0", "epochs {}", options.epochs);
  }
  if (options.batch < 1 || options.batch > train.count()) {
    tg::raise<tg::ValueError>("train", fmt::format("the batch must be in [1, {}], the train split's size", train.count()),
                              "batch {}", options.batch);
  }
}

}  // namespace

TrainResult train(Model& model, const DigitSet& train, const TrainOptions& options,
                  const std::function<void(const EpochReport&)>& report) {
  check_options(options, train);
  tg::Adam adam(model.parameters(), {.lr = options.lr});
  const tg::NtXentOptions loss_options{.temperature = options.temperature,
                                       .layout = tg::Layout::concatenated,
                                       .reduction = tg::Reduction::mean};
  // The split permutation comes from a generator seeded with the seed itself. This stream's seed
  // is offset by a constant, so the two streams do not start with the same numbers.
  std::mt19937_64 generator(options.seed ^ 0x7261696E'00000000ULL);
  std::vector<std::int64_t> order(static_cast<std::size_t>(train.count()));
  std::iota(order.begin(), order.end(), std::int64_t{0});
  const std::int64_t steps_per_epoch = train.count() / options.batch;

  TrainResult result;
  tg::Tape tape;
  const Clock::time_point start = Clock::now();
  for (std::int64_t epoch = 1; epoch <= options.epochs; ++epoch) {
    const Clock::time_point epoch_start = Clock::now();
    std::shuffle(order.begin(), order.end(), generator);
    double loss_sum = 0.0;
    for (std::int64_t step = 0; step < steps_per_epoch; ++step) {
      tape.clear();
      tg::Tensor views = tape.allocate({2 * options.batch, image_size}, tg::Dtype::f32);
      const std::span<const std::int64_t> batch(order.data() + step * options.batch,
                                                static_cast<std::size_t>(options.batch));
      fill_views(views, train, batch, generator, options.augment);

      const ModelVars vars = record_leaves(tape, model);
      const tg::Var x = tape.constant(views);
      const tg::Var loss = tg::nt_xent(project(encode(x, vars), vars), loss_options);
      tape.backward(loss);
      adam.step({vars.w1.grad(), vars.b1.grad(), vars.w2.grad(), vars.b2.grad(), vars.w3.grad(), vars.b3.grad()});

      const double value = loss.value().item();
      result.step_losses.push_back(value);
      loss_sum += value;
      if (epoch == options.epochs && step == steps_per_epoch - 1) {
        result.step_dot = export_step(tape, vars, x.index());
      }
    }
    const double epoch_seconds = std::chrono::duration<double>(Clock::now() - epoch_start).count();
    const double total_seconds = std::chrono::duration<double>(Clock::now() - start).count();
    const double mean_loss = steps_per_epoch > 0 ? loss_sum / static_cast<double>(steps_per_epoch) : 0.0;
    result.epoch_losses.push_back(mean_loss);
    report({.epoch = epoch,
            .epochs = options.epochs,
            .mean_loss = mean_loss,
            .steps_per_second = static_cast<double>(steps_per_epoch) / std::max(epoch_seconds, 1e-9),
            .seconds_left = total_seconds / static_cast<double>(epoch) * static_cast<double>(options.epochs - epoch)});
  }
  tape.clear();
  return result;
}

}  // namespace simclr
