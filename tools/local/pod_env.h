// What Kubernetes and KEDA would fill in from the cluster, given locally: the values of the
// Secrets and ConfigMaps the Job template references, plus overrides for running on a laptop
// (the local broker's address, the local scaler's address). Then the container's environment
// as the kubelet builds it, and trigger metadata as KEDA forwards it (`...FromEnv` resolved).
//
//   # local-values.yaml
//   secrets:    {klag-kafka-credentials: {sasl: none, tls: disable}}
//   configMaps: {}
//   env:        {KLAG_BOOTSTRAP_SERVERS: "127.0.0.1:9092"}     # after secrets, wins
//   metadata:   {bootstrapServers: "127.0.0.1:9092"}          # every trigger, wins
//
//   absl::StatusOr<LocalValues> values = LoadLocalValues("local-values.yaml");
//   absl::StatusOr<StringMap> env = ResolveContainerEnv(sj.job.container, *values);
//   StringMap md = ResolveTriggerMetadata(sj.triggers[0].metadata, *env, *values);
#pragma once

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "tools/local/scaled_job.h"

namespace klag::local {

struct LocalValues {
  std::map<std::string, StringMap, std::less<>> secrets;      // name -> key -> value
  std::map<std::string, StringMap, std::less<>> config_maps;  // name -> key -> value
  StringMap env;       // container env overrides (set or replace)
  StringMap metadata;  // trigger metadata overrides (set or replace), before FromEnv resolution
};

// Parses the YAML above; every part is optional, values must be strings. Errors:
// kInvalidArgument naming the part for malformed YAML or non-string values.
absl::StatusOr<LocalValues> ParseLocalValues(absl::string_view yaml);
// Errors: as ParseLocalValues, plus kNotFound when the file cannot be read.
absl::StatusOr<LocalValues> LoadLocalValues(const std::string& path);

// The container's environment as the kubelet builds it: literal values, then secretKeyRef and
// configMapKeyRef looked up in `values` (a missing optional reference leaves the variable
// unset), then `values.env`. Errors: kFailedPrecondition naming the variable, Secret/ConfigMap
// and key when a non-optional reference cannot be resolved (a pod would not start:
// CreateContainerConfigError).
absl::StatusOr<StringMap> ResolveContainerEnv(const Container& container,
                                              const LocalValues& values);

// Trigger metadata as KEDA sends it in scalerMetadata: `values.metadata` applied first, then
// each `<key>FromEnv: VAR` keeps its name and gets the value of VAR in `env`; a FromEnv key whose
// variable is not set is dropped (KEDA drops unresolvable ones).
StringMap ResolveTriggerMetadata(const StringMap& metadata, const StringMap& env,
                                 const LocalValues& values);

}  // namespace klag::local
