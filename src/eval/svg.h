// Minimal SVG writers (no plotting library): a heatmap grid and a multi-series line plot. Output is plain,
// well-formed XML with all text escaped.
#pragma once
#include <string>
#include <vector>

namespace shadowkv::eval {

std::string xml_escape(const std::string& s);

// values[r][c] in [vmin, vmax] (NaN = no data, drawn grey); colour runs red (vmin) -> yellow -> green (vmax).
std::string svg_heatmap(const std::string& title, const std::string& x_label, const std::string& y_label,
                        const std::vector<std::string>& cols, const std::vector<std::string>& rows,
                        const std::vector<std::vector<double>>& values, double vmin, double vmax);

struct Series {
  std::string name;
  std::vector<double> x, y;
};

// Lines with point markers and a legend; log2_x spaces x by powers of two (context lengths).
std::string svg_line_plot(const std::string& title, const std::string& x_label, const std::string& y_label,
                          const std::vector<Series>& series, bool log2_x);

}  // namespace shadowkv::eval
