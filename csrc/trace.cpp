// Trace parsing. Every scan here is a deterministic left-to-right pass that reproduces what Python's
// backtracking regexes match (the patterns have no ambiguity a backtrack could exploit), so the
// work is linear in the text length whatever the input.
#include "trace.hpp"

#include <cerrno>
#include <charconv>
#include <cstdlib>
#include <cstring>
#include <string>

#include "unicode.hpp"

namespace grit {
namespace {

using unicode::decode;

constexpr std::size_t npos = std::string_view::npos;

bool is_blank(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }

// Scans one "\d+" (Unicode decimals) from j; returns false when there is none.
bool scan_decimals(std::string_view s, std::size_t& j) {
  std::size_t count = 0;
  while (j < s.size()) {
    const auto c = static_cast<unsigned char>(s[j]);
    if (c < 0x80) {
      if (!unicode::is_ascii_digit(c)) break;
      ++j;
      ++count;
      continue;
    }
    std::size_t t = j;
    if (!unicode::is_decimal(decode(s, t))) break;
    j = t;
    ++count;
  }
  return count > 0;
}

}  // namespace

bool match_official_box(std::string_view s, std::size_t start, std::size_t& end) {
  std::size_t j = start;
  for (int k = 0; k < 4; ++k) {
    if (!scan_decimals(s, j)) return false;
    if (k == 3) break;
    if (j >= s.size() || s[j] != ',') return false;
    ++j;
    while (j < s.size()) {
      std::size_t t = j;
      if (!unicode::is_space(decode(s, t))) break;
      j = t;
    }
  }
  if (j < s.size()) {
    std::size_t t = j;
    if (unicode::is_word(decode(s, t))) return false;
  }
  end = j;
  return true;
}

namespace {

// --- structured boxes: ASCII numbers -?[0-9]+(\.[0-9]+)? --------------------------------------

bool is_ascii_word(unsigned char c) { return unicode::is_ascii_alnum(c) || c == '_'; }

// Scans one number in [j, end); returns false when there is none.
bool scan_number(std::string_view s, std::size_t end, std::size_t& j) {
  std::size_t t = j;
  if (t < end && s[t] == '-') ++t;
  const std::size_t digits = t;
  while (t < end && unicode::is_ascii_digit(static_cast<unsigned char>(s[t]))) ++t;
  if (t == digits) return false;
  if (t + 1 < end && s[t] == '.' && unicode::is_ascii_digit(static_cast<unsigned char>(s[t + 1]))) {
    t += 2;
    while (t < end && unicode::is_ascii_digit(static_cast<unsigned char>(s[t]))) ++t;
  }
  j = t;
  return true;
}

double to_double(std::string_view token) {
  double value = 0.0;
  const auto res = std::from_chars(token.data(), token.data() + token.size(), value);
  if (res.ec == std::errc()) return value;
  // Out of range: strtod gives the correctly rounded inf/subnormal/zero that Python's float() does.
  const std::string copy(token);
  return std::strtod(copy.c_str(), nullptr);
}

struct RawBox {
  std::size_t num_begin[4], num_end[4];
  std::size_t begin, end;
};

// Matches four numbers at `start` in [., end); the caller checked the look-behind.
bool match_structured_box(std::string_view s, std::size_t start, std::size_t end, RawBox& box) {
  std::size_t j = start;
  for (int k = 0; k < 4; ++k) {
    box.num_begin[k] = j;
    if (!scan_number(s, end, j)) return false;
    box.num_end[k] = j;
    if (k == 3) break;
    while (j < end && is_blank(static_cast<unsigned char>(s[j]))) ++j;
    if (j >= end || s[j] != ',') return false;
    ++j;
    while (j < end && is_blank(static_cast<unsigned char>(s[j]))) ++j;
  }
  if (j < end) {
    const auto c = static_cast<unsigned char>(s[j]);
    if (is_ascii_word(c)) return false;
    if (c == '.' && j + 1 < end && unicode::is_ascii_digit(static_cast<unsigned char>(s[j + 1])))
      return false;
  }
  box.begin = start;
  box.end = j;
  return true;
}

std::vector<RawBox> find_structured_boxes(std::string_view s, std::size_t begin, std::size_t end) {
  std::vector<RawBox> out;
  std::size_t p = begin;
  while (p < end) {
    const auto c = static_cast<unsigned char>(s[p]);
    const bool starts = unicode::is_ascii_digit(c) || c == '-';
    if (starts) {
      const bool glued = p > 0 && (is_ascii_word(static_cast<unsigned char>(s[p - 1])) || s[p - 1] == '.');
      RawBox box;
      if (!glued && match_structured_box(s, p, end, box)) {
        out.push_back(box);
        p = box.end;
        continue;
      }
    }
    ++p;
  }
  return out;
}

// "label" <blanks> : <blanks> "value" starting at `at`, within [at, limit).
bool match_label(std::string_view s, std::size_t at, std::size_t limit, std::size_t& vb,
                 std::size_t& ve) {
  constexpr std::string_view key = "\"label\"";
  std::size_t j = at + key.size();
  while (j < limit && is_blank(static_cast<unsigned char>(s[j]))) ++j;
  if (j >= limit || s[j] != ':') return false;
  ++j;
  while (j < limit && is_blank(static_cast<unsigned char>(s[j]))) ++j;
  if (j >= limit || s[j] != '"') return false;
  vb = ++j;
  while (j < limit && s[j] != '"') ++j;
  if (j >= limit) return false;
  ve = j;
  return true;
}

std::size_t find_in(std::string_view s, std::string_view needle, std::size_t from,
                    std::size_t limit) {
  if (from >= limit) return npos;
  const std::size_t at = s.substr(0, limit).find(needle, from);
  return at;
}

std::vector<ParsedBox> structured_boxes(std::string_view s, std::size_t begin, std::size_t end,
                                        unicode::CharIndex& chars) {
  const std::vector<RawBox> raw = find_structured_boxes(s, begin, end);
  std::vector<ParsedBox> out(raw.size());
  for (std::size_t k = 0; k < raw.size(); ++k) {
    const RawBox& r = raw[k];
    ParsedBox& box = out[k];
    for (int c = 0; c < 4; ++c)
      box.coords[c] = to_double(s.substr(r.num_begin[c], r.num_end[c] - r.num_begin[c]));
    std::size_t b = r.begin, e = r.end, lb = b, re = e;
    while (lb > begin && is_blank(static_cast<unsigned char>(s[lb - 1]))) --lb;
    while (re < end && is_blank(static_cast<unsigned char>(s[re]))) ++re;
    if (lb > begin && re < end &&
        ((s[lb - 1] == '[' && s[re] == ']') || (s[lb - 1] == '(' && s[re] == ')'))) {
      b = lb - 1;
      e = re + 1;
    }
    box.span = {chars(b), chars(e)};
    std::size_t limit = k + 1 < raw.size() ? raw[k + 1].begin : end;
    for (const char brace : {'{', '}'}) {
      const std::size_t at = find_in(s, std::string_view(&brace, 1), r.end, limit);
      if (at != npos) limit = at;
    }
    const std::size_t at = find_in(s, "\"label\"", r.end, limit);
    std::size_t vb = 0, ve = 0;
    if (at != npos && match_label(s, at, limit, vb, ve)) box.label = {chars(vb), chars(ve)};
  }
  return out;
}

// The section after the first `open` up to the next `close`, else the nearest of `stops`.
struct ByteSpan {
  std::size_t begin = npos, end = npos;
};

ByteSpan section(std::string_view s, std::string_view open, std::string_view close,
                 std::initializer_list<std::string_view> stops) {
  ByteSpan out;
  const std::size_t at = s.find(open);
  if (at == npos) return out;
  out.begin = at + open.size();
  out.end = s.find(close, out.begin);
  if (out.end == npos) {
    out.end = s.size();
    for (const auto stop : stops) {
      const std::size_t e = s.find(stop, out.begin);
      if (e != npos && e < out.end) out.end = e;
    }
  }
  return out;
}

CharSpan to_chars(const ByteSpan& span, unicode::CharIndex& chars) {
  if (span.begin == npos) return {};
  const std::int64_t b = chars(span.begin);
  return {b, chars(span.end)};
}

}  // namespace

void note_tag(std::string_view s, std::size_t at, TagScan& t) {
  const std::string_view rest = s.substr(at);
  for (std::size_t k = 0; k < kTags.size(); ++k) {
    if (rest.size() >= kTags[k].size() && rest[1] == kTags[k][1] &&
        rest.compare(0, kTags[k].size(), kTags[k]) == 0) {
      if (t.count[k]++ == 0) t.first[k] = at;
      t.last[k] = at;
      return;
    }
  }
}

TagScan scan_tags(std::string_view s) {
  TagScan t;
  t.first.fill(npos);
  t.last.fill(npos);
  const char* const begin = s.data();
  const char* const end = begin + s.size();
  const char* p = begin;
  while (p < end) {
    p = static_cast<const char*>(std::memchr(p, '<', static_cast<std::size_t>(end - p)));
    if (p == nullptr) break;
    note_tag(s, static_cast<std::size_t>(p - begin), t);
    ++p;
  }
  return t;
}

std::size_t count_occurrences(std::string_view text, std::string_view needle, std::size_t limit) {
  std::size_t count = 0, at = 0;
  while (count < limit && (at = text.find(needle, at)) != npos) {
    ++count;
    at += needle.size();
  }
  return count;
}

std::size_t count_official_boxes(std::string_view s) {
  // A match starts at a decimal digit whose previous character is not a word character (\b).
  // Only ASCII digits and non-ASCII bytes can start one, so everything else is skipped in a
  // tight loop and the previous character is looked at only when needed.
  const auto* p = reinterpret_cast<const unsigned char*>(s.data());
  const std::size_t n = s.size();
  std::size_t count = 0, i = 0;
  while (i < n) {
    i = unicode::next_digit_or_high(p, i, n);
    if (i >= n) break;
    const std::size_t start = i;
    bool digit;
    if (p[i] < 0x80) {
      digit = true;
      ++i;
    } else {
      digit = unicode::is_decimal(decode(s, i));
    }
    if (!digit) continue;
    const std::uint32_t prev = unicode::decode_before(s, start);
    if (prev != unicode::kNone && unicode::is_word(prev)) {
      // Inside a word: no match can start before the end of this run of word characters.
      continue;
    }
    std::size_t end = 0;
    if (match_official_box(s, start, end)) {
      ++count;
      i = end;
    }
  }
  return count;
}

ParsedTrace parse_trace(std::string_view s) {
  ParsedTrace t;
  unicode::CharIndex chars(s);
  t.think = to_chars(section(s, "<think>", "</think>", {"<rethink>", "<answer>"}), chars);
  t.rethink = to_chars(section(s, "<rethink>", "</rethink>", {"<answer>"}), chars);
  ByteSpan answer;
  const std::size_t answer_at = s.find("<answer>");
  if (answer_at != npos) {
    answer.begin = answer_at + 8;
    answer.end = s.find("</answer>", answer.begin);
    if (answer.end == npos) answer.end = s.size();
  }
  t.answer = to_chars(answer, chars);
  for (std::size_t k = 0; k < kTags.size(); ++k) {
    t.tag_counts[k] = static_cast<std::int64_t>(count_occurrences(s, kTags[k]));
    const std::size_t at = s.find(kTags[k]);
    t.tag_first[k] = at == npos ? -1 : static_cast<std::int64_t>(at);
  }
  const std::size_t rethink_at = s.find("<rethink>");
  const std::size_t reasoning_end = rethink_at == npos ? s.size() : rethink_at;
  t.official_box_count = static_cast<std::int64_t>(count_official_boxes(s.substr(0, reasoning_end)));
  t.boxes = structured_boxes(s.substr(0, reasoning_end), 0, reasoning_end, chars);
  if (answer.begin != npos) t.answer_boxes = structured_boxes(s.substr(0, answer.end), answer.begin, answer.end, chars);
  return t;
}

}  // namespace grit
