// The pybind11 side of the compiled core: one bind_* per core module, each in bindings_<module>.cpp,
// all called from module.cpp. Only bindings*.{hpp,cpp} and module.cpp include pybind11; every batch
// entry point validates its arguments, converts them to plain C++ types and releases the GIL before
// the work starts.
#pragma once

#include <pybind11/pybind11.h>

namespace grit::bindings {

namespace py = pybind11;

void bind_trace(py::module_& m);     // parse_traces
void bind_rewards(py::module_& m);   // score_rewards, pack_ids, bleu1, python_int
void bind_judge(py::module_& m);     // rule_scores
void bind_geometry(py::module_& m);  // box_iou, grounding_iou_batch

}  // namespace grit::bindings
