// One pass over a completion's UTF-8 bytes for what the official rewards read from the whole text:
// the six tags, the official box count before the first <rethink>, and the word repetition score.
// Plain C++17; each result equals the separate scans in trace.hpp and the reference's Python.
#pragma once

#include <cstddef>
#include <string_view>

#include "trace.hpp"

namespace grit {

struct TextScan {
  TagScan tags;
  // Matches of \b\d+,\s*\d+,\s*\d+,\s*\d+\b in the text before the first <rethink> (all of it
  // when there is none): count_official_boxes(text.substr(0, text.find("<rethink>"))).
  std::size_t boxes = 0;
  // 1 - (immediately repeated word 8-grams) / (len(words) - 8) over text.split(); 1.0 with at
  // most 8 words. Left at 1.0 unless asked for.
  double word_score = 1.0;
  // len(text.split()). Left at 0 unless the word score is asked for.
  std::size_t words = 0;
};

TextScan scan_text(std::string_view text, bool word_score);

}  // namespace grit
