#include "geometry.hpp"

#include <algorithm>
#include <cmath>
#include <limits>
#include <utility>

namespace grit {

bool normalized_box(const double* c, Box& out) {
  for (int k = 0; k < 4; ++k)
    if (!std::isfinite(c[k])) return false;
  out.x1 = std::min(c[0], c[2]);
  out.x2 = std::max(c[0], c[2]);
  out.y1 = std::min(c[1], c[3]);
  out.y2 = std::max(c[1], c[3]);
  return true;
}

namespace {

// Coordinates beyond this magnitude could overflow an area (or a side) to infinity.
constexpr double kLargeCoordinate = 1e150;

// The power of two that brings the largest |coordinate| to [0.5, 1) when it exceeds
// kLargeCoordinate, else 0. IoU is scale invariant and scaling by 2^-e is exact.
int rescale_exponent(double max_abs) {
  if (!(max_abs > kLargeCoordinate)) return 0;
  int e = 0;
  std::frexp(max_abs, &e);
  return e;
}

double max_abs(const Box& b) {
  return std::max(std::max(std::fabs(b.x1), std::fabs(b.y1)), std::max(std::fabs(b.x2), std::fabs(b.y2)));
}

Box scaled(const Box& b, int e) {
  return {std::ldexp(b.x1, -e), std::ldexp(b.y1, -e), std::ldexp(b.x2, -e), std::ldexp(b.y2, -e)};
}

}  // namespace

double box_iou_pair(const Box& a, const Box& b) {
  const double iw = std::max(0.0, std::min(a.x2, b.x2) - std::max(a.x1, b.x1));
  const double ih = std::max(0.0, std::min(a.y2, b.y2) - std::max(a.y1, b.y1));
  const double inter = iw * ih;
  const double area_a = (a.x2 - a.x1) * (a.y2 - a.y1);
  const double area_b = (b.x2 - b.x1) * (b.y2 - b.y1);
  const double uni = area_a + area_b - inter;
  return uni > 0.0 ? inter / uni : 0.0;
}

void box_iou(const double* a, std::size_t n, const double* b, std::size_t m, double* out) {
  std::vector<Box> as(n), bs(m);
  double largest = 0.0;
  for (std::size_t i = 0; i < n; ++i) {
    normalized_box(a + 4 * i, as[i]);
    largest = std::max(largest, max_abs(as[i]));
  }
  for (std::size_t j = 0; j < m; ++j) {
    normalized_box(b + 4 * j, bs[j]);
    largest = std::max(largest, max_abs(bs[j]));
  }
  if (const int e = rescale_exponent(largest)) {
    for (auto& box : as) box = scaled(box, e);
    for (auto& box : bs) box = scaled(box, e);
  }
  for (std::size_t i = 0; i < n; ++i)
    for (std::size_t j = 0; j < m; ++j) out[i * m + j] = box_iou_pair(as[i], bs[j]);
}

namespace {

using Interval = std::pair<double, double>;

// Sorts and merges intervals in place (touching ones join); returns their covered length.
double merge_intervals(std::vector<Interval>& v) {
  if (v.empty()) return 0.0;
  std::sort(v.begin(), v.end());
  std::size_t w = 0;
  for (std::size_t r = 1; r < v.size(); ++r) {
    if (v[r].first <= v[w].second) {
      v[w].second = std::max(v[w].second, v[r].second);
    } else {
      v[++w] = v[r];
    }
  }
  v.resize(w + 1);
  double length = 0.0;
  for (const auto& iv : v) length += iv.second - iv.first;
  return length;
}

// Length covered by both of two sorted, disjoint interval lists.
double overlap_length(const std::vector<Interval>& p, const std::vector<Interval>& g) {
  double length = 0.0;
  std::size_t i = 0, j = 0;
  while (i < p.size() && j < g.size()) {
    const double lo = std::max(p[i].first, g[j].first);
    const double hi = std::min(p[i].second, g[j].second);
    if (hi > lo) length += hi - lo;
    if (p[i].second < g[j].second) {
      ++i;
    } else {
      ++j;
    }
  }
  return length;
}

void covering(const std::vector<Box>& boxes, double left, double right, std::vector<Interval>& out) {
  out.clear();
  for (const auto& b : boxes)
    if (b.x1 <= left && b.x2 >= right && b.y2 > b.y1) out.emplace_back(b.y1, b.y2);
}

}  // namespace

UnionAreas union_areas(const std::vector<Box>& pred, const std::vector<Box>& gt) {
  std::vector<double> xs;
  xs.reserve(2 * (pred.size() + gt.size()));
  for (const auto* boxes : {&pred, &gt})
    for (const auto& b : *boxes) {
      xs.push_back(b.x1);
      xs.push_back(b.x2);
    }
  std::sort(xs.begin(), xs.end());
  xs.erase(std::unique(xs.begin(), xs.end()), xs.end());
  UnionAreas areas;
  std::vector<Interval> p, g;
  for (std::size_t s = 0; s + 1 < xs.size(); ++s) {
    const double width = xs[s + 1] - xs[s];
    covering(pred, xs[s], xs[s + 1], p);
    covering(gt, xs[s], xs[s + 1], g);
    const double len_p = merge_intervals(p);
    const double len_g = merge_intervals(g);
    const double len_both = overlap_length(p, g);
    areas.intersection += width * len_both;
    areas.union_ += width * (len_p + len_g - len_both);
  }
  return areas;
}

double grounding_iou(const double* pred, std::size_t num_pred, const double* gt, std::size_t num_gt) {
  std::vector<Box> p, g;
  Box b;
  for (std::size_t i = 0; i < num_gt; ++i)
    if (normalized_box(gt + 4 * i, b)) g.push_back(b);
  if (g.empty()) return std::numeric_limits<double>::quiet_NaN();
  for (std::size_t i = 0; i < num_pred; ++i)
    if (normalized_box(pred + 4 * i, b)) p.push_back(b);
  if (p.empty()) return 0.0;
  double largest = 0.0;
  for (const auto& box : p) largest = std::max(largest, max_abs(box));
  for (const auto& box : g) largest = std::max(largest, max_abs(box));
  if (const int e = rescale_exponent(largest)) {
    for (auto& box : p) box = scaled(box, e);
    for (auto& box : g) box = scaled(box, e);
  }
  const UnionAreas areas = union_areas(p, g);
  return areas.union_ > 0.0 ? areas.intersection / areas.union_ : 0.0;
}

}  // namespace grit
