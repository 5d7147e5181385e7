// klag-scaler: KEDA external scaler for Kafka consumer-group lag.
//
//   klag-scaler [serve] [--listen 0.0.0.0:6000] ...     serve KEDA's ExternalScaler over gRPC
//   klag-scaler check [flags] KEY=VALUE...               evaluate one trigger's metadata once
//
// Options -> wire objects -> serve; nothing else lives here.
#include <grpcpp/grpcpp.h>
#include <signal.h>
#include <spdlog/spdlog.h>

#include <iostream>
#include <thread>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "common/flags.h"
#include "common/logging.h"
#include "common/thread_name.h"
#include "common/version.h"
#include "kafka/cluster_registry.h"
#include "kafka/rdkafka_group_describe.h"
#include "kafka/rdkafka_offset_reader.h"
#include "kafka/rdkafka_record_time.h"
#include "kafka/rdkafka_version.h"
#include "scaler/metrics/metrics_exposer.h"
#include "scaler/metrics/scaler_metrics.h"
#include "scaler/service/check_report.h"
#include "scaler/service/evaluator.h"
#include "scaler/service/external_scaler_service.h"
#include "scaler/service/scaledjob_file.h"
#include "scaler/service/server.h"

namespace klag::scaler {
namespace {

constexpr char kSummary[] = R"(klag-scaler: KEDA external scaler for Kafka consumer-group lag

Usage:
  klag-scaler [serve] [options]           serve KEDA's externalscaler.ExternalScaler over gRPC
  klag-scaler check [options] KEY=VALUE   evaluate one trigger's metadata once and print, per
                                          partition, committed / log start / end / lag, what
                                          KEDA would receive, and the group's state and
                                          members (-o json: as JSON); a <key>FromEnv=VAR takes
                                          VAR from this environment, as KEDA takes it from the
                                          Job's
  klag-scaler check --scaledjob FILE [--trigger N] [--name NAME] [KEY=VALUE...]
                                          the same for a trigger of a ScaledJob/ScaledObject
                                          manifest; FromEnv from its container's literal env,
                                          else this environment; KEY=VALUE overrides metadata

Examples:
  klag-scaler check bootstrapServers=kafka:9092 consumerGroup=python_data_load \
      topic=ListedStockPrice lagThreshold=1
  klag-scaler check --scaledjob deploy/jobs/scaledjob.yaml bootstrapServers=127.0.0.1:9092)";

struct Options {
  ServerOptions server;
  std::string profiles_dir;
  std::string allowed_bootstrap_servers;  // comma-separated host:port patterns; empty: any
  std::string kerberos_keytab_dir;        // sasl gssapi: keytabs must be under it; empty: refused
  absl::Duration kafka_timeout = absl::Seconds(5);
  absl::Duration evaluation_window = absl::Seconds(2);
  absl::Duration evaluation_window_under_load = EvaluatorOptions{}.window_under_load;
  absl::Duration stream_poll_interval = absl::Seconds(10);
  absl::Duration metadata_max_age = absl::Seconds(30);
  absl::Duration end_offsets_max_age = absl::Seconds(1);
  int64_t lag_history_points = 32;
  absl::Duration committed_offsets_max_age = absl::ZeroDuration();
  std::string committed_offsets_source = "offset-fetch";
  int64_t offsets_topic_max_entries = kafka::RdkafkaOffsetReaderOptions{}.offsets_topic_max_entries;
  int64_t offsets_topic_max_entries_total = 1'000'000;
  absl::Duration client_idle_timeout = absl::Minutes(30);
  absl::Duration shutdown_grace = absl::Seconds(10);
  absl::Duration stats_interval = absl::ZeroDuration();
  int64_t max_threads = 1024;
  int64_t grpc_threads = 1;
  bool grpc_reflection = false;
  int64_t kafka_workers = KafkaExecutorOptions{}.workers;
  int64_t kafka_workers_per_cluster = KafkaExecutorOptions{}.workers_per_cluster;
  int64_t kafka_queue = KafkaExecutorOptions{}.max_queued;
  int64_t kafka_queue_per_cluster = KafkaExecutorOptions{}.max_queued_per_cluster;
  int64_t max_streams = ServiceOptions{}.max_streams;
  int64_t max_streams_per_namespace = ServiceOptions{}.max_streams_per_namespace;
  int64_t max_triggers = EvaluatorOptions{}.max_triggers;
  int64_t max_triggers_per_namespace = EvaluatorOptions{}.max_triggers_per_namespace;
  int64_t max_clusters = EvaluatorOptions{}.max_clusters;
  int64_t max_clusters_per_namespace = EvaluatorOptions{}.max_clusters_per_namespace;
  std::string log_format = "text";
  std::string log_level = "info";
  bool version = false;
  std::string output = "text";  // check: text or json
  std::string check_scaledjob;  // check: a ScaledJob/ScaledObject manifest to take the trigger from
  std::string check_trigger;    // check: index into its spec.triggers; empty: the only evaluable
  std::string check_name;       // check: the ScaledJob/ScaledObject's name; empty: the first
  std::string metrics_listen = "0.0.0.0:9022";
  int64_t metrics_max_series = 10000;
  absl::Duration metrics_series_ttl = absl::Minutes(10);
};

void RegisterFlags(FlagSet& flags, Options& o) {
  flags.Bool("version", "", "print the version, git commit, librdkafka and gRPC versions and exit",
             &o.version);
  flags.String("listen", "KLAG_LISTEN", "address to serve gRPC on", &o.server.listen);
  flags.Duration("kafka-timeout", "KLAG_KAFKA_TIMEOUT",
                 "deadline of the Kafka work of one evaluation (KEDA sets none for ScaledJobs)",
                 &o.kafka_timeout);
  flags.Duration("evaluation-window", "KLAG_EVALUATION_WINDOW",
                 "calls for the same trigger within this window share one evaluation",
                 &o.evaluation_window);
  flags.Duration("evaluation-window-under-load", "KLAG_EVALUATION_WINDOW_UNDER_LOAD",
                 "while a cluster's oldest evaluation waiting for a Kafka worker has waited "
                 "--evaluation-window or longer, calls for a trigger of it reuse its last "
                 "evaluation up to this old instead of queueing another (at most "
                 "--evaluation-window: off)",
                 &o.evaluation_window_under_load);
  flags.Duration("stream-poll-interval", "KLAG_STREAM_POLL_INTERVAL",
                 "how often an open StreamIsActive re-evaluates", &o.stream_poll_interval);
  flags.Duration("metadata-max-age", "KLAG_METADATA_MAX_AGE",
                 "how long topic metadata (partitions, leaders) is cached", &o.metadata_max_age);
  flags.Duration("end-offsets-max-age", "KLAG_END_OFFSETS_MAX_AGE",
                 "how old the end and log-start offsets behind an answer may be (shared by every "
                 "trigger on a topic; one ListOffsets per leader broker refreshes them); 0: read "
                 "them for every evaluation",
                 &o.end_offsets_max_age);
  flags.Duration("committed-offsets-max-age", "KLAG_COMMITTED_OFFSETS_MAX_AGE",
                 "how old the committed offsets behind an answer may be; above 0, triggers of one "
                 "group and topic share one OffsetFetch per this age (lag may then miss commits "
                 "that recent); 0: read them for every evaluation",
                 &o.committed_offsets_max_age);
  flags.String("committed-offsets-source", "KLAG_COMMITTED_OFFSETS_SOURCE",
               "where committed offsets come from: offset-fetch (an OffsetFetch to the group's "
               "coordinator per evaluation) or offsets-topic (one reader of __consumer_offsets "
               "per cluster, as Burrow does: no request per group, commits at most "
               "--end-offsets-max-age old; needs Describe and Read on that topic, falls back to "
               "offset-fetch while loading or when refused)",
               &o.committed_offsets_source);
  flags.Int("offsets-topic-max-entries", "KLAG_OFFSETS_TOPIC_MAX_ENTRIES",
            "offsets-topic: most (group, topic, partition) commits held per cluster (about 100 "
            "bytes each); a cluster with more falls back to offset-fetch",
            &o.offsets_topic_max_entries);
  flags.Int("offsets-topic-max-entries-total", "KLAG_OFFSETS_TOPIC_MAX_ENTRIES_TOTAL",
            "offsets-topic: most commits held by all clusters' readers together (the memory "
            "bound over every cluster a trigger may name); a cluster that would pass it falls "
            "back to offset-fetch",
            &o.offsets_topic_max_entries_total);
  flags.Int("lag-history-points", "KLAG_LAG_HISTORY_POINTS",
            "(end offset, time) points kept per partition for lag in seconds and "
            "activationLagSeconds (16 bytes each; a partition whose end never moves holds 2); 0: "
            "no lag in seconds",
            &o.lag_history_points);
  flags.Duration("client-idle-timeout", "KLAG_CLIENT_IDLE_TIMEOUT",
                 "Kafka clients and trigger state unused this long are dropped",
                 &o.client_idle_timeout);
  flags.String("profiles-dir", "KLAG_PROFILES_DIR",
               "directory of credential profiles for `authProfile: NAME` (<dir>/<NAME>/<key>)",
               &o.profiles_dir);
  flags.String("allowed-bootstrap-servers", "KLAG_ALLOWED_BOOTSTRAP_SERVERS",
               "comma-separated host:port patterns ('*' wildcards) of the Kafka clusters any "
               "trigger may make the scaler connect to (empty: any)",
               &o.allowed_bootstrap_servers);
  flags.String("kerberos-keytab-dir", "KLAG_KERBEROS_KEYTAB_DIR",
               "sasl gssapi: the directory every trigger's keytab must be under (absolute, "
               "normalised); without it, GSSAPI keytabs are refused",
               &o.kerberos_keytab_dir);
  flags.String("tls-cert", "KLAG_TLS_CERT", "PEM certificate: serve gRPC over TLS",
               &o.server.tls_cert_file);
  flags.String("tls-key", "KLAG_TLS_KEY", "PEM private key of --tls-cert", &o.server.tls_key_file);
  flags.String("tls-client-ca", "KLAG_TLS_CLIENT_CA",
               "PEM CA bundle: require client certificates signed by it (mutual TLS)",
               &o.server.tls_client_ca_file);
  flags.Duration("tls-reload-interval", "KLAG_TLS_RELOAD_INTERVAL",
                 "how often the --tls-* files are re-read (a rotated certificate is served "
                 "without a restart)",
                 &o.server.tls_reload_interval);
  flags.Int("grpc-threads", "KLAG_GRPC_THREADS",
            "threads that read and answer every gRPC call (1-64), one completion queue each; no "
            "call holds one while it waits for Kafka",
            &o.grpc_threads);
  flags.Bool("grpc-reflection", "KLAG_GRPC_REFLECTION",
             "serve gRPC server reflection (grpcurl without -proto); it runs gRPC's synchronous "
             "thread pool, which costs every poll CPU",
             &o.grpc_reflection);
  flags.Int("max-threads", "KLAG_MAX_THREADS",
            "upper bound on gRPC's synchronous-server threads, which only server reflection "
            "(--grpc-reflection) uses",
            &o.max_threads);
  flags.Int("kafka-workers", "KLAG_KAFKA_WORKERS",
            "threads that run the blocking Kafka reads of evaluations, over all clusters",
            &o.kafka_workers);
  flags.Int("kafka-workers-per-cluster", "KLAG_KAFKA_WORKERS_PER_CLUSTER",
            "at most this many of --kafka-workers on one cluster at a time, so a slow or "
            "unreachable cluster cannot hold them all",
            &o.kafka_workers_per_cluster);
  flags.Int("kafka-queue", "KLAG_KAFKA_QUEUE",
            "evaluations that may wait for a Kafka worker, over all clusters (more: "
            "RESOURCE_EXHAUSTED)",
            &o.kafka_queue);
  flags.Int("kafka-queue-per-cluster", "KLAG_KAFKA_QUEUE_PER_CLUSTER",
            "evaluations that may wait for a Kafka worker, per cluster (more: RESOURCE_EXHAUSTED)",
            &o.kafka_queue_per_cluster);
  flags.Int("max-streams", "KLAG_MAX_STREAMS",
            "open StreamIsActive streams, over all namespaces (more: RESOURCE_EXHAUSTED)",
            &o.max_streams);
  flags.Int("max-streams-per-namespace", "KLAG_MAX_STREAMS_PER_NAMESPACE",
            "open StreamIsActive streams per namespace (more: RESOURCE_EXHAUSTED)",
            &o.max_streams_per_namespace);
  flags.Int("max-triggers", "KLAG_MAX_TRIGGERS",
            "triggers whose state the scaler keeps, over all namespaces (a new one past it: "
            "RESOURCE_EXHAUSTED; state unused for --client-idle-timeout frees its slot)",
            &o.max_triggers);
  flags.Int("max-triggers-per-namespace", "KLAG_MAX_TRIGGERS_PER_NAMESPACE",
            "triggers whose state the scaler keeps, per namespace", &o.max_triggers_per_namespace);
  flags.Int("max-clusters", "KLAG_MAX_CLUSTERS",
            "distinct Kafka clusters (connection settings; one librdkafka client each) the "
            "triggers of all namespaces may name (a new one past it: RESOURCE_EXHAUSTED)",
            &o.max_clusters);
  flags.Int("max-clusters-per-namespace", "KLAG_MAX_CLUSTERS_PER_NAMESPACE",
            "distinct Kafka clusters the triggers of one namespace may name",
            &o.max_clusters_per_namespace);
  flags.Duration("shutdown-grace", "KLAG_SHUTDOWN_GRACE",
                 "on SIGTERM, how long running RPCs may take to finish", &o.shutdown_grace);
  flags.String("metrics-listen", "KLAG_METRICS_LISTEN",
               "address to serve Prometheus metrics on at /metrics over HTTP (empty: no metrics)",
               &o.metrics_listen);
  flags.Int("metrics-max-series", "KLAG_METRICS_MAX_SERIES",
            "upper bound on per-trigger plus per-partition metric series (the rest is counted in "
            "klag_metrics_series_dropped_total)",
            &o.metrics_max_series);
  flags.Duration("metrics-series-ttl", "KLAG_METRICS_SERIES_TTL",
                 "per-trigger and per-partition series not updated this long are removed",
                 &o.metrics_series_ttl);
  flags.Duration("stats-interval", "KLAG_STATS_INTERVAL",
                 "log evaluation and Kafka request counters this often (0: never)",
                 &o.stats_interval);
  flags.Choice("log-format", "KLAG_LOG_FORMAT", "log format on stderr", {"text", "json"},
               &o.log_format);
  flags.Choice("log-level", "KLAG_LOG_LEVEL", "log level",
               {"trace", "debug", "info", "warn", "error", "off"}, &o.log_level);
  flags.Choice("output", "", "check: what to print (-o is short for --output)", {"text", "json"},
               &o.output);
  flags.String("scaledjob", "",
               "check: take the trigger from this ScaledJob (or ScaledObject) YAML file",
               &o.check_scaledjob);
  flags.String("trigger", "",
               "check --scaledjob: index of the trigger in spec.triggers (default: the only "
               "external, external-push or kafka one)",
               &o.check_trigger);
  flags.String("name", "",
               "check --scaledjob: the ScaledJob/ScaledObject of this name in a multi-document "
               "file (default: the first)",
               &o.check_name);
}

LibraryVersions Libraries() {
  return {{"librdkafka", kafka::LibrdkafkaVersion()}, {"gRPC", grpc::Version()}};
}

// The one place that constructs real Kafka objects.
struct Wiring {
  explicit Wiring(const Options& o)
      : registry(
            [o, budget = std::make_shared<kafka::CommitBudget>(o.offsets_topic_max_entries_total)](
                const kafka::ConnectionConfig& config)
                -> absl::StatusOr<std::shared_ptr<kafka::OffsetReader>> {
              kafka::RdkafkaOffsetReaderOptions reader_options;
              reader_options.metadata_max_age = o.metadata_max_age;
              reader_options.end_offsets_max_age = o.end_offsets_max_age;
              reader_options.lag_history_points = static_cast<int>(o.lag_history_points);
              reader_options.committed_offsets_max_age = o.committed_offsets_max_age;
              reader_options.committed_offsets_source =
                  o.committed_offsets_source == "offsets-topic"
                      ? kafka::CommittedOffsetsSource::kOffsetsTopic
                      : kafka::CommittedOffsetsSource::kOffsetFetch;
              reader_options.offsets_topic_max_entries = o.offsets_topic_max_entries;
              reader_options.offsets_topic_budget = budget;
              absl::StatusOr<std::unique_ptr<kafka::RdkafkaOffsetReader>> reader =
                  kafka::RdkafkaOffsetReader::Create(config, reader_options);
              if (!reader.ok()) return reader.status();
              return std::shared_ptr<kafka::OffsetReader>(*std::move(reader));
            },
            o.client_idle_timeout),
        profiles(o.profiles_dir),
        metrics(std::make_shared<ScalerMetrics>(
            ScalerMetricsOptions{.max_series = o.metrics_max_series,
                                 .series_ttl = o.metrics_series_ttl},
            BuildInfo{.version = std::string(Version()),
                      .commit = std::string(GitCommit()),
                      .librdkafka = kafka::LibrdkafkaVersion()})),
        evaluator([this](const kafka::ConnectionConfig& c) { return registry.For(c); }, &profiles,
                  EvaluatorOptions{
                      .kafka_timeout = o.kafka_timeout,
                      .window = o.evaluation_window,
                      .window_under_load = o.evaluation_window_under_load,
                      .idle_ttl = o.client_idle_timeout,
                      .allowed_bootstrap_servers =
                          absl::StrSplit(o.allowed_bootstrap_servers, ',', absl::SkipWhitespace()),
                      .connection_policy = {.kerberos_keytab_dir = o.kerberos_keytab_dir},
                      .observer = metrics.get(),
                      .max_triggers = o.max_triggers,
                      .max_triggers_per_namespace = o.max_triggers_per_namespace,
                      .max_clusters = o.max_clusters,
                      .max_clusters_per_namespace = o.max_clusters_per_namespace,
                      .executor = {
                          .workers = static_cast<int>(o.kafka_workers),
                          .workers_per_cluster = static_cast<int>(o.kafka_workers_per_cluster),
                          .max_queued = static_cast<int>(o.kafka_queue),
                          .max_queued_per_cluster = static_cast<int>(o.kafka_queue_per_cluster)}}) {
    metrics->SetSources(MetricsSources{
        .evaluator = [this] { return evaluator.Stats(); },
        .kafka_clients = [this] { return static_cast<int64_t>(registry.Snapshot().size()); },
        .kafka_requests = [this] { return KafkaRequests(); },
        .offsets_topic = o.committed_offsets_source == "offsets-topic"
                             ? std::function<std::map<std::string, int64_t>()>(
                                   [this] { return OffsetsTopicCounts(); })
                             : nullptr});
  }

  // Calls `f` with the name and statistics of every librdkafka reader held now.
  template <typename F>
  void ForEachReader(F f) const {
    for (const auto& [cluster, reader] : registry.Snapshot()) {
      const auto* rdkafka = dynamic_cast<const kafka::RdkafkaOffsetReader*>(reader.get());
      if (rdkafka != nullptr) f(cluster, rdkafka->Stats());
    }
  }

  // Summed over the readers held now (a reader dropped for idleness takes its counts along).
  KafkaRequestCounts KafkaRequests() const {
    KafkaRequestCounts counts = {{"Metadata", 0}, {"ListOffsets", 0}, {"OffsetFetch", 0}};
    ForEachReader([&counts](const auto&, const kafka::RdkafkaOffsetReaderStats& r) {
      counts["Metadata"] += r.metadata_requests;
      counts["ListOffsets"] += r.list_offsets_calls;
      counts["OffsetFetch"] += r.offset_fetch_requests;
    });
    return counts;
  }

  std::map<std::string, int64_t> OffsetsTopicCounts() const {
    std::map<std::string, int64_t> counts = {{"answered", 0}, {"fallback", 0}, {"commits", 0}};
    ForEachReader([&counts](const auto&, const kafka::RdkafkaOffsetReaderStats& r) {
      counts["answered"] += r.offsets_topic_answers;
      counts["fallback"] += r.offsets_topic_fallbacks;
      counts["commits"] += r.offsets_topic_entries;
    });
    return counts;
  }

  kafka::ClusterRegistry registry;
  ProfileStore profiles;
  std::shared_ptr<ScalerMetrics> metrics;
  Evaluator evaluator;
};

// One line for the evaluator, one per cluster: the scaler's own counters (cumulative since
// start), so Kafka requests per poll cycle can be read off two lines.
void LogStats(Wiring& wiring) {
  const EvaluatorStats e = wiring.evaluator.Stats();
  spdlog::info(
      "stats evaluator: triggers={} evaluations={} reused={} joined={} failures={} rejected={} "
      "expired={} queued={} running={}",
      e.triggers, e.evaluations, e.reused, e.joined, e.failures, e.rejected, e.expired, e.queued,
      e.running);
  wiring.ForEachReader([](const auto& cluster, const kafka::RdkafkaOffsetReaderStats& r) {
    spdlog::info(
        "stats cluster {}: read_offsets={} metadata_requests={} list_offsets_calls={} "
        "list_offsets_lookups={} offset_fetch_requests={} offsets_topic_answers={} "
        "offsets_topic_fallbacks={} offsets_topic_commits={} broker_requests={} clients={}",
        cluster, r.read_offsets_calls, r.metadata_requests, r.list_offsets_calls,
        r.list_offsets_lookups, r.offset_fetch_requests, r.offsets_topic_answers,
        r.offsets_topic_fallbacks, r.offsets_topic_entries, r.broker_requests, r.clients);
  });
}

int Check(const Options& options, const std::vector<std::string>& args) {
  TriggerRef ref{.name = "check", .namespace_ = "cli"};
  EnvLookup env = ProcessEnv();
  CheckContext context;
  if (!options.check_scaledjob.empty()) {
    ManifestSelection selection{.name = options.check_name};
    if (!options.check_trigger.empty()) {
      size_t index = 0;
      if (!absl::SimpleAtoi(options.check_trigger, &index)) {
        std::cerr << "klag-scaler check: --trigger takes an index into spec.triggers, got \""
                  << options.check_trigger << "\"\n";
        return 2;
      }
      selection.trigger_index = index;
    }
    // The path comes from the operator running check on their own machine.
    absl::StatusOr<ManifestTrigger> trigger =
        LoadManifestTrigger(options.check_scaledjob, selection);
    if (!trigger.ok()) {
      std::cerr << "klag-scaler check: " << trigger.status().message() << "\n";
      return 2;
    }
    ref.metadata = trigger->metadata;
    // The manifest's name and namespace, as KEDA would send them (a profile's allowedNamespaces
    // is checked against the namespace).
    if (!trigger->name.empty()) ref.name = trigger->name;
    if (!trigger->namespace_.empty()) ref.namespace_ = trigger->namespace_;
    context.source = absl::StrCat(
        trigger->kind, " ", trigger->name, ", trigger ", trigger->index, " (", trigger->type,
        trigger->trigger_name.empty() ? "" : absl::StrCat(" ", trigger->trigger_name), ") in ",
        options.check_scaledjob,
        trigger->env_source.empty() ? "" : absl::StrCat("; env of ", trigger->env_source));
    context.notes = trigger->notes;
    env = ManifestEnv(*trigger, ProcessEnv());
  } else if (!options.check_trigger.empty() || !options.check_name.empty()) {
    std::cerr << "klag-scaler check: --trigger and --name choose within --scaledjob FILE\n";
    return 2;
  }
  // KEY=VALUE arguments: the metadata, or overrides of the manifest's (e.g. a port-forwarded
  // bootstrapServers, or what a TriggerAuthentication would add).
  for (const std::string& arg : args) {
    std::pair<std::string, std::string> kv = absl::StrSplit(arg, absl::MaxSplits('=', 1));
    if (arg.find('=') == std::string::npos || kv.first.empty()) {
      std::cerr << "klag-scaler check: expected KEY=VALUE, got \"" << arg << "\"\n";
      return 2;
    }
    ref.metadata[kv.first] = kv.second;
  }
  if (ref.metadata.empty()) {
    std::cerr << "klag-scaler check: give the trigger's metadata as KEY=VALUE arguments, or "
                 "--scaledjob FILE\n";
    return 2;
  }
  if (absl::Status s = ResolveFromEnv(env, &ref.metadata); !s.ok()) {
    std::cerr << "klag-scaler check: " << s.message() << "\n";
    return 2;
  }
  Wiring wiring(options);
  absl::StatusOr<std::shared_ptr<const Evaluation>> evaluation =
      wiring.evaluator.Evaluate(std::move(ref));
  if (!evaluation.ok()) {
    std::cerr << "klag-scaler check: " << evaluation.status().ToString() << "\n";
    return 1;
  }
  // The group as its coordinator sees it (a client of its own, gone when this returns).
  const TriggerSpec& spec = *(*evaluation)->trigger.spec;
  context.group = kafka::DescribeGroup(spec.connection, spec.consumer_group,
                                       absl::Now() + options.kafka_timeout);
  // The record at each lagging partition's first unconsumed offset: its timestamp is the exact
  // age of the oldest record the group has not processed (an evaluation from one read can only
  // bound it).
  std::vector<kafka::RecordAt> at;
  for (const PartitionLag& p : (*evaluation)->report.partitions) {
    if (p.lag <= 0) continue;
    at.push_back({p.topic, p.partition,
                  p.committed.has_value() ? std::max(*p.committed, p.log_start) : p.log_start});
  }
  context.records_read_at = absl::Now();
  absl::StatusOr<std::vector<std::optional<kafka::RecordTimestamp>>> records =
      kafka::ReadRecordTimestamps(spec.connection, at, spec.isolation_level,
                                  absl::Now() + options.kafka_timeout);
  if (records.ok()) {
    std::map<kafka::TopicPartition, kafka::RecordTimestamp> found;
    for (size_t i = 0; i < at.size(); ++i) {
      if ((*records)[i].has_value()) found[{at[i].topic, at[i].partition}] = *(*records)[i];
    }
    context.oldest_records = std::move(found);
  } else {
    context.oldest_records = records.status();
  }
  std::cout << (options.output == "json" ? FormatCheckReportJson(**evaluation, context)
                                         : FormatCheckReport(**evaluation, context));
  return 0;
}

int Serve(const Options& options) {
  // Block the stop signals in every thread gRPC and librdkafka start; one thread waits for them.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  spdlog::info("{} starting", VersionLine("klag-scaler", Libraries()));
  Wiring wiring(options);
  ExternalScalerService service(
      &wiring.evaluator,
      ServiceOptions{.stream_poll_interval = options.stream_poll_interval,
                     .max_streams = options.max_streams,
                     .max_streams_per_namespace = options.max_streams_per_namespace,
                     .observer = wiring.metrics.get()});
  std::unique_ptr<MetricsExposer> metrics_exposer;
  if (!options.metrics_listen.empty()) {
    absl::StatusOr<std::unique_ptr<MetricsExposer>> exposer =
        MetricsExposer::Start(options.metrics_listen, wiring.metrics);
    if (!exposer.ok() && exposer.status().code() == absl::StatusCode::kInvalidArgument) {
      spdlog::critical("{}", exposer.status().ToString());
      return 2;
    }
    if (!exposer.ok()) {
      // Metrics are for watching; scaling goes on without them (a taken port, e.g. a second
      // scaler on one host). Prometheus sees the target down.
      spdlog::error("{}; serving without metrics", exposer.status().ToString());
    } else {
      metrics_exposer = *std::move(exposer);
      spdlog::info("klag-scaler serving Prometheus metrics on http://{}/metrics (port {})",
                   options.metrics_listen, metrics_exposer->port());
    }
  }
  ServerOptions server_options = options.server;
  server_options.max_threads = static_cast<int>(options.max_threads);
  server_options.threads = static_cast<int>(options.grpc_threads);
  server_options.reflection = options.grpc_reflection;
  absl::StatusOr<std::unique_ptr<ScalerServer>> server =
      ScalerServer::Start(server_options, &service);
  if (!server.ok()) {
    spdlog::critical("{}", server.status().ToString());
    return 1;
  }
  spdlog::info("klag-scaler serving externalscaler.ExternalScaler on {} (port {}){}",
               options.server.listen, (*server)->port(),
               options.server.tls_cert_file.empty() ? "" : " with TLS");
  absl::Notification stopping;
  std::thread stats_logger([&] {
    NameThisThread("klag-stats-log");
    if (options.stats_interval <= absl::ZeroDuration()) return;
    while (!stopping.WaitForNotificationWithTimeout(options.stats_interval)) {
      LogStats(wiring);
    }
  });
  std::thread stopper([&] {
    NameThisThread("klag-signals");
    int signal = 0;
    sigwait(&stop_signals, &signal);
    spdlog::info("received {}, shutting down (grace {})", strsignal(signal),
                 absl::FormatDuration(options.shutdown_grace));
    (*server)->Shutdown(options.shutdown_grace);
  });
  (*server)->Wait();
  stopping.Notify();
  stopper.join();
  stats_logger.join();
  if (options.stats_interval > absl::ZeroDuration()) LogStats(wiring);
  spdlog::info("klag-scaler stopped");
  return 0;
}

int Main(int argc, char** argv) {
  // Debian builds Abseil without NDEBUG, so every absl::Mutex (gRPC's included) maintains a lock
  // graph for deadlock detection: about 6% of the scaler's CPU under load (perf, bench/README.md).
  // A debugging aid: the tests keep it; the served binary does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  Options options;
  FlagSet flags("klag-scaler", kSummary);
  RegisterFlags(flags, options);
  // -o is --output's short form (kubectl's and kcat's habit).
  std::vector<std::string> argv_list(argv + 1, argv + argc);
  for (std::string& a : argv_list) {
    if (a == "-o") a = "--output";
    if (absl::StartsWith(a, "-o") && a.size() > 2 && a[2] != '-') a = "--output=" + a.substr(2);
  }
  absl::StatusOr<std::vector<std::string>> args = flags.Parse(argv_list, ProcessEnv());
  if (!args.ok()) {
    std::cerr << "klag-scaler: " << args.status().message() << "\n";
    return 2;
  }
  if (flags.help_requested()) {
    std::cout << flags.Usage();
    return 0;
  }
  if (options.version) {
    std::cout << VersionText("klag-scaler", Libraries());
    return 0;
  }
  LogOptions log_options{.level = options.log_level};
  if (absl::Status s = ParseLogFormat(options.log_format, &log_options.format);
      !s.ok() || !(s = ConfigureLogging(log_options)).ok()) {
    std::cerr << "klag-scaler: " << s.message() << "\n";
    return 2;
  }
  if (absl::Status s = kafka::CheckLibrdkafkaVersion(); !s.ok()) {
    spdlog::critical("{}", std::string(s.message()));
    return 1;
  }
  if (options.grpc_threads < 1 || options.grpc_threads > ServerOptions::kMaxThreads) {
    std::cerr << "klag-scaler: --grpc-threads must be between 1 and " << ServerOptions::kMaxThreads
              << ", got " << options.grpc_threads << "\n";
    return 2;
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, int64_t>{"--kafka-workers", options.kafka_workers},
        {"--kafka-workers-per-cluster", options.kafka_workers_per_cluster},
        {"--kafka-queue", options.kafka_queue},
        {"--kafka-queue-per-cluster", options.kafka_queue_per_cluster},
        {"--max-streams", options.max_streams},
        {"--max-streams-per-namespace", options.max_streams_per_namespace},
        {"--max-clusters", options.max_clusters},
        {"--max-clusters-per-namespace", options.max_clusters_per_namespace}}) {
    if (value < 1 || value > 1'000'000) {
      std::cerr << "klag-scaler: " << flag << " must be between 1 and 1000000, got " << value
                << "\n";
      return 2;
    }
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, int64_t>{"--max-triggers", options.max_triggers},
        {"--max-triggers-per-namespace", options.max_triggers_per_namespace}}) {
    if (value < 1 || value > 100'000'000) {
      std::cerr << "klag-scaler: " << flag << " must be between 1 and 100000000, got " << value
                << "\n";
      return 2;
    }
  }
  if (options.committed_offsets_source != "offset-fetch" &&
      options.committed_offsets_source != "offsets-topic") {
    std::cerr << "klag-scaler: --committed-offsets-source must be offset-fetch or offsets-topic, "
                 "got \""
              << options.committed_offsets_source << "\"\n";
    return 2;
  }
  for (const auto& [flag, value] :
       {std::pair<const char*, int64_t>{"--offsets-topic-max-entries",
                                        options.offsets_topic_max_entries},
        {"--offsets-topic-max-entries-total", options.offsets_topic_max_entries_total}}) {
    if (value < 1 || value > 100'000'000) {
      std::cerr << "klag-scaler: " << flag << " must be between 1 and 100000000, got " << value
                << "\n";
      return 2;
    }
  }
  if (options.lag_history_points < 0 || options.lag_history_points > 10'000) {
    std::cerr << "klag-scaler: --lag-history-points must be between 0 and 10000, got "
              << options.lag_history_points << "\n";
    return 2;
  }
  if (absl::Status s = kafka::ValidateKerberosKeytabDir(options.kerberos_keytab_dir); !s.ok()) {
    std::cerr << "klag-scaler: " << s.message() << "\n";
    return 2;
  }
  std::vector<std::string> rest = *std::move(args);
  std::string command = "serve";
  if (!rest.empty() && (rest[0] == "serve" || rest[0] == "check")) {
    command = rest[0];
    rest.erase(rest.begin());
  }
  if (command == "check") return Check(options, rest);
  if (!rest.empty()) {
    std::cerr << "klag-scaler: unexpected argument \"" << rest[0] << "\" (see --help)\n";
    return 2;
  }
  return Serve(options);
}

}  // namespace
}  // namespace klag::scaler

int main(int argc, char** argv) { return klag::scaler::Main(argc, argv); }
