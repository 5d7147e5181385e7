// klag-local: runs a KEDA ScaledJob on this machine against a klag-scaler, for development.
// Options -> ScaledJob + local values -> client, runner, controller -> run; nothing else.
#include <grpcpp/grpcpp.h>
#include <signal.h>

#include <atomic>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/version.h"
#include "spdlog/spdlog.h"
#include "tools/local/controller.h"
#include "tools/local/pod_env.h"

namespace klag::local {
namespace {

constexpr char kSummary[] = R"(klag-local: run a KEDA ScaledJob locally against an external scaler

Reads a ScaledJob manifest, polls the scaler every pollingInterval exactly as KEDA does
(GetMetricSpec, then GetMetrics and IsActive per metric), applies KEDA's ScaledJob arithmetic
(min/max replicas, running and pending Jobs, multipleScalersCalculation, the default, custom,
accurate and eager strategies) and runs each Job's container command as local processes, with
parallelism, completions, backoffLimit, activeDeadlineSeconds (SIGTERM, then SIGKILL after
terminationGracePeriodSeconds) and the history limits. A development tool: production runs KEDA.

Usage:
  klag-local --scaledjob deploy/jobs/scaledjob.yaml --values local-values.yaml \
      --scaler-address 127.0.0.1:6000 --bin-dir build/job --polling-interval 2s

The values file gives what the cluster would (Secret and ConfigMap keys the template
references) and local overrides:
  secrets:    {klag-kafka-credentials: {sasl: none, tls: disable}}
  configMaps: {}
  env:        {KLAG_BOOTSTRAP_SERVERS: "127.0.0.1:9092"}   # the Job's environment
  metadata:   {bootstrapServers: "127.0.0.1:9092"}         # every trigger's metadata)";

struct Options {
  std::string scaledjob;
  std::string values;
  std::string scaler_address;
  std::string namespace_;
  std::string bin_dir;
  std::string job_logs;
  std::string events;
  absl::Duration polling_interval = absl::ZeroDuration();
  absl::Duration rpc_timeout = absl::Seconds(30);
  absl::Duration retry_backoff = absl::Seconds(10);
  absl::Duration max_duration = absl::ZeroDuration();
  absl::Duration stop_grace = absl::ZeroDuration();
  std::string log_format = "text";
  std::string log_level = "info";
  bool version = false;
};

void RegisterFlags(FlagSet& flags, Options& o) {
  flags.Bool("version", "", "print the version, git commit and gRPC version and exit", &o.version);
  flags.String("scaledjob", "KLAG_LOCAL_SCALEDJOB", "ScaledJob manifest (required)", &o.scaledjob);
  flags.String("values", "KLAG_LOCAL_VALUES",
               "local values file: secrets, configMaps, env, "
               "metadata",
               &o.values);
  flags.String("scaler-address", "KLAG_LOCAL_SCALER_ADDRESS",
               "host:port to dial instead of each trigger's scalerAddress (also sent as "
               "scalerAddress)",
               &o.scaler_address);
  flags.String("namespace", "KLAG_LOCAL_NAMESPACE",
               "namespace sent to the scaler (default: the manifest's, else \"default\"; "
               "Kustomize sets deploy/jobs' to data-load)",
               &o.namespace_);
  flags.String("bin-dir", "KLAG_LOCAL_BIN_DIR",
               "run <bin-dir>/<basename of the container command> instead of the command's "
               "path (e.g. build/job for /usr/local/bin/klag-job)",
               &o.bin_dir);
  flags.String("job-logs", "KLAG_LOCAL_JOB_LOGS",
               "directory for pod logs (<dir>/<job>/<pod>.log); empty: pods write to this "
               "terminal",
               &o.job_logs);
  flags.String("events", "KLAG_LOCAL_EVENTS",
               "append JSON lines (each poll's inputs and decision, each Job transition) here",
               &o.events);
  flags.Duration("polling-interval", "KLAG_LOCAL_POLLING_INTERVAL",
                 "override the manifest's pollingInterval (0: the manifest's)",
                 &o.polling_interval);
  flags.Duration("rpc-timeout", "KLAG_LOCAL_RPC_TIMEOUT",
                 "deadline of each scaler call (KEDA sets none for ScaledJobs)", &o.rpc_timeout);
  flags.Duration("retry-backoff", "KLAG_LOCAL_RETRY_BACKOFF",
                 "first back-off before replacing a failed pod (doubles; Kubernetes: 10s)",
                 &o.retry_backoff);
  flags.Duration("max-duration", "KLAG_LOCAL_MAX_DURATION",
                 "stop by itself after this long (0: run until SIGINT/SIGTERM)", &o.max_duration);
  flags.Duration("stop-grace", "KLAG_LOCAL_STOP_GRACE",
                 "on stop, how long pods get after SIGTERM (0: terminationGracePeriodSeconds)",
                 &o.stop_grace);
  flags.Choice("log-format", "KLAG_LOG_FORMAT", "log format on stderr", {"text", "json"},
               &o.log_format);
  flags.Choice("log-level", "KLAG_LOG_LEVEL", "log level",
               {"trace", "debug", "info", "warn", "error", "off"}, &o.log_level);
}

// SIGINT and SIGTERM: blocked in every thread from the start of Main(), awaited by one.
sigset_t StopSignals() {
  sigset_t set;
  sigemptyset(&set);
  sigaddset(&set, SIGTERM);
  sigaddset(&set, SIGINT);
  return set;
}

int Run(const Options& o) {
  if (o.scaledjob.empty()) {
    std::cerr << "klag-local: --scaledjob is required (see --help)\n";
    return 2;
  }
  absl::StatusOr<ScaledJob> sj = LoadScaledJob(o.scaledjob);
  if (!sj.ok()) {
    std::cerr << "klag-local: " << sj.status().message() << "\n";
    return 2;
  }
  if (!o.namespace_.empty()) sj->namespace_ = o.namespace_;
  LocalValues values;
  if (!o.values.empty()) {
    absl::StatusOr<LocalValues> loaded = LoadLocalValues(o.values);
    if (!loaded.ok()) {
      std::cerr << "klag-local: " << loaded.status().message() << "\n";
      return 2;
    }
    values = *std::move(loaded);
  }
  if (!o.scaler_address.empty()) values.metadata["scalerAddress"] = o.scaler_address;
  absl::StatusOr<StringMap> env = ResolveContainerEnv(sj->job.container, values);
  if (!env.ok()) {
    std::cerr << "klag-local: " << env.status().message() << "\n";
    return 2;
  }

  // Triggers: one ScalerRef each; all must be external and share one address.
  std::vector<ScalerRef> refs;
  std::string address;
  for (size_t i = 0; i < sj->triggers.size(); ++i) {
    const Trigger& t = sj->triggers[i];
    if (t.type != "external" && t.type != "external-push") {
      std::cerr << "klag-local: trigger " << i << " has type " << t.type
                << "; only external scalers can be polled locally\n";
      return 2;
    }
    ScalerRef ref{.name = sj->name,
                  .namespace_ = sj->namespace_,
                  .metadata = ResolveTriggerMetadata(t.metadata, *env, values)};
    const auto it = ref.metadata.find("scalerAddress");
    if (it == ref.metadata.end()) {
      std::cerr << "klag-local: trigger " << i << " has no scalerAddress\n";
      return 2;
    }
    if (!address.empty() && address != it->second) {
      std::cerr << "klag-local: triggers name different scalerAddress values; give "
                   "--scaler-address\n";
      return 2;
    }
    address = it->second;
    refs.push_back(std::move(ref));
  }

  const Container& c = sj->job.container;
  if (c.command.empty()) {
    std::cerr << "klag-local: the container has no command (the image's ENTRYPOINT is not "
                 "known locally): add command to the template\n";
    return 2;
  }
  JobRunnerOptions runner_options{
      .scaled_job_name = sj->name,
      .argv = c.command,
      .env = *env,
      .parallelism = sj->job.parallelism,
      .completions = sj->job.completions,
      .backoff_limit = sj->job.backoff_limit,
      .active_deadline = sj->job.active_deadline,
      .termination_grace = sj->job.termination_grace,
      .retry_backoff = o.retry_backoff,
      .log_dir = o.job_logs,
  };
  if (!o.bin_dir.empty()) {
    runner_options.argv[0] =
        (std::filesystem::path(o.bin_dir) / std::filesystem::path(c.command[0]).filename())
            .string();
  }
  runner_options.argv.insert(runner_options.argv.end(), c.args.begin(), c.args.end());
  // A local process needs PATH to find what it runs (an exec sink's command, for one).
  if (const char* path = std::getenv("PATH"); path != nullptr && !env->contains("PATH")) {
    runner_options.env["PATH"] = path;
  }

  absl::StatusOr<std::unique_ptr<GrpcScalerClient>> client =
      GrpcScalerClient::Create(address, o.rpc_timeout);
  if (!client.ok()) {
    std::cerr << "klag-local: " << client.status().message() << "\n";
    return 2;
  }
  std::FILE* events = nullptr;
  if (!o.events.empty()) {
    events = std::fopen(o.events.c_str(), "a");
    if (events == nullptr) {
      std::cerr << "klag-local: cannot open " << o.events << "\n";
      return 2;
    }
  }

  // Stop on SIGINT/SIGTERM (or after --max-duration): no new polls, pods get SIGTERM. The
  // signals are blocked in every thread since Main() started; this one waits for them.
  std::atomic<bool> stop{false};
  std::thread stopper([&] {
    int signal = 0;
    const sigset_t stop_signals = StopSignals();
    sigwait(&stop_signals, &signal);
    if (!stop.exchange(true)) spdlog::info("received {}, stopping", strsignal(signal));
  });
  stopper.detach();
  if (o.max_duration > absl::ZeroDuration()) {
    std::thread([&stop, d = o.max_duration] {
      std::this_thread::sleep_for(absl::ToChronoMilliseconds(d));
      if (!stop.exchange(true))
        spdlog::info("--max-duration {} reached, stopping", absl::FormatDuration(d));
    }).detach();
  }

  JobRunner runner(runner_options);
  Controller controller(
      *sj, refs, client->get(), &runner,
      ControllerOptions{.polling_interval = o.polling_interval > absl::ZeroDuration()
                                                ? std::optional(o.polling_interval)
                                                : std::nullopt,
                        .events = events});
  spdlog::info(
      "klag-local: ScaledJob {}/{}, {} trigger(s) via {}, polling every {}, strategy {}, "
      "min {} max {}, job: {}",
      sj->namespace_, sj->name, refs.size(), address,
      absl::FormatDuration(controller.polling_interval()),
      std::string(StrategyName(sj->scaling_strategy.strategy)), sj->min_replica_count,
      sj->max_replica_count.has_value() ? absl::StrCat(*sj->max_replica_count) : "unset",
      absl::StrJoin(runner_options.argv, " "));
  controller.Run(&stop);
  const absl::Duration grace =
      o.stop_grace > absl::ZeroDuration() ? o.stop_grace : sj->job.termination_grace;
  runner.StopAll(grace);
  if (events != nullptr) std::fclose(events);
  spdlog::info("klag-local stopped");
  return 0;
}

int Main(int argc, char** argv) {
  // Before any thread exists (gRPC starts its own): threads inherit the mask, so SIGINT/SIGTERM
  // reach only the sigwait in Run() instead of ending the process with pods left running.
  const sigset_t stop_signals = StopSignals();
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);
  Options options;
  FlagSet flags("klag-local", kSummary);
  RegisterFlags(flags, options);
  absl::StatusOr<std::vector<std::string>> args = flags.Parse(argc, argv, ProcessEnv());
  if (!args.ok()) {
    std::cerr << "klag-local: " << args.status().message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  // klag-local does not load librdkafka (it talks to the scaler over gRPC).
  const LibraryVersions libraries = {{"gRPC", grpc::Version()}};
  if (options.version) {
    std::cout << VersionText("klag-local", libraries);
    return 0;
  }
  if (!args->empty()) {
    std::cerr << "klag-local: unexpected argument \"" << (*args)[0] << "\" (see --help)\n";
    return 2;
  }
  LogOptions log_options{.level = options.log_level};
  if (absl::Status s = ParseLogFormat(options.log_format, &log_options.format);
      !s.ok() || !(s = ConfigureLogging(log_options)).ok()) {
    std::cerr << "klag-local: " << s.message() << "\n";
    return 2;
  }
  spdlog::info("{} starting", VersionLine("klag-local", libraries));
  return Run(options);
}

}  // namespace
}  // namespace klag::local

int main(int argc, char** argv) { return klag::local::Main(argc, argv); }
