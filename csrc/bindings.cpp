// The only file that includes pybind11. Every batch entry point validates its arguments here,
// converts them to plain C++ types, and releases the GIL before the work starts.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "parallel.hpp"

namespace py = pybind11;

// ---- trace & rewards ----
#include <pybind11/numpy.h>

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "prefetch.hpp"
#include "rewards.hpp"
#include "rule_judge.hpp"
#include "trace.hpp"
#include "unicode.hpp"

namespace trace_rewards_bindings {

using I64Array = py::array_t<std::int64_t>;
using F64Array = py::array_t<double>;

// Per-thread buffers that every batch call on the thread reuses: a batch of 10,000 samples needs
// about a megabyte of them, and fresh allocations of that size come from mmap and are
// page-faulted in again on every call (0.7 ms of a 10,000-sample scoring call). Buffers past
// kKeepEntries entries are released after the call.
struct ThreadBuffers {
  std::vector<std::string_view> views[3];
  std::vector<char> ascii[3];
  std::vector<std::int64_t> spans;
  std::vector<double> scores;
};

constexpr std::size_t kKeepEntries = std::size_t{1} << 20;

ThreadBuffers& thread_buffers() {
  static thread_local ThreadBuffers buffers;
  return buffers;
}

template <class T>
void trim(std::vector<T>& v) {
  if (v.capacity() > kKeepEntries) std::vector<T>().swap(v);
}

// The UTF-8 bytes of a list of str, kept alive for a GIL-free section. A str holding lone
// surrogates (which strict UTF-8 cannot encode) is encoded with "surrogatepass". The views live
// in thread buffers `slot` (0-2).
class Utf8Batch {
 public:
  Utf8Batch(const py::handle& seq, const char* name, int slot)
      : views(thread_buffers().views[slot]), ascii(thread_buffers().ascii[slot]) {
    if (!PyList_Check(seq.ptr()))
      throw py::type_error(std::string(name) + " must be a list of str, got " +
                           std::string(py::str(py::type::handle_of(seq).attr("__name__"))));
    keep_ = py::reinterpret_steal<py::object>(PyList_AsTuple(seq.ptr()));
    if (!keep_) throw py::error_already_set();
    const auto n = static_cast<std::size_t>(PyTuple_GET_SIZE(keep_.ptr()));
    views.clear();
    ascii.clear();
    views.reserve(n);
    ascii.reserve(n);
    for (std::size_t i = 0; i < n; ++i) {
      PyObject* str = item(i);
      if (!PyUnicode_Check(str))
        throw py::type_error(std::string(name) + "[" + std::to_string(i) + "] must be a str, got " +
                             Py_TYPE(str)->tp_name);
      Py_ssize_t size = 0;
      const char* data;
      if (PyUnicode_IS_COMPACT_ASCII(str)) {  // the usual case: the characters are the bytes
        data = static_cast<const char*>(PyUnicode_DATA(str));
        size = PyUnicode_GET_LENGTH(str);
      } else {
        data = PyUnicode_AsUTF8AndSize(str, &size);
      }
      if (data == nullptr) {
        PyErr_Clear();
        PyObject* bytes = PyUnicode_AsEncodedString(str, "utf-8", "surrogatepass");
        if (bytes == nullptr) throw py::error_already_set();
        encoded_.push_back(py::reinterpret_steal<py::object>(bytes));
        data = PyBytes_AS_STRING(bytes);
        size = PyBytes_GET_SIZE(bytes);
      }
      views.emplace_back(data, static_cast<std::size_t>(size));
      ascii.push_back(static_cast<char>(PyUnicode_IS_ASCII(str)));
    }
  }
  Utf8Batch(const Utf8Batch&) = delete;
  Utf8Batch& operator=(const Utf8Batch&) = delete;
  ~Utf8Batch() {
    trim(views);
    trim(ascii);
  }

  // The i-th str (borrowed).
  PyObject* item(std::size_t i) const { return PyTuple_GET_ITEM(keep_.ptr(), i); }

  std::vector<std::string_view>& views;
  std::vector<char>& ascii;  // 1 where byte offsets are character offsets

 private:
  py::object keep_;                  // tuple of the str objects (stable even if the list changes)
  std::vector<py::object> encoded_;  // surrogatepass encodings, where needed
};

// Short predictions cut from ASCII texts, as str objects: equal ones share one str, since a
// batch repeats the same few answers (" yes ", " 3 ") and a new str costs an allocation. Holds a
// reference to each str it hands out until it is destroyed.
class ShortStrings {
 public:
  static constexpr std::size_t kMaxLength = 16;

  ShortStrings() = default;
  ShortStrings(const ShortStrings&) = delete;
  ShortStrings& operator=(const ShortStrings&) = delete;
  ~ShortStrings() {
    for (const Slot& slot : slots_) Py_XDECREF(slot.str);
  }

  // A new reference to text[begin:end] (text: an ASCII str whose bytes start at `data`).
  PyObject* get(PyObject* text, const char* data, std::size_t begin, std::size_t end) {
    const std::size_t len = end - begin;
    if (len > kMaxLength) return PyUnicode_Substring(text, begin, end);
    std::uint64_t key[2] = {0, 0};
    std::memcpy(key, data + begin, len);
    std::uint64_t h = (key[0] * 0x9E3779B97F4A7C15ull) ^ (key[1] * 0xC2B2AE3D27D4EB4Full) ^ len;
    h ^= h >> 29;
    for (std::size_t probe = 0; probe < 4; ++probe) {
      Slot& slot = slots_[(h + probe) & (kSlots - 1)];
      if (slot.str == nullptr) {
        PyObject* str = PyUnicode_Substring(text, begin, end);
        if (str == nullptr) return nullptr;
        slot = Slot{key[0], key[1], len, str};
        Py_INCREF(str);
        return str;
      }
      if (slot.len == len && slot.key0 == key[0] && slot.key1 == key[1]) {
        Py_INCREF(slot.str);
        return slot.str;
      }
    }
    return PyUnicode_Substring(text, begin, end);
  }

 private:
  static constexpr std::size_t kSlots = 256;
  struct Slot {
    std::uint64_t key0 = 0, key1 = 0;
    std::size_t len = 0;
    PyObject* str = nullptr;
  };
  Slot slots_[kSlots];
};

// text[span] as a str, or None when the span is absent.
py::object substring(const py::handle& text, const grit::CharSpan& span) {
  if (span.begin < 0) return py::none();
  PyObject* piece = PyUnicode_Substring(text.ptr(), span.begin, span.end);
  if (piece == nullptr) throw py::error_already_set();
  return py::reinterpret_steal<py::object>(piece);
}

// The boxes of every trace in flat arrays: coords (K, 4), spans (K, 2), offsets (N + 1,).
py::tuple flat_boxes(const std::vector<grit::ParsedTrace>& parsed,
                     std::vector<grit::ParsedBox> grit::ParsedTrace::*member) {
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
  std::vector<grit::ParsedTrace> parsed(batch.views.size());
  {
    py::gil_scoped_release release;
    grit::parallel_for(parsed.size(), num_threads,
                       [&](std::size_t i) { parsed[i] = grit::parse_trace(batch.views[i]); });
  }
  std::vector<py::str> tags;
  for (const auto tag : grit::kTags) tags.emplace_back(tag.data(), tag.size());
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
  return py::make_tuple(rows, flat_boxes(parsed, &grit::ParsedTrace::boxes),
                        flat_boxes(parsed, &grit::ParsedTrace::answer_boxes));
}

// A C-contiguous int64 1-D array, or a TypeError naming `name`.
I64Array int64_vector(const py::handle& obj, const char* name) {
  if (!py::isinstance<py::array>(obj))
    throw py::type_error(std::string(name) + " must be a numpy int64 array");
  auto arr = py::reinterpret_borrow<py::array>(obj);
  // dtype equivalence, not identity: an unpickled int64 array carries its own dtype object.
  if (!py::isinstance<I64Array>(obj) || arr.ndim() != 1 ||
      !(arr.flags() & py::array::c_style))
    throw py::type_error(std::string(name) + " must be a C-contiguous 1-D int64 array");
  return py::reinterpret_borrow<I64Array>(obj);
}

py::tuple score_rewards(const py::handle& completions, const py::handle& answers,
                        const py::handle& datasets, const py::handle& ids_flat,
                        const py::handle& ids_offsets, const std::string& preset,
                        const py::handle& pad_token_id, std::int64_t int_max_str_digits,
                        int num_threads, bool rule_judge) {
  const bool official = preset == "official";
  if (!official && preset != "paper")
    throw py::value_error("preset must be 'official' or 'paper', got '" + preset + "'");
  const Utf8Batch texts(completions, "completions", 0);
  const Utf8Batch gts(answers, "answers", 1);
  const Utf8Batch names(datasets, "datasets", 2);
  const std::size_t n = texts.views.size();
  if (gts.views.size() != n || names.views.size() != n)
    throw py::value_error("completions, answers and datasets have lengths " + std::to_string(n) +
                          ", " + std::to_string(gts.views.size()) + " and " +
                          std::to_string(names.views.size()) + "; expected equal lengths");
  const bool has_ids = !ids_flat.is_none();
  I64Array flat, offsets;
  if (has_ids) {
    flat = int64_vector(ids_flat, "ids_flat");
    offsets = int64_vector(ids_offsets, "ids_offsets");
    if (static_cast<std::size_t>(offsets.size()) != n + 1)
      throw py::value_error("ids_offsets has " + std::to_string(offsets.size()) +
                            " entries, expected len(completions) + 1 = " + std::to_string(n + 1));
    const std::int64_t* o = offsets.data();
    if (o[0] != 0 || o[n] != flat.size())
      throw py::value_error("ids_offsets must start at 0 and end at len(ids_flat)");
    for (std::size_t i = 0; i < n; ++i)
      if (o[i + 1] < o[i]) throw py::value_error("ids_offsets must be non-decreasing");
  } else if (!ids_offsets.is_none()) {
    throw py::value_error("ids_offsets given without ids_flat");
  }
  const bool has_pad = !pad_token_id.is_none();
  const std::int64_t pad = has_pad ? pad_token_id.cast<std::int64_t>() : 0;

  const char* const official_names[] = {"answer_accuracy",  "answer_bleu", "answer_format",
                                        "repetition",       "grounding_format", "think_format"};
  const char* const paper_names[] = {"format", "count", "answer_accuracy", "answer_bleu"};
  const std::size_t num_components = official ? 6 : 4;
  std::vector<F64Array> arrays;
  std::vector<double*> cols;
  for (std::size_t k = 0; k < num_components; ++k) {
    arrays.emplace_back(static_cast<py::ssize_t>(n));
    cols.push_back(arrays.back().mutable_data());
  }
  // Judge spans in characters, 2 per sample; begin -1 where the sample is not judged.
  std::vector<std::int64_t>& spans = thread_buffers().spans;
  spans.resize(2 * n);
  std::vector<double>& scores = thread_buffers().scores;
  if (rule_judge) scores.resize(n);
  const std::size_t accuracy = official ? 0 : 2;
  {
    py::gil_scoped_release release;
    const std::int64_t* ids = has_ids ? flat.data() : nullptr;
    const std::int64_t* o = has_ids ? offsets.data() : nullptr;
    grit::parallel_for(n, num_threads, [&](std::size_t i) {
      grit::RewardInput in;
      in.completion = texts.views[i];
      in.answer = gts.views[i];
      in.dataset = names.views[i];
      in.has_ids = has_ids;
      if (has_ids) {
        in.ids = ids + o[i];
        in.num_ids = static_cast<std::size_t>(o[i + 1] - o[i]);
      }
      in.has_pad = has_pad;
      in.pad_token_id = pad;
      in.int_max_str_digits = int_max_str_digits;
      // Samples lie apart in memory: load the next one's strings while this one runs, and the
      // text and ids of the one after into L2 (padded id rows lie pages apart, and one sample's
      // work is too short to hide their load).
      if (i + 1 < n) {
        grit::prefetch_text(texts.views[i + 1]);
        grit::prefetch_text(gts.views[i + 1]);
        grit::prefetch_text(names.views[i + 1]);
      }
      if (i + 2 < n) {
        grit::prefetch_text(texts.views[i + 2], grit::Cache::kL2);
        if (has_ids)
          grit::prefetch_ids(ids + o[i + 2], static_cast<std::size_t>(o[i + 3] - o[i + 2]),
                             texts.views[i + 2].size(), grit::Cache::kL2);
      }
      grit::JudgeRequest request;
      if (official) {
        const grit::OfficialRewards r = grit::official_rewards(in);
        cols[0][i] = 0.0;
        cols[1][i] = r.answer_bleu;
        cols[2][i] = r.answer_format;
        cols[3][i] = r.repetition;
        cols[4][i] = r.grounding_format;
        cols[5][i] = r.think_format;
        request = r.judge;
      } else {
        const grit::PaperRewards r = grit::paper_rewards(in);
        cols[0][i] = r.format;
        cols[1][i] = r.count;
        cols[2][i] = 0.0;
        cols[3][i] = r.answer_bleu;
        request = r.judge;
      }
      std::int64_t* span = spans.data() + 2 * i;
      span[0] = -1;
      if (request.needed && texts.ascii[i]) {
        span[0] = static_cast<std::int64_t>(request.begin);
        span[1] = static_cast<std::int64_t>(request.end);
      } else if (request.needed) {
        grit::unicode::CharIndex chars(in.completion);
        span[0] = chars(request.begin);
        span[1] = chars(request.end);
      }
      if (rule_judge && request.needed) {
        const double score = grit::rule_score(
            in.answer, in.completion.substr(request.begin, request.end - request.begin));
        scores[i] = score;
        cols[accuracy][i] = score > 0 ? 1.0 : 0.0;
      }
    });
  }
  py::dict components;
  for (std::size_t k = 0; k < num_components; ++k)
    components[official ? official_names[k] : paper_names[k]] = arrays[k];
  std::size_t judged = 0;
  for (std::size_t i = 0; i < n; ++i) judged += spans[2 * i] >= 0;
  I64Array index(static_cast<py::ssize_t>(judged));
  py::list predictions(judged);
  F64Array judge_scores(static_cast<py::ssize_t>(rule_judge ? judged : 0));
  double* js = judge_scores.mutable_data();
  std::int64_t* idx = index.mutable_data();
  py::ssize_t j = 0;
  ShortStrings short_strings;
  for (std::size_t i = 0; i < n; ++i) {
    const std::int64_t* span = spans.data() + 2 * i;
    if (i + 4 < n && span[8] >= 0 && texts.ascii[i + 4])  // the text is long out of cache
      grit::prefetch_bytes(texts.views[i + 4].data() + span[8], 64);
    if (span[0] < 0) continue;
    idx[j] = static_cast<std::int64_t>(i);
    if (rule_judge) js[j] = scores[i];
    const auto begin = static_cast<std::size_t>(span[0]), end = static_cast<std::size_t>(span[1]);
    PyObject* piece = texts.ascii[i]
                          ? short_strings.get(texts.item(i), texts.views[i].data(), begin, end)
                          : PyUnicode_Substring(texts.item(i), span[0], span[1]);
    if (piece == nullptr) throw py::error_already_set();
    PyList_SET_ITEM(predictions.ptr(), j, piece);  // steals the reference
    ++j;
  }
  trim(spans);
  trim(scores);
  if (!rule_judge) return py::make_tuple(components, index, predictions, py::none());
  return py::make_tuple(components, index, predictions, judge_scores);
}

// RuleJudge's scores of answer/prediction pairs (GIL released).
F64Array rule_scores(const py::handle& answers, const py::handle& predictions, int num_threads) {
  const Utf8Batch gts(answers, "answers", 0);
  const Utf8Batch preds(predictions, "predictions", 1);
  const std::size_t n = gts.views.size();
  if (preds.views.size() != n)
    throw py::value_error(std::to_string(n) + " answers and " +
                          std::to_string(preds.views.size()) +
                          " predictions; expected equal lengths");
  F64Array out(static_cast<py::ssize_t>(n));
  double* o = out.mutable_data();
  {
    py::gil_scoped_release release;
    grit::parallel_for(n, num_threads,
                       [&](std::size_t i) { o[i] = grit::rule_score(gts.views[i], preds.views[i]); });
  }
  return out;
}

void bind(py::module_& m) {
  m.attr("unicode_version") = grit::unicode::kUnicodeVersion;
  m.def("parse_traces", &parse_traces, py::arg("texts"), py::arg("num_threads") = 0,
        "Parse a list of completions (GIL released). Returns (rows, boxes, answer_boxes): rows[i] "
        "= (think, rethink, answer, labels, tag counts, tag order, official box count, answer "
        "labels); boxes and answer_boxes = (coords (K,4) float64, spans (K,2) int64, offsets "
        "(N+1,) int64).");
  m.def("score_rewards", &score_rewards, py::arg("completions"), py::arg("answers"),
        py::arg("datasets"), py::arg("ids_flat"), py::arg("ids_offsets"), py::arg("preset"),
        py::arg("pad_token_id"), py::arg("int_max_str_digits"), py::arg("num_threads") = 0,
        py::arg("rule_judge") = false,
        "Reward components of a preset (GIL released): (components dict of float64 (N,), "
        "judge_index int64 (J,), the J predicted answers as str, the rule judge's J scores or "
        "None). With rule_judge the rule judge scores the judged samples and answer_accuracy "
        "holds its binarised scores; otherwise answer_accuracy is 0, left to a Python judge.");
  m.def("rule_scores", &rule_scores, py::arg("answers"), py::arg("predictions"),
        py::arg("num_threads") = 0,
        "RuleJudge's scores (float64 (N,)) of N answer/prediction pairs (GIL released).");
  m.def("bleu1", [](const std::string& reference, const std::string& hypothesis) {
    return grit::bleu1(reference, hypothesis);
  }, "BLEU-1 of two texts after the official normalisation (for tests).");
  m.def("python_int", [](const std::string& text, std::int64_t max_str_digits) {
    return grit::python_int(text, max_str_digits);
  }, "Python's int(text) as int64 (saturated), or None where int() raises (for tests).");
}

}  // namespace trace_rewards_bindings
// ---- end trace & rewards ----

// ---- geometry ----
#include <pybind11/numpy.h>

#include <cmath>
#include <cstdint>
#include <string>

#include "geometry.hpp"

namespace geometry_bindings {

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

void bind(py::module_& m) {
  m.def("box_iou", &box_iou, py::arg("a"), py::arg("b"),
        "Pairwise IoU of finite float64 boxes a (N, 4) and b (M, 4) -> (N, M), corners reordered.");
  m.def("grounding_iou_batch", &grounding_iou_batch, py::arg("pred_boxes"), py::arg("pred_offsets"),
        py::arg("gt_boxes"), py::arg("gt_offsets"), py::arg("num_threads") = 0,
        "Per sample i, IoU of the union of pred_boxes[pred_offsets[i]:pred_offsets[i+1]] with the "
        "union of its gt boxes, exact areas (GIL released) -> float64 (N,).");
}

}  // namespace geometry_bindings
// ---- end geometry ----

PYBIND11_MODULE(_C, m) {
  m.doc() = "grit_fast's compiled core (private: use the grit_fast package).";
  m.attr("__version__") = GRIT_FAST_VERSION;
  m.def("default_num_threads", &grit::default_num_threads,
        "Threads a batch call uses when num_threads <= 0 (GRIT_FAST_NUM_THREADS, else all cores).");
  m.def("build_info", [] {
    py::dict info;
    info["compiler"] = __VERSION__;
    info["cplusplus"] = static_cast<long>(__cplusplus);
#if defined(__SANITIZE_ADDRESS__)
    info["sanitizers"] = true;
#else
    info["sanitizers"] = false;
#endif
    return info;
  }, "Compiler and flags the extension was built with.");
  trace_rewards_bindings::bind(m);  // ---- trace & rewards ----
  geometry_bindings::bind(m);  // ---- geometry ----
}
