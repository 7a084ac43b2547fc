// The offline rule judge of grit_fast/rewards/judge.py (RuleJudge, rule_score) on UTF-8 bytes.
// Plain C++17; its scores equal rule_score's for every input (tests/test_judge.py fuzzes both).
#pragma once

#include <string_view>

namespace grit {

// 1.0 when `prediction` gives `answer` by RuleJudge's rules, else 0.0.
double rule_score(std::string_view answer, std::string_view prediction);

}  // namespace grit
