// score_rewards: the reward components of a preset for a batch (rewards.hpp), and the pieces
// exposed for tests.
#include <pybind11/numpy.h>
#include <pybind11/stl.h>  // std::optional results

#include <cstdint>
#include <cstring>
#include <string>
#include <string_view>
#include <vector>

#include "bindings.hpp"
#include "bindings_utf8.hpp"
#include "parallel.hpp"
#include "prefetch.hpp"
#include "rewards.hpp"
#include "rule_judge.hpp"
#include "unicode.hpp"

namespace grit::bindings {
namespace {

using I64Array = py::array_t<std::int64_t>;
using F64Array = py::array_t<double>;

// Per-thread buffers of score_rewards (see kKeepEntries): the judged spans and rule-judge scores.
struct ScoreBuffers {
  std::vector<std::int64_t> spans;
  std::vector<double> scores;
};

ScoreBuffers& score_buffers() {
  static thread_local ScoreBuffers buffers;
  return buffers;
}

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
  std::vector<std::int64_t>& spans = score_buffers().spans;
  spans.resize(2 * n);
  std::vector<double>& scores = score_buffers().scores;
  if (rule_judge) scores.resize(n);
  const std::size_t accuracy = official ? 0 : 2;
  {
    py::gil_scoped_release release;
    const std::int64_t* ids = has_ids ? flat.data() : nullptr;
    const std::int64_t* o = has_ids ? offsets.data() : nullptr;
    parallel_for(n, num_threads, [&](std::size_t i) {
      RewardInput in;
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
        prefetch_text(texts.views[i + 1]);
        prefetch_text(gts.views[i + 1]);
        prefetch_text(names.views[i + 1]);
      }
      if (i + 2 < n) {
        prefetch_text(texts.views[i + 2], Cache::kL2);
        if (has_ids)
          prefetch_ids(ids + o[i + 2], static_cast<std::size_t>(o[i + 3] - o[i + 2]),
                             texts.views[i + 2].size(), Cache::kL2);
      }
      JudgeRequest request;
      if (official) {
        const OfficialRewards r = official_rewards(in);
        cols[0][i] = 0.0;
        cols[1][i] = r.answer_bleu;
        cols[2][i] = r.answer_format;
        cols[3][i] = r.repetition;
        cols[4][i] = r.grounding_format;
        cols[5][i] = r.think_format;
        request = r.judge;
      } else {
        const PaperRewards r = paper_rewards(in);
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
        unicode::CharIndex chars(in.completion);
        span[0] = chars(request.begin);
        span[1] = chars(request.end);
      }
      if (rule_judge && request.needed) {
        const double score = rule_score(
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
      prefetch_bytes(texts.views[i + 4].data() + span[8], 64);
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

// Rows of token ids as TRL hands them to reward functions (a list of lists of int) ->
// (flat, offsets) int64, one pass over the ints with no numpy dtype discovery per row. None when
// a row is not a list or tuple, or an id is not an int in int64 range: the caller converts those
// (and names what is wrong), so that the result is always what numpy would give.
py::object pack_ids(const py::handle& rows_obj) {
  PyObject* rows = rows_obj.ptr();
  if (!PyList_Check(rows) && !PyTuple_Check(rows)) return py::none();
  const Py_ssize_t n = PySequence_Fast_GET_SIZE(rows);
  I64Array offsets(n + 1);
  std::int64_t* o = offsets.mutable_data();
  o[0] = 0;
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* row = PySequence_Fast_ITEMS(rows)[i];
    if (!PyList_Check(row) && !PyTuple_Check(row)) return py::none();
    o[i + 1] = o[i] + PySequence_Fast_GET_SIZE(row);
  }
  I64Array flat(o[n]);  // may run a garbage collection, and finalizers could change the rows
  std::int64_t* out = flat.mutable_data();
  if (PySequence_Fast_GET_SIZE(rows) != n) return py::none();
  for (Py_ssize_t i = 0; i < n; ++i) {
    PyObject* row = PySequence_Fast_ITEMS(rows)[i];
    const Py_ssize_t len = PySequence_Fast_GET_SIZE(row);
    if (len != o[i + 1] - o[i]) return py::none();
    PyObject** ids = PySequence_Fast_ITEMS(row);
    for (Py_ssize_t j = 0; j < len; ++j) {
      PyObject* id = ids[j];
      if (!PyLong_CheckExact(id)) return py::none();  // bool, float, numpy integer, ...
      int overflow = 0;
      const long long value = PyLong_AsLongLongAndOverflow(id, &overflow);
      if (overflow != 0) return py::none();
      out[o[i] + j] = value;
    }
  }
  return py::make_tuple(flat, offsets);
}

}  // namespace

void bind_rewards(py::module_& m) {
  m.def("score_rewards", &score_rewards, py::arg("completions"), py::arg("answers"),
        py::arg("datasets"), py::arg("ids_flat"), py::arg("ids_offsets"), py::arg("preset"),
        py::arg("pad_token_id"), py::arg("int_max_str_digits"), py::arg("num_threads") = 0,
        py::arg("rule_judge") = false,
        "Reward components of a preset (GIL released): (components dict of float64 (N,), "
        "judge_index int64 (J,), the J predicted answers as str, the rule judge's J scores or "
        "None). With rule_judge the rule judge scores the judged samples and answer_accuracy "
        "holds its binarised scores; otherwise answer_accuracy is 0, left to a Python judge.");
  m.def("pack_ids", &pack_ids, py::arg("rows"),
        "Rows of int token ids (list or tuple of lists or tuples) -> (flat int64 (T,), offsets "
        "int64 (N + 1,)), or None when a row or id is of another kind.");
  m.def("bleu1", [](const std::string& reference, const std::string& hypothesis) {
    return bleu1(reference, hypothesis);
  }, "BLEU-1 of two texts after the official normalisation (for tests).");
  m.def("python_int", [](const std::string& text, std::int64_t max_str_digits) {
    return python_int(text, max_str_digits);
  }, "Python's int(text) as int64 (saturated), or None where int() raises (for tests).");
}

}  // namespace grit::bindings
