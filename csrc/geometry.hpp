// Box geometry for grounding evaluation: pairwise IoU and the exact IoU of two unions of boxes.
// Plain C++17, no Python. Boxes are (x1, y1, x2, y2) doubles, row-major, 4 per box.
#pragma once

#include <cstddef>
#include <vector>

namespace grit {

struct Box {
  double x1, y1, x2, y2;
};

// The box with its corners reordered so that x1 <= x2 and y1 <= y2; false when a coordinate is
// NaN or infinite (such a box is dropped by grounding_iou).
bool normalized_box(const double* coords, Box& out);

// IoU of two reordered boxes: |A ∩ B| / |A ∪ B|, 0 when the union has zero area.
double box_iou_pair(const Box& a, const Box& b);

// out[i * m + j] = IoU(a[i], b[j]) for finite boxes a (n, 4) and b (m, 4), corners reordered.
void box_iou(const double* a, std::size_t n, const double* b, std::size_t m, double* out);

// Areas of P ∩ G and P ∪ G, where P and G are unions of boxes, computed exactly (no rasterising) by a
// sweep over the compressed x coordinates: for each of the O(n) x-slabs the y-intervals of the boxes
// covering it are sorted and merged, so the cost is O(n^2 log n) for n = |P| + |G| boxes.
struct UnionAreas {
  double intersection = 0.0;
  double union_ = 0.0;
};
UnionAreas union_areas(const std::vector<Box>& pred, const std::vector<Box>& gt);

// IoU of the union of the predicted boxes with the union of the gt boxes (boxes with a non-finite
// coordinate dropped, corners reordered): 0.0 with no predicted box, NaN with no gt box, 0.0 when
// both unions have zero area. Here and in box_iou, when some |coordinate| exceeds 1e150 all boxes
// are first scaled by the same power of two (exact; IoU is scale invariant) so no area overflows.
double grounding_iou(const double* pred, std::size_t num_pred, const double* gt, std::size_t num_gt);

}  // namespace grit
