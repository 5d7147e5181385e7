// gRPC server credentials for klag-scaler's --tls-cert / --tls-key / --tls-client-ca files,
// re-read while the server runs, so a certificate rotated on disk (cert-manager renewing the
// Secret, Kubernetes swapping the mounted files) is served without a restart.
//
//   absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> creds =
//       MakeServerCredentials({.cert_file = "/etc/klag/tls/tls.crt",
//                              .key_file = "/etc/klag/tls/tls.key",
//                              .client_ca_file = "/etc/klag/tls/ca.crt"});
//   builder.AddListeningPort("0.0.0.0:6000", *creds);
//
// Reloading is gRPC's FileWatcherCertificateProvider: it re-reads the files every
// `refresh` and new handshakes use what it read last; connections already open keep their
// session. A file set that cannot be loaded (half-written, key and certificate that do not match)
// is logged by gRPC and the previous certificates stay in use.
#pragma once

#include <grpcpp/security/server_credentials.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace klag::scaler {

struct TlsFiles {
  std::string cert_file;       // PEM certificate chain (--tls-cert)
  std::string key_file;        // PEM private key (--tls-key)
  std::string client_ca_file;  // PEM CA bundle for client certificates (--tls-client-ca)
};

// Plaintext credentials when no file is given; TLS with cert and key; mutual TLS (a client
// certificate signed by client_ca_file required and verified) with all three. The files are read
// once here to check them, then watched every `refresh` (rounded up to whole seconds, at least
// 1 s). Errors: kInvalidArgument naming the flag: an unreadable file, one without PEM data,
// --tls-client-ca without --tls-cert/--tls-key, only one of --tls-cert and --tls-key.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> MakeServerCredentials(
    const TlsFiles& files, absl::Duration refresh = absl::Seconds(10));

}  // namespace klag::scaler
