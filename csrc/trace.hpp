// One reasoning trace -> its sections, tags and boxes; and the official reward's box count.
// Plain C++17 over UTF-8 bytes; every offset handed back is a Python character offset.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <vector>

namespace grit {

inline constexpr std::array<std::string_view, 6> kTags = {
    "<think>", "</think>", "<rethink>", "</rethink>", "<answer>", "</answer>"};

// [begin, end) in characters; begin < 0 when the section is absent.
struct CharSpan {
  std::int64_t begin = -1, end = -1;
};

struct ParsedBox {
  double coords[4];
  CharSpan span;   // brackets included when the numbers sit in [] or ()
  CharSpan label;  // the "label" string after the box, or absent
};

struct ParsedTrace {
  CharSpan think, rethink, answer;
  std::vector<ParsedBox> boxes;         // before the first <rethink>
  std::vector<ParsedBox> answer_boxes;  // inside the answer section
  std::array<std::int64_t, 6> tag_counts{};
  std::array<std::int64_t, 6> tag_first{};  // byte offset of the first occurrence, -1 if none
  std::int64_t official_box_count = 0;
};

// Non-overlapping matches of Python's re.findall(r"\b\d+,\s*\d+,\s*\d+,\s*\d+\b", text) with
// Unicode \d, \s and \b; linear time.
std::size_t count_official_boxes(std::string_view text);

// Sections, tags and structured boxes (see grit_fast/rewards/trace.py for the grammar).
ParsedTrace parse_trace(std::string_view text);

// Every occurrence of the six tags, found in one pass over the '<' bytes (a tag has a single '<',
// at its start, so occurrences never overlap): count, first and last byte offset of each
// (npos when absent), indexed like kTags.
struct TagScan {
  std::array<std::size_t, 6> count{}, first{}, last{};
};
TagScan scan_tags(std::string_view text);

// Counts the tag, if any, that starts at byte `at` (where text[at] == '<') into `tags`.
void note_tag(std::string_view text, std::size_t at, TagScan& tags);

// Matches \d+,\s*\d+,\s*\d+,\s*\d+\b at byte `start`, whose leading \b the caller checked;
// sets `end` past the match.
bool match_official_box(std::string_view text, std::size_t start, std::size_t& end);

// Non-overlapping occurrences of needle (non-empty) in text, counting at most `limit`.
std::size_t count_occurrences(std::string_view text, std::string_view needle,
                              std::size_t limit = static_cast<std::size_t>(-1));

}  // namespace grit
