#include "simclr_output.hpp"

#include <algorithm>
#include <cmath>
#include <fstream>
#include <stdexcept>

#include <fmt/format.h>

namespace simclr {
namespace {

// Chart geometry in SVG user units.
constexpr double chart_width = 720.0;
constexpr double chart_height = 420.0;
constexpr double margin_left = 70.0;
constexpr double margin_right = 20.0;
constexpr double margin_top = 50.0;
constexpr double margin_bottom = 60.0;
constexpr double plot_width = chart_width - margin_left - margin_right;
constexpr double plot_height = chart_height - margin_top - margin_bottom;

// A tick spacing of 1, 2 or 5 times a power of ten that gives about `target` ticks over span.
double nice_step(double span, int target) {
  const double raw = span / target;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  for (double factor : {1.0, 2.0, 5.0}) {
    if (raw <= factor * power) {
      return factor * power;
    }
  }
  return 10.0 * power;
}

std::string escape_xml(std::string_view text) {
  std::string escaped;
  for (char c : text) {
    switch (c) {
      case '&': escaped += "&amp;"; break;
      case '<': escaped += "&lt;"; break;
      case '>': escaped += "&gt;"; break;
      case '"': escaped += "&quot;"; break;
      default: escaped.push_back(c);
    }
  }
  return escaped;
}

struct Range {
  double low;
  double high;
};

// The y range: the range of the finite losses widened to whole tick steps, never empty.
Range loss_range(const std::vector<double>& losses) {
  double low = INFINITY;
  double high = -INFINITY;
  for (double loss : losses) {
    if (std::isfinite(loss)) {
      low = std::min(low, loss);
      high = std::max(high, loss);
    }
  }
  if (!(low <= high)) {
    return {0.0, 1.0};
  }
  const double step = nice_step(std::max(high - low, 1e-6), 5);
  return {std::floor(low / step) * step, std::ceil(high / step) * step};
}

void append_axes(std::string& svg, const Range& y, double x_max) {
  const double bottom = margin_top + plot_height;
  fmt::format_to(std::back_inserter(svg),
                 "<rect x=\"{}\" y=\"{}\" width=\"{}\" height=\"{}\" fill=\"none\" stroke=\"#444\"/>\n", margin_left,
                 margin_top, plot_width, plot_height);
  const double y_step = nice_step(y.high - y.low, 5);
  for (double value = y.low; value <= y.high + y_step * 1e-6; value += y_step) {
    const double py = bottom - (value - y.low) / (y.high - y.low) * plot_height;
    fmt::format_to(std::back_inserter(svg),
                   "<line x1=\"{0}\" y1=\"{1:.2f}\" x2=\"{2}\" y2=\"{1:.2f}\" stroke=\"#ddd\"/>\n"
                   "<text x=\"{3}\" y=\"{4:.2f}\" text-anchor=\"end\">{5:g}</text>\n",
                   margin_left, py, margin_left + plot_width, margin_left - 6, py + 4, value);
  }
  const double x_step = nice_step(std::max(x_max, 1.0), 6);
  for (double value = 0.0; value <= x_max + x_step * 1e-6; value += x_step) {
    const double px = margin_left + value / std::max(x_max, 1.0) * plot_width;
    fmt::format_to(std::back_inserter(svg),
                   "<line x1=\"{0:.2f}\" y1=\"{1}\" x2=\"{0:.2f}\" y2=\"{2}\" stroke=\"#444\"/>\n"
                   "<text x=\"{0:.2f}\" y=\"{3}\" text-anchor=\"middle\">{4:g}</text>\n",
                   px, bottom, bottom + 5, bottom + 20, value);
  }
}

void append_titles(std::string& svg, std::string_view title) {
  fmt::format_to(std::back_inserter(svg),
                 "<text x=\"{}\" y=\"28\" text-anchor=\"middle\" font-size=\"16\">{}</text>\n"
                 "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">training step</text>\n"
                 "<text transform=\"translate(18 {}) rotate(-90)\" text-anchor=\"middle\">"
                 "NT-Xent loss (mean over the 2N anchors)</text>\n",
                 chart_width / 2, escape_xml(title), margin_left + plot_width / 2, chart_height - 15,
                 margin_top + plot_height / 2);
}

// Draws the finite losses as one polyline. A NaN or infinite loss has no place on the chart, so
// it is left out and a note under the title counts how many were.
void append_line(std::string& svg, const std::vector<double>& losses, const Range& y) {
  const auto x_max = static_cast<double>(losses.size());
  std::size_t skipped = 0;
  svg += "<polyline fill=\"none\" stroke=\"#1f77b4\" stroke-width=\"1.5\" points=\"";
  for (std::size_t i = 0; i < losses.size(); ++i) {
    if (!std::isfinite(losses[i])) {
      ++skipped;
      continue;
    }
    const double px = margin_left + static_cast<double>(i + 1) / x_max * plot_width;
    const double py = margin_top + plot_height - (losses[i] - y.low) / (y.high - y.low) * plot_height;
    fmt::format_to(std::back_inserter(svg), "{}{:.2f},{:.2f}", i == skipped ? "" : " ", px, py);
  }
  svg += "\"/>\n";
  if (skipped > 0) {
    fmt::format_to(std::back_inserter(svg),
                   "<text x=\"{}\" y=\"44\" text-anchor=\"middle\" fill=\"#b00\">{} non-finite losses not plotted</text>\n",
                   chart_width / 2, skipped);
  }
}

}  // namespace

std::string render_loss_svg(const std::vector<double>& step_losses, std::string_view title) {
  std::string svg = fmt::format(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{0}\" height=\"{1}\" viewBox=\"0 0 {0} {1}\" "
      "font-family=\"Helvetica, Arial, sans-serif\" font-size=\"12\">\n"
      "<rect width=\"{0}\" height=\"{1}\" fill=\"white\"/>\n",
      chart_width, chart_height);
  const Range y = loss_range(step_losses);
  // Steps are numbered from 1, so the x axis runs from 0 to the step count.
  const auto x_max = static_cast<double>(step_losses.size());
  append_axes(svg, y, x_max);
  append_titles(svg, title);
  if (step_losses.empty()) {
    fmt::format_to(std::back_inserter(svg), "<text x=\"{}\" y=\"{}\" text-anchor=\"middle\">no steps to plot</text>\n",
                   margin_left + plot_width / 2, margin_top + plot_height / 2);
  } else {
    append_line(svg, step_losses, y);
  }
  svg += "</svg>\n";
  return svg;
}

void write_text_file(const std::filesystem::path& path, std::string_view text) {
  if (path.has_parent_path()) {
    std::filesystem::create_directories(path.parent_path());
  }
  std::ofstream file(path, std::ios::binary);
  file.write(text.data(), static_cast<std::streamsize>(text.size()));
  file.close();
  if (!file) {
    throw std::runtime_error(fmt::format("writing {} failed: check that the folder is writable", path.string()));
  }
}

nlohmann::json accuracies_to_json(const Accuracies& accuracies) {
  return {{"raw_pixels", accuracies.raw_pixels}, {"random_init", accuracies.random_init}, {"trained", accuracies.trained}};
}

}  // namespace simclr
