#pragma once
// Files the demo writes: summary.json, loss.svg and step.dot.

#include <filesystem>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

namespace simclr {

// k-NN test accuracies of the three feature extractors, fractions in [0, 1].
struct Accuracies {
  double raw_pixels = 0.0;
  double random_init = 0.0;
  double trained = 0.0;
};

// Renders the per-step losses as a standalone SVG line chart with a title, axes, tick labels and
// axis titles. An empty series gives the axes and a note that there is nothing to plot.
std::string render_loss_svg(const std::vector<double>& step_losses, std::string_view title);

// Writes text to path, creating missing parent folders. Raises std::runtime_error naming the path
// when the file cannot be written.
void write_text_file(const std::filesystem::path& path, std::string_view text);

nlohmann::json accuracies_to_json(const Accuracies& accuracies);

}  // namespace simclr
