// Command-line flags with environment-variable fallbacks (12-factor, Kubernetes-friendly).
//
//   ScalerOptions opts;                        // defaults live in the struct
//   klag::FlagSet flags("klag-scaler", "KEDA external scaler for Kafka lag");
//   flags.String("listen", "KLAG_LISTEN", "address to serve gRPC on", &opts.listen);
//   flags.Duration("kafka-timeout", "KLAG_KAFKA_TIMEOUT", "deadline of Kafka calls",
//                  &opts.kafka_timeout);
//   absl::StatusOr<std::vector<std::string>> args = flags.Parse(argc, argv, klag::ProcessEnv());
//   if (flags.help_requested()) { std::cout << flags.Usage(); return 0; }
//
// Precedence: default < environment variable < flag. Flags are `--name VALUE` or
// `--name=VALUE`; boolean flags also accept a bare `--name`. Everything that is not a flag, and
// everything after `--`, is returned as a positional argument. A FlagSet is used from one thread.
#pragma once

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace klag {

// Looks up an environment variable; std::nullopt when unset. Injected so that library code and
// tests never read the real environment.
using EnvLookup = std::function<std::optional<std::string>(absl::string_view)>;

// The process environment (getenv). For main() only.
EnvLookup ProcessEnv();

class FlagSet {
 public:
  FlagSet(std::string program, std::string summary);

  // Each registration binds `--name` (and `env`, when not empty) to `*target`, which must
  // outlive Parse(). The target's current value is the documented default.
  void String(std::string name, std::string env, std::string help, std::string* target);
  void Int(std::string name, std::string env, std::string help, int64_t* target);
  void Double(std::string name, std::string env, std::string help, double* target);
  void Bool(std::string name, std::string env, std::string help, bool* target);
  void Duration(std::string name, std::string env, std::string help, absl::Duration* target);
  // A value that is one of `choices`.
  void Choice(std::string name, std::string env, std::string help, std::vector<std::string> choices,
              std::string* target);

  // Applies environment variables, then argv[1..]. Returns the positional arguments.
  // `--help`/`-h` sets help_requested() and stops parsing. Errors: kInvalidArgument naming the
  // flag (or variable) and the bad value, or an unknown flag.
  absl::StatusOr<std::vector<std::string>> Parse(int argc, const char* const* argv,
                                                 const EnvLookup& env);
  // Same, for an already split argument list (no program name).
  absl::StatusOr<std::vector<std::string>> Parse(const std::vector<std::string>& args,
                                                 const EnvLookup& env);

  bool help_requested() const { return help_requested_; }

  // Usage text: summary, then one entry per flag with its variable, default and help.
  std::string Usage() const;

 private:
  struct Flag {
    std::string name;
    std::string env;
    std::string help;
    std::string default_text;
    bool is_bool = false;
    std::function<absl::Status(absl::string_view)> set;
  };
  void Add(Flag flag);
  const Flag* Find(absl::string_view name) const;

  std::string program_;
  std::string summary_;
  std::vector<Flag> flags_;
  bool help_requested_ = false;
};

// Parses "true/false/1/0/yes/no" (case-insensitive). Errors: kInvalidArgument.
absl::StatusOr<bool> ParseBool(absl::string_view text);

}  // namespace klag
