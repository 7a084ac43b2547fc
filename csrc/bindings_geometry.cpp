// box_iou and grounding_iou_batch over float64 box arrays (geometry.hpp).
#include <pybind11/numpy.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "bindings.hpp"
#include "geometry.hpp"
#include "parallel.hpp"

namespace grit::bindings {
namespace {

using F64 = py::array_t<double>;
using I64 = py::array_t<std::int64_t>;

// A C-contiguous float64 (K, 4) array, or a ValueError/TypeError naming `name`.
F64 boxes_arg(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy float64 array of shape (K, 4)");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<double>()) || !(arr.flags() & py::array::c_style))
    throw py::type_error(std::string(name) + " must be a C-contiguous float64 array");
  if (arr.ndim() != 2 || arr.shape(1) != 4)
    throw py::value_error(std::string(name) + " must have shape (K, 4)");
  return py::reinterpret_borrow<F64>(obj);
}

I64 offsets_arg(const py::handle& obj, const char* name, std::size_t rows) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy int64 array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  if (!arr.dtype().is(py::dtype::of<std::int64_t>()) || arr.ndim() != 1 ||
      !(arr.flags() & py::array::c_style) || arr.shape(0) < 1)
    throw py::type_error(std::string(name) + " must be a non-empty C-contiguous 1-D int64 array");
  auto out = py::reinterpret_borrow<I64>(obj);
  const std::int64_t* o = out.data();
  const auto n = static_cast<std::size_t>(out.size());
  if (o[0] != 0 || o[n - 1] != static_cast<std::int64_t>(rows))
    throw py::value_error(std::string(name) + " must start at 0 and end at the number of boxes (" +
                          std::to_string(rows) + ")");
  for (std::size_t i = 0; i + 1 < n; ++i)
    if (o[i + 1] < o[i]) throw py::value_error(std::string(name) + " must be non-decreasing");
  return out;
}

F64 box_iou(const py::handle& a_obj, const py::handle& b_obj) {
  const F64 a = boxes_arg(a_obj, "a"), b = boxes_arg(b_obj, "b");
  for (const auto* arr : {&a, &b}) {
    const double* d = arr->data();
    for (py::ssize_t i = 0; i < arr->size(); ++i)
      if (!std::isfinite(d[i]))
        throw py::value_error(std::string(arr == &a ? "a" : "b") + " row " + std::to_string(i / 4) +
                              " has a non-finite coordinate");
  }
  const auto n = static_cast<std::size_t>(a.shape(0)), m = static_cast<std::size_t>(b.shape(0));
  F64 out({static_cast<py::ssize_t>(n), static_cast<py::ssize_t>(m)});
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    grit::box_iou(a.data(), n, b.data(), m, o);
  }
  return out;
}

F64 grounding_iou_batch(const py::handle& pred_obj, const py::handle& pred_off_obj,
                        const py::handle& gt_obj, const py::handle& gt_off_obj, int num_threads) {
  const F64 pred = boxes_arg(pred_obj, "pred_boxes"), gt = boxes_arg(gt_obj, "gt_boxes");
  const I64 po = offsets_arg(pred_off_obj, "pred_offsets", static_cast<std::size_t>(pred.shape(0)));
  const I64 go = offsets_arg(gt_off_obj, "gt_offsets", static_cast<std::size_t>(gt.shape(0)));
  if (po.size() != go.size())
    throw py::value_error("pred_offsets and gt_offsets describe " + std::to_string(po.size() - 1) +
                          " and " + std::to_string(go.size() - 1) + " samples; expected equal");
  const auto n = static_cast<std::size_t>(po.size() - 1);
  F64 out(static_cast<py::ssize_t>(n));
  double* o = out.mutable_data();
  const double* p = pred.data();
  const double* g = gt.data();
  const std::int64_t* pof = po.data();
  const std::int64_t* gof = go.data();
  {
    py::gil_scoped_release release;
    grit::parallel_for(n, num_threads, [&](std::size_t i) {
      o[i] = grit::grounding_iou(p + 4 * pof[i], static_cast<std::size_t>(pof[i + 1] - pof[i]),
                                 g + 4 * gof[i], static_cast<std::size_t>(gof[i + 1] - gof[i]));
    });
  }
  return out;
}

}  // namespace

void bind_geometry(py::module_& m) {
  m.def("box_iou", &box_iou, py::arg("a"), py::arg("b"),
        "Pairwise IoU of finite float64 boxes a (N, 4) and b (M, 4) -> (N, M), corners reordered.");
  m.def("grounding_iou_batch", &grounding_iou_batch, py::arg("pred_boxes"), py::arg("pred_offsets"),
        py::arg("gt_boxes"), py::arg("gt_offsets"), py::arg("num_threads") = 0,
        "Per sample i, IoU of the union of pred_boxes[pred_offsets[i]:pred_offsets[i+1]] with the "
        "union of its gt boxes, exact areas (GIL released) -> float64 (N,).");
}

}  // namespace grit::bindings
