// Named credential profiles (`authProfile: NAME` in trigger metadata), read from the scaler's own
// mounted files so secrets need not travel in ScaledJob metadata. Profiles belong to the
// scaler's operator, not to the trigger: a profile says which namespaces may use it and pins the
// cluster its credentials are sent to (docs/security.md).
//
// Layout: <dir>/<NAME>/<key>, one file per key, named as the KEDA `kafka` trigger names it
// (bootstrapServers, sasl, username, password, tls, ca, cert, key, keyPassword, ...): exactly what
// a Kubernetes Secret mounted as a volume looks like. A trailing newline in a file is dropped.
// <dir>/<NAME>/allowedNamespaces (required, not a metadata key): namespaces that may use the
// profile, comma-separated, or `*` for all.
//
//   ProfileStore store("/etc/klag/profiles");
//   absl::StatusOr<Metadata> merged = store.Merge(ref.namespace_, ref.metadata);
#pragma once

#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
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
  // without authProfile comes back unchanged), for a trigger of namespace `namespace_`.
  // Rules, checked in this order:
  // - the profile has an allowedNamespaces file naming `namespace_` (or `*`); otherwise
  //   kPermissionDenied naming the profile and the namespace;
  // - a profile holding a credential (CredentialKeys()) sets bootstrapServers; otherwise
  //   kFailedPrecondition (the operator's profile is incomplete);
  // - the trigger sets no connection key (bootstrapServers and every tls/sasl/oauth/kerberos key,
  //   kafka::ConnectionSettingKeys(), plain or `...FromEnv`): kInvalidArgument naming the key;
  // - a key set both in the metadata and in the profile is kInvalidArgument, so it is never
  //   ambiguous which value is used.
  // Other errors: kInvalidArgument naming authProfile and the profile (unknown profile, bad
  // name). No message holds a value read from a profile. Thread-safe.
  //
  // `fresh_until` (optional): set, on success, to when the answer may change because the
  // profile is due to be re-read (InfiniteFuture for metadata without authProfile), so that a
  // caller caching the merged result (the Evaluator's parse cache) sees a rotated Secret as soon
  // as a fresh Merge would.
  absl::StatusOr<Metadata> Merge(absl::string_view namespace_, const Metadata& metadata,
                                 absl::Time* fresh_until = nullptr);

  // The profile keys that count as credentials: a profile holding any of them (plain or
  // `...FromEnv`) must pin bootstrapServers. username, password (also the OAuth client secret),
  // ca, cert, key, keyPassword, keytab, realm, kerberosServiceName, oauthTokenEndpointUri,
  // scopes, oauthExtensions: every connection key except bootstrapServers and the mode switches
  // tls, sasl, unsafeSsl, saslTokenProvider.
  static const std::vector<std::string>& CredentialKeys();

  // Name of the file that lists the namespaces allowed to use a profile.
  static constexpr char kAllowedNamespacesFile[] = "allowedNamespaces";

 private:
  struct Profile {
    Metadata values;
    std::vector<std::string> allowed_namespaces;  // "*" allows every namespace
  };
  struct Cached {
    Profile profile;
    absl::Time loaded_at;
  };
  absl::StatusOr<Profile> Load(const std::string& name);

  const std::string dir_;
  const absl::Duration reload_after_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, Cached> cache_ ABSL_GUARDED_BY(mu_);
};

}  // namespace klag::scaler
