// The UTF-8 bytes of a list of str, kept alive for a GIL-free section (shared by the batch entry
// points of bindings_trace.cpp, bindings_rewards.cpp and bindings_judge.cpp).
#pragma once

#include <pybind11/pybind11.h>

#include <cstddef>
#include <string_view>
#include <vector>

namespace grit::bindings {

namespace py = pybind11;

// Per-thread buffers are reused by every batch call on the thread: a batch of 10,000 samples needs
// about a megabyte of them, and fresh allocations of that size come from mmap and are page-faulted
// in again on every call (0.7 ms of a 10,000-sample scoring call). Buffers past kKeepEntries
// entries are released after the call.
constexpr std::size_t kKeepEntries = std::size_t{1} << 20;

template <class T>
void trim(std::vector<T>& v) {
  if (v.capacity() > kKeepEntries) std::vector<T>().swap(v);
}

// A str holding lone surrogates (which strict UTF-8 cannot encode) is encoded with
// "surrogatepass". The views live in per-thread buffers `slot` (0-2): at most three batches are
// alive at once in one call.
class Utf8Batch {
 public:
  Utf8Batch(const py::handle& seq, const char* name, int slot);
  Utf8Batch(const Utf8Batch&) = delete;
  Utf8Batch& operator=(const Utf8Batch&) = delete;
  ~Utf8Batch();

  // The i-th str (borrowed).
  PyObject* item(std::size_t i) const { return PyTuple_GET_ITEM(keep_.ptr(), i); }

  std::vector<std::string_view>& views;
  std::vector<char>& ascii;  // 1 where byte offsets are character offsets

 private:
  py::object keep_;                  // tuple of the str objects (stable even if the list changes)
  std::vector<py::object> encoded_;  // surrogatepass encodings, where needed
};

}  // namespace grit::bindings
