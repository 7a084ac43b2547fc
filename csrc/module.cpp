// The module grit_fast._C: its version and build facts, then each core module's functions.
#include <pybind11/pybind11.h>

#include "bindings.hpp"
#include "parallel.hpp"
#include "unicode.hpp"

namespace py = pybind11;

PYBIND11_MODULE(_C, m) {
  m.doc() = "grit_fast's compiled core (private: use the grit_fast package).";
  m.attr("__version__") = GRIT_FAST_VERSION;
  m.attr("unicode_version") = grit::unicode::kUnicodeVersion;
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
  grit::bindings::bind_trace(m);
  grit::bindings::bind_rewards(m);
  grit::bindings::bind_judge(m);
  grit::bindings::bind_geometry(m);
}
