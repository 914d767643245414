// tapegrad-simclr-digits: trains a SimCLR encoder on the optdigits handwritten digits with
// tapegrad's NT-Xent and Adam, then measures what the encoder learned by k-nearest-neighbour
// classification against raw pixels and the untrained encoder.
//
// Exit status: 0 on success, 1 when the data cannot be loaded or an output cannot be written,
// 2 for an invalid command line.

#include <chrono>
#include <cstdint>
#include <cmath>
#include <cstdio>
#include <exception>
#include <filesystem>
#include <optional>
#include <string>
#include <string_view>

#include <CLI/CLI.hpp>
#include <fmt/core.h>
#include <nlohmann/json.hpp>
#include <tapegrad/tapegrad.hpp>

#include "simclr_data.hpp"
#include "simclr_eval.hpp"
#include "simclr_model.hpp"
#include "simclr_output.hpp"
#include "simclr_train.hpp"

namespace {

using namespace simclr;

constexpr int exit_usage = 2;
constexpr std::int64_t knn_k = 5;
// The recipe splits the 1797 images 1400 / 397; other data files keep the same fraction.
constexpr std::int64_t reference_train_count = 1400;
constexpr std::int64_t reference_image_count = 1797;

struct CommandLine {
  std::filesystem::path data;
  std::optional<std::filesystem::path> out;
  TrainOptions train;
};

// A command-line value outside its range: reported with the usage hint and exit status 2.
struct UsageError {
  std::string message;
};

void check_command_line(const CommandLine& command_line) {
  const TrainOptions& train = command_line.train;
  if (train.epochs < 0) {
    throw UsageError{fmt::format("--epochs must be >= 0, but got {}", train.epochs)};
  }
  if (train.batch < 1) {
    throw UsageError{fmt::format("--batch must be >= 1, but got {}", train.batch)};
  }
  if (!(train.lr > 0.0) || !std::isfinite(train.lr)) {
    throw UsageError{fmt::format("--lr must be positive and finite, but got {}", train.lr)};
  }
  if (!(train.temperature > 0.0) || !std::isfinite(train.temperature)) {
    throw UsageError{fmt::format("--temperature must be positive and finite, but got {}", train.temperature)};
  }
}

std::int64_t train_count_for(std::int64_t image_count) {
  return image_count * reference_train_count / reference_image_count;
}

// Loads and splits the data. The batch can be checked only here, against the train split's size.
DigitSplit load_split(const CommandLine& command_line) {
  const DigitSet digits = load_digits(command_line.data);
  const std::int64_t train_count = train_count_for(digits.count());
  if (train_count < knn_k || train_count >= digits.count()) {
    tapegrad::raise<tapegrad::ValueError>(
        "load_digits", fmt::format("the data must contain enough images for a train split of at least {}", knn_k),
        "{} images in {}", digits.count(), command_line.data.string());
  }
  if (command_line.train.batch > train_count) {
    throw UsageError{fmt::format("--batch must be at most {}, the train split's size, but got {}", train_count,
                                 command_line.train.batch)};
  }
  return split_digits(digits, train_count, command_line.train.seed);
}

Features pixel_features(const DigitSet& digits) { return {.values = digits.pixels, .dimension = image_size}; }

Features encoder_features(const Model& model, const DigitSet& digits, const ModelSizes& sizes) {
  return {.values = encode_images(model, digits.pixels.data(), digits.count()), .dimension = sizes.embedding};
}

// Test accuracy of k-NN on features from `extract`, fit on the train split.
template <class Extract>
double knn_with(const DigitSplit& split, const DigitSet& test, Extract&& extract) {
  return knn_accuracy(extract(split.train), split.train.labels, extract(test), test.labels, knn_k);
}

void print_epoch(const EpochReport& report) {
  std::fprintf(stderr, "epoch %3lld/%lld  loss %.4f  %7.1f steps/s  about %.1f s left\n",
               static_cast<long long>(report.epoch), static_cast<long long>(report.epochs), report.mean_loss,
               report.steps_per_second, report.seconds_left);
}

nlohmann::json hyperparameters_json(const CommandLine& command_line, const DigitSplit& split, const ModelSizes& sizes) {
  const TrainOptions& train = command_line.train;
  const AugmentOptions& augment = train.augment;
  const tapegrad::AdamOptions adam{.lr = train.lr};
  return {
      {"epochs", train.epochs},
      {"batch", train.batch},
      {"steps_per_epoch", split.train.count() / train.batch},
      {"temperature", train.temperature},
      {"optimizer", {{"name", "adam"}, {"lr", adam.lr}, {"beta1", adam.beta1}, {"beta2", adam.beta2},
                     {"eps", adam.eps}, {"weight_decay", adam.weight_decay}}},
      {"model", {{"input", sizes.input}, {"hidden", sizes.hidden}, {"embedding", sizes.embedding},
                 {"projection", sizes.projection}, {"dtype", "f32"}}},
      {"augmentation", {{"max_shift", augment.max_shift}, {"scale_low", augment.scale_low},
                        {"scale_high", augment.scale_high}, {"erase_probability", augment.erase_probability},
                        {"erase_min", augment.erase_min}, {"erase_max", augment.erase_max},
                        {"noise_std", augment.noise_std}}},
      {"train_images", split.train.count()},
      {"test_images", split.test.count()},
      {"knn_k", knn_k},
  };
}

nlohmann::json epoch_loss_json(const std::vector<double>& epoch_losses, bool first) {
  if (epoch_losses.empty()) {
    return nullptr;
  }
  return first ? epoch_losses.front() : epoch_losses.back();
}

void print_accuracies(std::string_view test_set, const Accuracies& accuracies) {
  fmt::print("{:<24}{:>11.1f}%{:>11.1f}%{:>11.1f}%\n", test_set, 100.0 * accuracies.raw_pixels,
             100.0 * accuracies.random_init, 100.0 * accuracies.trained);
}

void print_results(const TrainResult& result, const Accuracies& clean, const Accuracies& shifted) {
  if (!result.epoch_losses.empty()) {
    fmt::print("loss: first epoch {:.4f}, last epoch {:.4f}\n", result.epoch_losses.front(),
               result.epoch_losses.back());
  }
  fmt::print("{:<24}{:>12}{:>12}{:>12}\n", "5-NN test accuracy", "raw pixels", "random init", "trained");
  print_accuracies("clean", clean);
  print_accuracies("shifted by one pixel", shifted);
}

int run(const CommandLine& command_line) {
  const auto start = std::chrono::steady_clock::now();
  const DigitSplit split = load_split(command_line);
  const DigitSet shifted_test = shift_digits(split.test, command_line.train.seed);
  const ModelSizes sizes;
  Model model = init_model(sizes, command_line.train.seed);

  const auto pixels = [](const DigitSet& digits) { return pixel_features(digits); };
  const auto encoder = [&](const DigitSet& digits) { return encoder_features(model, digits, sizes); };
  Accuracies clean{.raw_pixels = knn_with(split, split.test, pixels), .random_init = knn_with(split, split.test, encoder)};
  Accuracies shifted{.raw_pixels = knn_with(split, shifted_test, pixels),
                     .random_init = knn_with(split, shifted_test, encoder)};

  const TrainResult result = train(model, split.train, command_line.train, print_epoch);
  clean.trained = knn_with(split, split.test, encoder);
  shifted.trained = knn_with(split, shifted_test, encoder);

  const nlohmann::json summary = {
      {"seed", command_line.train.seed},
      {"data", command_line.data.string()},
      {"hyperparameters", hyperparameters_json(command_line, split, sizes)},
      {"loss", {{"first_epoch", epoch_loss_json(result.epoch_losses, true)},
                {"last_epoch", epoch_loss_json(result.epoch_losses, false)},
                {"per_epoch", result.epoch_losses}}},
      {"knn_accuracy", accuracies_to_json(clean)},
      {"knn_accuracy_shifted", accuracies_to_json(shifted)},
      {"seconds", std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count()},
  };
  print_results(result, clean, shifted);
  if (command_line.out) {
    const std::filesystem::path& out = *command_line.out;
    write_text_file(out / "summary.json", summary.dump(2) + "\n");
    write_text_file(out / "loss.svg", render_loss_svg(result.step_losses, "SimCLR on optdigits: NT-Xent loss per step"));
    write_text_file(out / "step.dot", result.step_dot);
    fmt::print("wrote summary.json, loss.svg and step.dot to {}\n", out.string());
  }
  return 0;
}

void add_options(CLI::App& app, CommandLine& command_line, std::string& data, std::string& out) {
  app.add_option("--data", data, "CSV of 8x8 digits: 64 pixels in 0..16, then the label 0..9, per line")
      ->capture_default_str();
  app.add_option("--out", out, "folder for summary.json, loss.svg and step.dot (created if missing); "
                               "without it nothing is written");
  app.add_option("--epochs", command_line.train.epochs, "passes over the train split, >= 0")->capture_default_str();
  app.add_option("--seed", command_line.train.seed, "seed of the split, initialization, augmentation and shifts")
      ->capture_default_str();
  app.add_option("--temperature", command_line.train.temperature, "NT-Xent temperature, > 0")->capture_default_str();
  app.add_option("--batch", command_line.train.batch, "image pairs per step, in 1..train split size")
      ->capture_default_str();
  app.add_option("--lr", command_line.train.lr, "Adam learning rate, > 0")->capture_default_str();
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"Trains a SimCLR encoder on 8x8 handwritten digits with tapegrad and evaluates it by 5-NN."};
  CommandLine command_line;
  std::string data = default_data_path().string();
  std::string out;
  add_options(app, command_line, data, out);
  try {
    app.parse(argc, argv);
    command_line.data = data;
    if (!out.empty()) {
      command_line.out = out;
    }
    check_command_line(command_line);
    return run(command_line);
  } catch (const CLI::CallForHelp& help) {
    return app.exit(help);
  } catch (const CLI::ParseError& error) {
    app.exit(error);
    return exit_usage;
  } catch (const UsageError& error) {
    fmt::print(stderr, "tapegrad-simclr-digits: {}\nRun with --help for the options.\n", error.message);
    return exit_usage;
  } catch (const std::exception& error) {
    fmt::print(stderr, "tapegrad-simclr-digits: {}\n", error.what());
    return 1;
  }
}
