#include "eval/svg.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace shadowkv::eval {
namespace {

std::string num(double v) {
  char b[32];
  std::snprintf(b, sizeof b, "%.1f", v);
  return b;
}

std::string fmt_value(double v) {
  char b[32];
  if (std::fabs(v) >= 100 || v == std::floor(v))
    std::snprintf(b, sizeof b, "%.0f", v);
  else
    std::snprintf(b, sizeof b, "%.2g", v);
  return b;
}

std::string text(double x, double y, const std::string& s, const char* anchor = "middle", int size = 12,
                 const std::string& extra = "") {
  return "<text x=\"" + num(x) + "\" y=\"" + num(y) + "\" font-size=\"" + std::to_string(size) + "\" text-anchor=\"" +
         anchor + "\"" + extra + ">" + xml_escape(s) + "</text>\n";
}

std::string colour(double t) {  // t in [0,1]: red -> yellow -> green
  t = std::clamp(t, 0.0, 1.0);
  int r, g;
  if (t < 0.5) {
    r = 215;
    g = (int)(48 + (215 - 48) * (t / 0.5));
  } else {
    r = (int)(215 - (215 - 26) * ((t - 0.5) / 0.5));
    g = (int)(215 - (215 - 150) * ((t - 0.5) / 0.5));
  }
  char b[16];
  std::snprintf(b, sizeof b, "#%02x%02x%02x", r, g, 60);
  return b;
}

const char* kPalette[] = {"#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd",
                          "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"};

}  // namespace

std::string xml_escape(const std::string& s) {
  std::string o;
  for (char c : s) {
    switch (c) {
      case '&':
        o += "&amp;";
        break;
      case '<':
        o += "&lt;";
        break;
      case '>':
        o += "&gt;";
        break;
      case '"':
        o += "&quot;";
        break;
      case '\'':
        o += "&apos;";
        break;
      default:
        if (static_cast<unsigned char>(c) >= 0x20 || c == '\n' || c == '\t') o.push_back(c);  // XML 1.0 chars
    }
  }
  return o;
}

std::string svg_heatmap(const std::string& title, const std::string& x_label, const std::string& y_label,
                        const std::vector<std::string>& cols, const std::vector<std::string>& rows,
                        const std::vector<std::vector<double>>& values, double vmin, double vmax) {
  const double cw = 64, ch = 28, left = 90, top = 50;
  const double w = left + cw * cols.size() + 110, h = top + ch * rows.size() + 60;
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  num(w) + "\" height=\"" + num(h) + "\" font-family=\"sans-serif\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += text(w / 2, 24, title, "middle", 15);
  for (size_t r = 0; r < rows.size(); ++r) {
    for (size_t c = 0; c < cols.size(); ++c) {
      const double v = r < values.size() && c < values[r].size() ? values[r][c] : NAN;
      const double x = left + c * cw, y = top + r * ch;
      const bool have = !std::isnan(v);
      s += "<rect x=\"" + num(x) + "\" y=\"" + num(y) + "\" width=\"" + num(cw - 1) + "\" height=\"" + num(ch - 1) +
           "\" fill=\"" + (have ? colour((v - vmin) / (vmax - vmin)) : std::string("#dddddd")) + "\"/>\n";
      s += text(x + cw / 2, y + ch / 2 + 4, have ? fmt_value(v) : "-", "middle", 11);
    }
    s += text(left - 6, top + r * ch + ch / 2 + 4, rows[r], "end", 11);
  }
  for (size_t c = 0; c < cols.size(); ++c) s += text(left + c * cw + cw / 2, top + rows.size() * ch + 16, cols[c]);
  s += text(left + cw * cols.size() / 2, top + rows.size() * ch + 40, x_label);
  s += text(18, top + ch * rows.size() / 2, y_label, "middle", 12,
            " transform=\"rotate(-90 18 " + num(top + ch * rows.size() / 2) + ")\"");
  // Colour scale.
  const double lx = left + cw * cols.size() + 30;
  for (int i = 0; i < 10; ++i)
    s += "<rect x=\"" + num(lx) + "\" y=\"" + num(top + (9 - i) * 14) + "\" width=\"18\" height=\"14\" fill=\"" +
         colour(i / 9.0) + "\"/>\n";
  s += text(lx + 24, top + 10, fmt_value(vmax), "start", 10);
  s += text(lx + 24, top + 140, fmt_value(vmin), "start", 10);
  s += "</svg>\n";
  return s;
}

std::string svg_line_plot(const std::string& title, const std::string& x_label, const std::string& y_label,
                          const std::vector<Series>& series, bool log2_x) {
  const double W = 720, H = 440, L = 70, R = 200, T = 40, B = 60;
  double x0 = INFINITY, x1 = -INFINITY, y1 = 0;
  auto fx = [&](double x) { return log2_x ? std::log2(std::max(x, 1e-9)) : x; };
  for (const Series& sr : series)
    for (size_t i = 0; i < sr.x.size() && i < sr.y.size(); ++i) {
      if (!std::isfinite(sr.y[i])) continue;
      x0 = std::min(x0, fx(sr.x[i]));
      x1 = std::max(x1, fx(sr.x[i]));
      y1 = std::max(y1, sr.y[i]);
    }
  if (!std::isfinite(x0)) x0 = 0, x1 = 1;
  if (x1 <= x0) x1 = x0 + 1;
  if (y1 <= 0) y1 = 1;
  y1 *= 1.1;
  auto px = [&](double x) { return L + (fx(x) - x0) / (x1 - x0) * (W - L - R); };
  auto py = [&](double y) { return H - B - y / y1 * (H - T - B); };
  std::string s = "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" +
                  num(W) + "\" height=\"" + num(H) + "\" font-family=\"sans-serif\">\n";
  s += "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
  s += text(W / 2, 24, title, "middle", 15);
  s += "<line x1=\"" + num(L) + "\" y1=\"" + num(H - B) + "\" x2=\"" + num(W - R) + "\" y2=\"" + num(H - B) +
       "\" stroke=\"black\"/>\n<line x1=\"" + num(L) + "\" y1=\"" + num(T) + "\" x2=\"" + num(L) + "\" y2=\"" +
       num(H - B) + "\" stroke=\"black\"/>\n";
  for (int i = 0; i <= 5; ++i) {  // y ticks
    const double v = y1 * i / 5;
    s += "<line x1=\"" + num(L - 4) + "\" y1=\"" + num(py(v)) + "\" x2=\"" + num(W - R) + "\" y2=\"" + num(py(v)) +
         "\" stroke=\"#eeeeee\"/>\n";
    s += text(L - 8, py(v) + 4, fmt_value(v), "end", 10);
  }
  std::vector<double> xt;  // x ticks at the data's x values
  for (const Series& sr : series) xt.insert(xt.end(), sr.x.begin(), sr.x.end());
  std::sort(xt.begin(), xt.end());
  xt.erase(std::unique(xt.begin(), xt.end()), xt.end());
  for (double v : xt) s += text(px(v), H - B + 16, fmt_value(v), "middle", 10);
  s += text((L + W - R) / 2, H - 18, x_label);
  s += text(16, (T + H - B) / 2, y_label, "middle", 12, " transform=\"rotate(-90 16 " + num((T + H - B) / 2) + ")\"");
  for (size_t k = 0; k < series.size(); ++k) {
    const Series& sr = series[k];
    const std::string col = kPalette[k % 10];
    std::string pts;
    for (size_t i = 0; i < sr.x.size() && i < sr.y.size(); ++i) {
      if (!std::isfinite(sr.y[i])) continue;
      pts += num(px(sr.x[i])) + "," + num(py(sr.y[i])) + " ";
      s += "<circle cx=\"" + num(px(sr.x[i])) + "\" cy=\"" + num(py(sr.y[i])) + "\" r=\"3\" fill=\"" + col + "\"/>\n";
    }
    if (!pts.empty())
      s += "<polyline fill=\"none\" stroke=\"" + col + "\" stroke-width=\"2\" points=\"" + pts + "\"/>\n";
    const double ly = T + 10 + k * 18;
    s += "<line x1=\"" + num(W - R + 15) + "\" y1=\"" + num(ly) + "\" x2=\"" + num(W - R + 35) + "\" y2=\"" + num(ly) +
         "\" stroke=\"" + col + "\" stroke-width=\"2\"/>\n";
    s += text(W - R + 40, ly + 4, sr.name, "start", 11);
  }
  s += "</svg>\n";
  return s;
}

}  // namespace shadowkv::eval
