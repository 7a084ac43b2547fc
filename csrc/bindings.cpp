// The only file that includes pybind11. Every batch entry point validates its arguments here,
// converts them to plain C++ types, and releases the GIL before the work starts.
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include "parallel.hpp"

namespace py = pybind11;

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
}
