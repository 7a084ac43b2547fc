// Twin of grit_fast.rewards.judge.rule_score. The regexes it mirrors, and why each loop below is
// exact for them:
// * gt choice, re.fullmatch(r"\s*\(?([A-E])\)?\.?\s*") with Unicode \s: nothing after the leading
//   spaces can be a space, so every quantifier takes all it can and no backtracking changes the
//   outcome;
// * prediction choice, _CHOICE with ASCII \s: a prefix ("option", "answer") that fails to lead to a
//   letter leaves the letter test at 'o' or 'a' followed by a letter, which fails too; after the
//   letter a ')' always ends a match (as \)? or as the [.:)] that \)? gives back);
// * tokens, [0-9]+(?:\.[0-9]+)?|[a-z]+ after ASCII lowering: a left-to-right scan.
#include "rule_judge.hpp"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <string>
#include <system_error>
#include <vector>

#include "unicode.hpp"

namespace grit {
namespace {

bool ascii_space(unsigned char c) { return c == ' ' || (c >= '\t' && c <= '\r'); }
bool ascii_digit(unsigned char c) { return c >= '0' && c <= '9'; }
unsigned char ascii_lower(unsigned char c) {
  return (c >= 'A' && c <= 'Z') ? static_cast<unsigned char>(c | 0x20) : c;
}
bool ascii_letter(unsigned char c) { return ascii_lower(c) >= 'a' && ascii_lower(c) <= 'z'; }

// Byte offset past the Unicode spaces starting at i.
std::size_t skip_spaces(std::string_view s, std::size_t i) {
  while (i < s.size()) {
    std::size_t j = i;
    if (!unicode::is_space(unicode::decode(s, j))) break;
    i = j;
  }
  return i;
}

// s with Unicode spaces stripped from both ends (Python's str.strip()).
std::string_view strip(std::string_view s) {
  const std::size_t begin = skip_spaces(s, 0);
  std::size_t end = s.size();
  while (end > begin) {
    const std::uint32_t cp = unicode::decode_before(s, end);
    if (!unicode::is_space(cp)) break;
    std::size_t width = 1;  // is_space code points are ASCII or well-formed 2-3 byte sequences
    if (cp >= 0x80) width = cp < 0x800 ? 2 : (cp < 0x10000 ? 3 : 4);
    end -= width;
  }
  return s.substr(begin, end - begin);
}

// The letter of a gt choice answer ("B", "(B)", "B.", ...), or 0.
char gt_choice(std::string_view s) {
  std::size_t i = skip_spaces(s, 0);
  if (i < s.size() && s[i] == '(') ++i;
  if (i >= s.size() || s[i] < 'A' || s[i] > 'E') return 0;
  const char letter = s[i++];
  if (i < s.size() && s[i] == ')') ++i;
  if (i < s.size() && s[i] == '.') ++i;
  return skip_spaces(s, i) == s.size() ? letter : 0;
}

// The upper-cased letter _CHOICE.match(prediction) captures, or 0 when it does not match.
char predicted_choice(std::string_view s) {
  const auto at = [&](std::size_t k) -> unsigned char {
    return k < s.size() ? static_cast<unsigned char>(s[k]) : 0;
  };
  std::size_t i = 0;
  while (i < s.size() && ascii_space(at(i))) ++i;
  std::size_t start = i;  // where the letter part begins without a prefix
  if (s.compare(i, 6, "option") == 0 && ascii_space(at(i + 6))) {
    start = i + 6;
    while (start < s.size() && ascii_space(at(start))) ++start;
  } else if (s.compare(i, 6, "answer") == 0) {
    start = i + 6;
    while (start < s.size() && ascii_space(at(start))) ++start;
    if (at(start) == ':') ++start;
    while (start < s.size() && ascii_space(at(start))) ++start;
  }
  const auto letter_at = [&](std::size_t k) -> char {
    if (at(k) == '(') ++k;
    const unsigned char c = ascii_lower(at(k));
    if (k >= s.size() || c < 'a' || c > 'e') return 0;
    const unsigned char next = at(k + 1);
    const bool ends = k + 1 >= s.size() || next == ')' || next == '.' || next == ':' ||
                      ascii_space(next);
    return ends ? static_cast<char>(c - 'a' + 'A') : 0;
  };
  const char got = letter_at(start);
  return (got != 0 || start == i) ? got : letter_at(i);
}

constexpr std::string_view kNumbers[] = {"0",  "1",  "2",  "3",  "4",  "5",  "6",
                                         "7",  "8",  "9",  "10", "11", "12", "13",
                                         "14", "15", "16", "17", "18", "19", "20"};

// Up to the first 8 bytes of a word, lower-cased (ASCII letters only), packed first byte lowest.
constexpr std::uint64_t pack_lower(std::string_view w) {
  std::uint64_t h = 0;
  for (std::size_t k = 0; k < w.size() && k < 8; ++k)
    h |= static_cast<std::uint64_t>(static_cast<unsigned char>(w[k]) | 0x20) << (8 * k);
  return h;
}

// The words _tokens() replaces or drops: number words (value 0-20) and articles (value -1),
// grouped by length (kByLength[n] .. kByLength[n + 1] have n letters).
struct KnownWord {
  std::string_view word;
  int value;
  std::uint64_t head;
};
constexpr KnownWord known(std::string_view w, int value) { return {w, value, pack_lower(w)}; }
constexpr KnownWord kKnownWords[] = {
    known("a", -1),         known("an", -1),       known("the", -1),      known("one", 1),
    known("two", 2),        known("six", 6),       known("ten", 10),      known("zero", 0),
    known("four", 4),       known("five", 5),      known("nine", 9),      known("three", 3),
    known("seven", 7),      known("eight", 8),     known("eleven", 11),   known("twelve", 12),
    known("twenty", 20),    known("fifteen", 15),  known("sixteen", 16),  known("thirteen", 13),
    known("fourteen", 14),  known("eighteen", 18), known("nineteen", 19), known("seventeen", 17)};
constexpr std::size_t kByLength[11] = {0, 0, 1, 2, 7, 11, 14, 17, 19, 23, 24};

// The KnownWord that the letters `w` spell ignoring case, or nullptr.
const KnownWord* known_word(std::string_view w) {
  if (w.size() > 9) return nullptr;
  const std::uint64_t head = pack_lower(w);
  for (std::size_t k = kByLength[w.size()]; k < kByLength[w.size() + 1]; ++k)
    if (kKnownWords[k].head == head &&
        (w.size() < 9 || (static_cast<unsigned char>(w[8]) | 0x20) == kKnownWords[k].word[8]))
      return &kKnownWords[k];
  return nullptr;
}

// A token of _tokens(): the text to compare (lower-cased letters, or digits) and whether the
// text at `raw` has upper-case letters to fold when comparing.
struct Token {
  std::string_view text;
  bool folded = false;  // text points into the original and holds A-Z to be compared lowered
};

bool token_equal(const Token& a, const Token& b) {
  if (a.text.size() != b.text.size()) return false;
  if (!a.folded && !b.folded) return a.text == b.text;
  for (std::size_t k = 0; k < a.text.size(); ++k)
    if (ascii_lower(static_cast<unsigned char>(a.text[k])) !=
        ascii_lower(static_cast<unsigned char>(b.text[k])))
      return false;
  return true;
}

bool token_is(const Token& t, std::string_view word) { return token_equal(t, Token{word}); }

// _tokens(text): ASCII-lowered words and numbers, number words as digits, articles dropped.
void tokens(std::string_view s, std::vector<Token>& out) {
  out.clear();
  std::size_t i = 0;
  const std::size_t n = s.size();
  while (i < n) {
    const auto c = static_cast<unsigned char>(s[i]);
    if (ascii_digit(c)) {
      std::size_t j = i + 1;
      while (j < n && ascii_digit(static_cast<unsigned char>(s[j]))) ++j;
      if (j + 1 < n && s[j] == '.' && ascii_digit(static_cast<unsigned char>(s[j + 1]))) {
        j += 2;
        while (j < n && ascii_digit(static_cast<unsigned char>(s[j]))) ++j;
      }
      out.push_back(Token{s.substr(i, j - i)});
      i = j;
    } else if (ascii_letter(c)) {
      std::size_t j = i + 1;
      bool upper = c <= 'Z';
      while (j < n && ascii_letter(static_cast<unsigned char>(s[j]))) {
        upper |= static_cast<unsigned char>(s[j]) <= 'Z';
        ++j;
      }
      Token t{s.substr(i, j - i), upper};
      if (const KnownWord* w = known_word(t.text)) {
        if (w->value < 0) {
          i = j;
          continue;
        }
        t = Token{kNumbers[w->value]};
      }
      out.push_back(t);
      i = j;
    } else {
      ++i;
    }
  }
}

bool is_number(const Token& t) { return !t.text.empty() && ascii_digit(t.text[0]); }

// Python's float(token) for digits with an optional fraction.
double number(const Token& t) {
  const char* first = t.text.data();
  const char* last = first + t.text.size();
  if (t.text.size() <= 15) {  // an integer below 10**15 is exact in a double
    std::int64_t v = 0;
    const char* p = first;
    for (; p < last && *p != '.'; ++p) v = v * 10 + (*p - '0');
    if (p == last) return static_cast<double>(v);
  }
  double value = 0;
  const auto [ptr, ec] = std::from_chars(first, last, value, std::chars_format::fixed);
  if (ec == std::errc::result_out_of_range) {
    // Too large (Python gives inf) or too small (Python gives 0.0): only an integer part of
    // nonzero digits makes a token large.
    for (const char* p = first; p < last && *p != '.'; ++p)
      if (*p != '0') return std::numeric_limits<double>::infinity();
    return 0.0;
  }
  return value;
}

bool yes_no(const Token& t) { return token_is(t, "yes") || token_is(t, "no"); }

}  // namespace

double rule_score(std::string_view answer, std::string_view prediction) {
  if (const char choice = gt_choice(answer)) return predicted_choice(prediction) == choice;
  static thread_local std::vector<Token> gt, pred;
  tokens(answer, gt);
  if (gt.empty()) {
    const std::string_view a = strip(answer);
    return !a.empty() && a == strip(prediction) ? 1.0 : 0.0;
  }
  tokens(prediction, pred);
  if (gt.size() == 1 && yes_no(gt[0])) {
    for (const Token& t : pred)
      if (yes_no(t)) return token_equal(t, gt[0]) ? 1.0 : 0.0;
    return 0.0;
  }
  if (gt.size() == 1 && is_number(gt[0])) {
    for (const Token& t : pred)
      if (is_number(t)) return number(t) == number(gt[0]) ? 1.0 : 0.0;
    return 0.0;
  }
  const std::size_t k = gt.size();
  const auto phrase_at = [&](std::size_t j) {
    for (std::size_t m = 0; m < k; ++m)
      if (!token_equal(pred[j + m], gt[m])) return false;
    return true;
  };
  if (pred.size() == k && phrase_at(0)) return 1.0;
  if (k <= 3)
    for (std::size_t j = 0; j + k <= pred.size(); ++j)
      if (phrase_at(j)) return 1.0;
  return 0.0;
}

}  // namespace grit
