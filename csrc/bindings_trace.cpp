// parse_traces: a list of completions -> sections, tags, boxes and labels (trace.hpp).
#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <utility>
#include <vector>

#include "bindings.hpp"
#include "bindings_utf8.hpp"
#include "parallel.hpp"
#include "trace.hpp"

namespace grit::bindings {
namespace {

using I64Array = py::array_t<std::int64_t>;
using F64Array = py::array_t<double>;

// text[span] as a str, or None when the span is absent.
py::object substring(const py::handle& text, const CharSpan& span) {
  if (span.begin < 0) return py::none();
  PyObject* piece = PyUnicode_Substring(text.ptr(), span.begin, span.end);
  if (piece == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(piece);
}

// The boxes of every trace in flat arrays: coords (K, 4), spans (K, 2), offsets (N + 1,).
py::tuple flat_boxes(const std::vector<ParsedTrace>& parsed,
                     std::vector<ParsedBox> ParsedTrace::*member) {
  I64Array offsets(static_cast<py::ssize_t>(parsed.size() + 1));
  auto o = offsets.mutable_unchecked<1>();
  o(0) = 0;
  for (std::size_t i = 0; i < parsed.size(); ++i)
    o(static_cast<py::ssize_t>(i + 1)) =
        o(static_cast<py::ssize_t>(i)) + static_cast<std::int64_t>((parsed[i].*member).size());
  const py::ssize_t total = o(static_cast<py::ssize_t>(parsed.size()));
  F64Array coords({total, py::ssize_t{4}});
  I64Array spans({total, py::ssize_t{2}});
  auto c = coords.mutable_unchecked<2>();
  auto sp = spans.mutable_unchecked<2>();
  py::ssize_t row = 0;
  for (const auto& t : parsed) {
    for (const auto& b : t.*member) {
      for (py::ssize_t j = 0; j < 4; ++j) c(row, j) = b.coords[j];
      sp(row, 0) = b.span.begin;
      sp(row, 1) = b.span.end;
      ++row;
    }
  }
  return py::make_tuple(coords, spans, offsets);
}

py::tuple parse_traces(const py::handle& texts, int num_threads) {
  const Utf8Batch batch(texts, "texts", 0);
  std::vector<ParsedTrace> parsed(batch.views.size());
  {
    py::gil_scoped_release release;
    parallel_for(parsed.size(), num_threads,
                 [&](std::size_t i) { parsed[i] = parse_trace(batch.views[i]); });
  }
  std::vector<py::str> tags;
  for (const auto tag : kTags) tags.emplace_back(tag.data(), tag.size());
  py::list rows(parsed.size());
  for (std::size_t i = 0; i < parsed.size(); ++i) {
    const auto& t = parsed[i];
    const py::handle text = batch.item(i);
    py::tuple labels(t.boxes.size());
    for (std::size_t k = 0; k < t.boxes.size(); ++k) labels[k] = substring(text, t.boxes[k].label);
    py::tuple answer_labels(t.answer_boxes.size());
    for (std::size_t k = 0; k < t.answer_boxes.size(); ++k)
      answer_labels[k] = substring(text, t.answer_boxes[k].label);
    py::dict counts;
    std::vector<std::pair<std::int64_t, std::size_t>> present;
    for (std::size_t k = 0; k < tags.size(); ++k) {
      counts[tags[k]] = t.tag_counts[k];
      if (t.tag_first[k] >= 0) present.emplace_back(t.tag_first[k], k);
    }
    std::sort(present.begin(), present.end());
    py::tuple order(present.size());
    for (std::size_t k = 0; k < present.size(); ++k) order[k] = tags[present[k].second];
    rows[i] = py::make_tuple(substring(text, t.think), substring(text, t.rethink),
                             substring(text, t.answer), labels, counts, order,
                             t.official_box_count, answer_labels);
  }
  return py::make_tuple(rows, flat_boxes(parsed, &ParsedTrace::boxes),
                        flat_boxes(parsed, &ParsedTrace::answer_boxes));
}

}  // namespace

void bind_trace(py::module_& m) {
  m.def("parse_traces", &parse_traces, py::arg("texts"), py::arg("num_threads") = 0,
        "Parse a list of completions (GIL released). Returns (rows, boxes, answer_boxes): rows[i] "
        "= (think, rethink, answer, labels, tag counts, tag order, official box count, answer "
        "labels); boxes and answer_boxes = (coords (K,4) float64, spans (K,2) int64, offsets "
        "(N+1,) int64).");
}

}  // namespace grit::bindings
