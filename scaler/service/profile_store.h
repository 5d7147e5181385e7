// Named credential profiles (`authProfile: NAME` in trigger metadata), read from the scaler's own
// mounted files so secrets need not travel in ScaledJob metadata.
//
// Layout: <dir>/<NAME>/<key>, one file per key, named as the KEDA `kafka` trigger names it
// (sasl, username, password, tls, ca, cert, key, keyPassword, ...): exactly what a Kubernetes
// Secret mounted as a volume looks like. A trailing newline in a file is dropped.
//
//   ProfileStore store("/etc/klag/profiles");
//   absl::StatusOr<Metadata> merged = store.Merge(ref_metadata);  // profile keys filled in
#pragma once

#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "scaler/lag/trigger_spec.h"

namespace klag::scaler {

class ProfileStore {
 public:
  // `dir` may be empty: then any authProfile is an error. Profiles are re-read after
  // `reload_after`, so a rotated Secret is picked up without a restart.
  explicit ProfileStore(std::string dir, absl::Duration reload_after = absl::Seconds(30));

  // Returns `metadata` with the profile named by its `authProfile` key merged in (metadata
  // without authProfile comes back unchanged). A key set both in the metadata and in the profile
  // is an error, so it is never ambiguous which secret is used. Errors: kInvalidArgument naming
  // authProfile and the profile (unknown profile, bad name, conflicting key); never a secret.
  // Thread-safe.
  absl::StatusOr<Metadata> Merge(const Metadata& metadata);

 private:
  struct Cached {
    Metadata values;
    absl::Time loaded_at;
  };
  absl::StatusOr<Metadata> Load(const std::string& name);

  const std::string dir_;
  const absl::Duration reload_after_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace klag::scaler
