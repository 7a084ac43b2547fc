#include "bindings_utf8.hpp"

#include <string>

namespace grit::bindings {
namespace {

struct Utf8Buffers {
  std::vector<std::string_view> views[3];
  std::vector<char> ascii[3];
};

Utf8Buffers& utf8_buffers() {
  static thread_local Utf8Buffers buffers;
  return buffers;
}

}  // namespace

Utf8Batch::Utf8Batch(const py::handle& seq, const char* name, int slot)
    : views(utf8_buffers().views[slot]), ascii(utf8_buffers().ascii[slot]) {
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

Utf8Batch::~Utf8Batch() {
  trim(views);
  trim(ascii);
}

}  // namespace grit::bindings
