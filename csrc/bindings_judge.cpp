// rule_scores: RuleJudge's scores of answer/prediction pairs (rule_judge.hpp).
#include <pybind11/numpy.h>

#include <string>

#include "bindings.hpp"
#include "bindings_utf8.hpp"
#include "parallel.hpp"
#include "rule_judge.hpp"

namespace grit::bindings {
namespace {

py::array_t<double> rule_scores(const py::handle& answers, const py::handle& predictions,
                                int num_threads) {
  const Utf8Batch gts(answers, "answers", 0);
  const Utf8Batch preds(predictions, "predictions", 1);
  const std::size_t n = gts.views.size();
  if (preds.views.size() != n)
    throw py::value_error(std::to_string(n) + " answers and " +
                          std::to_string(preds.views.size()) +
                          " predictions; expected equal lengths");
  py::array_t<double> out(static_cast<py::ssize_t>(n));
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    parallel_for(n, num_threads,
                 [&](std::size_t i) { o[i] = rule_score(gts.views[i], preds.views[i]); });
  }
  return out;
}

}  // namespace

void bind_judge(py::module_& m) {
  m.def("rule_scores", &rule_scores, py::arg("answers"), py::arg("predictions"),
        py::arg("num_threads") = 0,
        "RuleJudge's scores (float64 (N,)) of N answer/prediction pairs (GIL released).");
}

}  // namespace grit::bindings
