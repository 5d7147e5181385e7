#include "common/flags.h"

#include <cstdlib>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"

namespace klag {

EnvLookup ProcessEnv() {
  return [](absl::string_view name) -> std::optional<std::string> {
    const char* value = std::getenv(std::string(name).c_str());
    if (value == nullptr) return std::nullopt;
    return std::string(value);
  };
}

absl::StatusOr<bool> ParseBool(absl::string_view text) {
  std::string lower = absl::AsciiStrToLower(text);
  if (lower == "true" || lower == "1" || lower == "yes") return true;
  if (lower == "false" || lower == "0" || lower == "no") return false;
  return absl::InvalidArgumentError(absl::StrCat("expected true or false, got \"", text, "\""));
}

FlagSet::FlagSet(std::string program, std::string summary)
    : program_(std::move(program)), summary_(std::move(summary)) {}

void FlagSet::Add(Flag flag) { flags_.push_back(std::move(flag)); }

void FlagSet::String(std::string name, std::string env, std::string help, std::string* target) {
  Add({std::move(name), std::move(env), std::move(help), *target, false,
       [target](absl::string_view v) {
         *target = std::string(v);
         return absl::OkStatus();
       }});
}

void FlagSet::Int(std::string name, std::string env, std::string help, int64_t* target) {
  Add({std::move(name), std::move(env), std::move(help), absl::StrCat(*target), false,
       [target](absl::string_view v) {
         if (!absl::SimpleAtoi(v, target)) {
           return absl::InvalidArgumentError(absl::StrCat("expected an integer, got \"", v, "\""));
         }
         return absl::OkStatus();
       }});
}

void FlagSet::Double(std::string name, std::string env, std::string help, double* target) {
  Add({std::move(name), std::move(env), std::move(help), absl::StrCat(*target), false,
       [target](absl::string_view v) {
         if (!absl::SimpleAtod(v, target)) {
           return absl::InvalidArgumentError(absl::StrCat("expected a number, got \"", v, "\""));
         }
         return absl::OkStatus();
       }});
}

void FlagSet::Bool(std::string name, std::string env, std::string help, bool* target) {
  Add({std::move(name), std::move(env), std::move(help), *target ? "true" : "false", true,
       [target](absl::string_view v) {
         absl::StatusOr<bool> parsed = ParseBool(v);
         if (!parsed.ok()) return parsed.status();
         *target = *parsed;
         return absl::OkStatus();
       }});
}

void FlagSet::Duration(std::string name, std::string env, std::string help,
                       absl::Duration* target) {
  Add({std::move(name), std::move(env), std::move(help), absl::FormatDuration(*target), false,
       [target](absl::string_view v) {
         absl::Duration d;
         if (!absl::ParseDuration(v, &d) || d < absl::ZeroDuration()) {
           return absl::InvalidArgumentError(absl::StrCat(
               "expected a non-negative duration such as 500ms, 5s or 1m, got \"", v, "\""));
         }
         *target = d;
         return absl::OkStatus();
       }});
}

void FlagSet::Choice(std::string name, std::string env, std::string help,
                     std::vector<std::string> choices, std::string* target) {
  std::string full_help = absl::StrCat(help, " (", absl::StrJoin(choices, "|"), ")");
  Add({std::move(name), std::move(env), std::move(full_help), *target, false,
       [target, choices = std::move(choices)](absl::string_view v) {
         for (const std::string& c : choices) {
           if (c == v) {
             *target = c;
             return absl::OkStatus();
           }
         }
         return absl::InvalidArgumentError(
             absl::StrCat("expected one of ", absl::StrJoin(choices, ", "), ", got \"", v, "\""));
       }});
}

const FlagSet::Flag* FlagSet::Find(absl::string_view name) const {
  for (const Flag& f : flags_) {
    if (f.name == name) return &f;
  }
  return nullptr;
}

absl::StatusOr<std::vector<std::string>> FlagSet::Parse(int argc, const char* const* argv,
                                                        const EnvLookup& env) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Parse(args, env);
}

absl::StatusOr<std::vector<std::string>> FlagSet::Parse(const std::vector<std::string>& args,
                                                        const EnvLookup& env) {
  for (const Flag& f : flags_) {
    if (f.env.empty()) continue;
    std::optional<std::string> value = env(f.env);
    if (!value.has_value()) continue;
    if (absl::Status s = f.set(*value); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("environment variable ", f.env, ": ", s.message()));
    }
  }
  std::vector<std::string> positional;
  for (size_t i = 0; i < args.size(); ++i) {
    absl::string_view arg = args[i];
    if (arg == "--") {
      positional.insert(positional.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1,
                        args.end());
      break;
    }
    if (arg == "--help" || arg == "-h") {
      help_requested_ = true;
      return positional;
    }
    if (!absl::ConsumePrefix(&arg, "--")) {
      positional.emplace_back(arg);
      continue;
    }
    absl::string_view name = arg;
    std::optional<std::string> value;
    if (size_t eq = arg.find('='); eq != absl::string_view::npos) {
      name = arg.substr(0, eq);
      value = std::string(arg.substr(eq + 1));
    }
    const Flag* flag = Find(name);
    if (flag == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see ", program_, " --help)"));
    }
    if (!value.has_value()) {
      if (flag->is_bool) {
        value = "true";
      } else if (i + 1 < args.size()) {
        value = args[++i];
      } else {
        return absl::InvalidArgumentError(absl::StrCat("flag --", name, " needs a value"));
      }
    }
    if (absl::Status s = flag->set(*value); !s.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("flag --", name, ": ", s.message()));
    }
  }
  return positional;
}

std::string FlagSet::Usage() const {
  std::string out = absl::StrCat(summary_, "\n\nOptions (flag, then environment variable):\n");
  for (const Flag& f : flags_) {
    absl::StrAppend(&out, "  --", f.name, f.is_bool ? "" : " VALUE");
    if (!f.env.empty()) absl::StrAppend(&out, "   [", f.env, "]");
    absl::StrAppend(&out, "\n      ", f.help);
    if (!f.default_text.empty()) absl::StrAppend(&out, " (default: ", f.default_text, ")");
    absl::StrAppend(&out, "\n");
  }
  absl::StrAppend(&out, "  --help\n      print this help and exit\n");
  return out;
}

}  // namespace klag
