#include "job/run.h"

#include <algorithm>
#include <cstdio>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "job/dead_letter.h"
#include "job/delivery.h"
#include "job/drain.h"
#include "job/exec_sink.h"
#include "job/jsonl_sink.h"
#include "job/no_work.h"
#include "job/postgres_sink.h"
#include "job/rdkafka_consumer.h"
#include "job/rdkafka_producer.h"
#include "job/summary.h"
#include "kafka/rdkafka_offset_reader.h"
#include "spdlog/spdlog.h"

namespace klag::job {
namespace {

absl::StatusOr<std::unique_ptr<Sink>> MakeSink(const JobOptions& o) {
  switch (o.sink) {
    case SinkKind::kJsonl: {
      absl::StatusOr<std::unique_ptr<JsonlSink>> sink = JsonlSink::Create(o.jsonl_path);
      if (!sink.ok()) return sink.status();
      return std::unique_ptr<Sink>(std::move(*sink));
    }
    case SinkKind::kExec:
      return std::unique_ptr<Sink>(std::make_unique<ExecSink>(
          ExecSinkOptions{o.exec_command, o.exec_timeout, o.exec_pass_env}));
    case SinkKind::kPostgres: {
      absl::StatusOr<std::unique_ptr<PostgresSink>> sink =
          PostgresSink::Create({.uri = o.postgres_uri,
                                .table = o.postgres_table,
                                .conflict_on_key = o.postgres_conflict_key == "key",
                                .connect_timeout = o.kafka_timeout,
                                .connections = o.postgres_connections});
      if (!sink.ok()) return sink.status();
      return std::unique_ptr<Sink>(std::move(*sink));
    }
  }
  return absl::InternalError("unknown sink");
}

RunOutcome Finish(const JobOptions& o, DrainReport report, absl::Time start) {
  if (report.duration == absl::ZeroDuration()) report.duration = absl::Now() - start;
  if (!report.error.ok()) spdlog::error("klag-job failed: {}", std::string(report.error.message()));
  spdlog::info("klag-job done: {} ({} records in {})", std::string(ExitReasonName(report.reason)),
               report.records, absl::FormatDuration(report.duration));
  spdlog::default_logger()->flush();
  const std::string line = SummaryJson(report, o.group) + "\n";
  std::FILE* out = o.SummaryOnStderr() ? stderr : stdout;
  std::fputs(line.c_str(), out);
  std::fflush(out);
  return {.exit_code = ExitCode(report.reason)};
}

DrainReport Failed(absl::Status error) {
  DrainReport r;
  r.reason = ExitReason::kFailed;
  r.error = std::move(error);
  return r;
}

}  // namespace

RunOutcome RunJob(const JobOptions& o, const std::atomic<bool>& stop) {
  const absl::Time start = absl::Now();
  absl::StatusOr<kafka::RdkafkaProperties> connection = kafka::ToRdkafkaProperties(o.connection);
  if (!connection.ok()) return Finish(o, Failed(connection.status()), start);

  // Destroys the no-work check's client on its own thread while the Job joins the group:
  // rd_kafka_destroy waits for the client's broker threads, 0.2-1.2 s between "has lag" and
  // "joining group" in the logs of 300,000-record drains. Joined before RunJob returns.
  std::thread reader_teardown;
  struct JoinAtExit {
    std::thread& t;
    ~JoinAtExit() {
      if (t.joinable()) t.join();
    }
  } join_reader_teardown{reader_teardown};

  if (o.no_work_check) {
    absl::StatusOr<std::unique_ptr<kafka::RdkafkaOffsetReader>> reader =
        kafka::RdkafkaOffsetReader::Create(o.connection,
                                           {.client_id = "klag-job",
                                            .list_offsets_window = absl::ZeroDuration(),
                                            .lag_history_points = 0,  // one read: no history
                                            .extra_properties = o.kafka_properties});
    if (!reader.ok()) return Finish(o, Failed(reader.status()), start);
    absl::StatusOr<int64_t> lag = MeasureLag(**reader, o.group, o.topics, o.isolation, o.reset,
                                             absl::Now() + o.kafka_timeout);
    if (!lag.ok()) {
      return Finish(o,
                    Failed(absl::Status(lag.status().code(),
                                        absl::StrCat("no-work check (committed vs end offsets "
                                                     "of group ",
                                                     o.group, "): ", lag.status().message()))),
                    start);
    }
    if (*lag == 0) {
      spdlog::info("no lag for group {} on {}: nothing to do, not joining", o.group,
                   absl::StrJoin(o.topics, ","));
      DrainReport r;
      r.reason = ExitReason::kNoWork;
      RunOutcome outcome = Finish(o, r, start);
      // The reader never joined the group and has nothing to flush or commit, so its client is
      // left running rather than destroyed: rd_kafka_destroy waits for its broker threads, which
      // took 190-200 ms of a 230 ms no-work run (strace -f: the summary written at +10 ms, the
      // last broker thread gone at +205 ms) and up to a second when a broker connection was
      // still being set up. The caller ends the process.
      (void)reader->release();
      outcome.end_process_now = true;
      return outcome;
    }
    spdlog::info("group {} has {} records of lag: joining", o.group, *lag);
    reader_teardown = std::thread([r = std::move(*reader)]() mutable { r.reset(); });
  }

  absl::StatusOr<std::unique_ptr<Sink>> sink = MakeSink(o);
  if (!sink.ok()) return Finish(o, Failed(sink.status()), start);

  std::unique_ptr<RdkafkaProducer> producer;
  std::unique_ptr<KafkaDeadLetterQueue> dead_letters;
  if (o.delivery.on_poison == PoisonPolicy::kDeadLetter) {
    absl::StatusOr<std::unique_ptr<RdkafkaProducer>> p =
        RdkafkaProducer::Create({.connection = *connection, .client_id = "klag-job-dead-letters"});
    if (!p.ok()) return Finish(o, Failed(p.status()), start);
    producer = std::move(*p);
    dead_letters =
        std::make_unique<KafkaDeadLetterQueue>(*producer, o.dead_letter_topic, o.kafka_timeout);
  }

  absl::StatusOr<std::unique_ptr<RdkafkaConsumer>> consumer =
      RdkafkaConsumer::Create({.connection = *connection,
                               .group = o.group,
                               .isolation = o.isolation,
                               .reset = o.reset,
                               .kafka_timeout = o.kafka_timeout,
                               .session_timeout = o.session_timeout,
                               .group_protocol = o.group_protocol,
                               .max_poll_interval = MaxPollInterval(o),
                               .extra = o.kafka_properties});
  if (!consumer.ok()) return Finish(o, Failed(consumer.status()), start);

  Delivery delivery(**sink, dead_letters.get(), o.delivery, InterruptibleSleeper(stop));
  Drainer drainer(**consumer, delivery, stop, o.drain);
  DrainReport report = drainer.Run();
  consumer->reset();
  report.duration = absl::Now() - start;
  return Finish(o, std::move(report), start);
}

}  // namespace klag::job
