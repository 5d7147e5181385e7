// End and log-start offsets two ways, on a real broker, side by side in one run:
//
//   A. rd_kafka_offsets_for_times with RD_KAFKA_OFFSET_END / RD_KAFKA_OFFSET_BEGINNING as the
//      timestamps (what kafka::RdkafkaOffsetReader does; works on every librdkafka);
//   B. the admin rd_kafka_ListOffsets (librdkafka >= 2.3) with OffsetSpec latest / earliest.
//
// Both send one ListOffsets request per leader broker per offset kind. The question (issue "Work
// with current Kafka") is whether B answers as well or better than A: same offsets, and its
// latency and CPU. Prints a table; exits 1 when the two disagree on any offset.
//
//   klag_list_offsets_bench --bootstrap 127.0.0.1:9092 [--topics 20] [--partitions 12]
//                           [--rounds 200]
#include <librdkafka/rdkafka.h>
#include <sys/resource.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "kafka/rdkafka_handle.h"

namespace {

using klag::kafka::rdkafka::AdminOptionsPtr;
using klag::kafka::rdkafka::EventPtr;
using klag::kafka::rdkafka::HandlePtr;
using klag::kafka::rdkafka::PartitionListPtr;
using klag::kafka::rdkafka::QueuePtr;

using Offsets = std::map<std::pair<std::string, int>, int64_t>;

[[noreturn]] void Die(const std::string& what) {
  std::fprintf(stderr, "list_offsets_bench: %s\n", what.c_str());
  std::exit(2);
}

HandlePtr Client(const std::string& bootstrap, rd_kafka_type_t type) {
  absl::StatusOr<HandlePtr> rk = klag::kafka::rdkafka::NewHandle(
      type, {{"bootstrap.servers", bootstrap}, {"client.id", "klag-list-offsets-bench"}});
  if (!rk.ok()) Die(std::string(rk.status().message()));
  return *std::move(rk);
}

double CpuSeconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) +
         static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec) / 1e6;
}

void CreateTopics(rd_kafka_t* rk, const std::vector<std::string>& topics, int partitions) {
  std::vector<rd_kafka_NewTopic_t*> new_topics;
  char err[512];
  for (const std::string& t : topics) {
    new_topics.push_back(rd_kafka_NewTopic_new(t.c_str(), partitions, 1, err, sizeof(err)));
  }
  QueuePtr queue(rd_kafka_queue_new(rk));
  rd_kafka_CreateTopics(rk, new_topics.data(), new_topics.size(), nullptr, queue.get());
  EventPtr event(rd_kafka_queue_poll(queue.get(), 30000));
  if (!event || rd_kafka_event_error(event.get())) Die("CreateTopics failed");
  size_t n = 0;
  const rd_kafka_topic_result_t** results =
      rd_kafka_CreateTopics_result_topics(rd_kafka_event_CreateTopics_result(event.get()), &n);
  for (size_t i = 0; i < n; ++i) {
    if (rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_NO_ERROR &&
        rd_kafka_topic_result_error(results[i]) != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
      Die(absl::StrCat("CreateTopics: ", rd_kafka_topic_result_error_string(results[i])));
    }
  }
  for (rd_kafka_NewTopic_t* t : new_topics) rd_kafka_NewTopic_destroy(t);
}

// A few records in every partition, so end and log start differ per partition.
void Produce(const std::string& bootstrap, const std::vector<std::string>& topics, int partitions) {
  HandlePtr producer = Client(bootstrap, RD_KAFKA_PRODUCER);
  for (const std::string& t : topics) {
    for (int p = 0; p < partitions; ++p) {
      for (int i = 0; i <= p % 5; ++i) {
        while (rd_kafka_producev(producer.get(), RD_KAFKA_V_TOPIC(t.c_str()),
                                 RD_KAFKA_V_PARTITION(p),
                                 RD_KAFKA_V_VALUE(const_cast<char*>("x"), 1),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                 RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL) {
          rd_kafka_poll(producer.get(), 10);
        }
      }
    }
  }
  if (rd_kafka_flush(producer.get(), 30000) != RD_KAFKA_RESP_ERR_NO_ERROR) Die("flush failed");
}

PartitionListPtr AllPartitions(const std::vector<std::string>& topics, int partitions,
                               int64_t offset) {
  PartitionListPtr list(
      rd_kafka_topic_partition_list_new(static_cast<int>(topics.size()) * partitions));
  for (const std::string& t : topics) {
    for (int p = 0; p < partitions; ++p) {
      rd_kafka_topic_partition_list_add(list.get(), t.c_str(), p)->offset = offset;
    }
  }
  return list;
}

Offsets ViaOffsetsForTimes(rd_kafka_t* rk, const std::vector<std::string>& topics, int partitions,
                           int64_t which) {
  PartitionListPtr list = AllPartitions(topics, partitions, which);
  if (rd_kafka_resp_err_t err = rd_kafka_offsets_for_times(rk, list.get(), 10000); err) {
    Die(absl::StrCat("offsets_for_times: ", rd_kafka_err2str(err)));
  }
  Offsets out;
  for (int i = 0; i < list->cnt; ++i) {
    const rd_kafka_topic_partition_t& tp = list->elems[i];
    if (tp.err) Die(absl::StrCat("offsets_for_times: ", rd_kafka_err2str(tp.err)));
    out[{tp.topic, tp.partition}] = tp.offset;
  }
  return out;
}

Offsets ViaAdminListOffsets(rd_kafka_t* rk, rd_kafka_queue_t* queue,
                            const std::vector<std::string>& topics, int partitions,
                            rd_kafka_OffsetSpec_t spec) {
  PartitionListPtr list = AllPartitions(topics, partitions, spec);
  AdminOptionsPtr options(rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_LISTOFFSETS));
  rd_kafka_error_t* e = rd_kafka_AdminOptions_set_isolation_level(
      options.get(), RD_KAFKA_ISOLATION_LEVEL_READ_UNCOMMITTED);
  if (e) Die(rd_kafka_error_string(e));
  rd_kafka_ListOffsets(rk, list.get(), options.get(), queue);
  EventPtr event(rd_kafka_queue_poll(queue, 10000));
  if (!event) Die("ListOffsets: no result");
  if (rd_kafka_event_error(event.get())) {
    Die(absl::StrCat("ListOffsets: ", rd_kafka_event_error_string(event.get())));
  }
  size_t n = 0;
  const rd_kafka_ListOffsetsResultInfo_t** infos =
      rd_kafka_ListOffsets_result_infos(rd_kafka_event_ListOffsets_result(event.get()), &n);
  Offsets out;
  for (size_t i = 0; i < n; ++i) {
    const rd_kafka_topic_partition_t* tp = rd_kafka_ListOffsetsResultInfo_topic_partition(infos[i]);
    if (tp->err) Die(absl::StrCat("ListOffsets: ", rd_kafka_err2str(tp->err)));
    out[{tp->topic, tp->partition}] = tp->offset;
  }
  return out;
}

struct Result {
  std::vector<double> ms;
  double cpu_s = 0;
};

double Percentile(std::vector<double> v, double q) {
  std::sort(v.begin(), v.end());
  return v[std::min(v.size() - 1, static_cast<size_t>(q * static_cast<double>(v.size())))];
}

}  // namespace

int main(int argc, char** argv) {
  std::string bootstrap;
  int topics_n = 20, partitions = 12, rounds = 200;
  for (int i = 1; i + 1 < argc; i += 2) {
    std::string flag = argv[i];
    int* target = flag == "--topics"       ? &topics_n
                  : flag == "--partitions" ? &partitions
                  : flag == "--rounds"     ? &rounds
                                           : nullptr;
    if (flag == "--bootstrap") {
      bootstrap = argv[i + 1];
    } else if (target == nullptr || !absl::SimpleAtoi(argv[i + 1], target) || *target <= 0) {
      Die(absl::StrCat("bad flag ", flag, " ", argv[i + 1]));
    }
  }
  if (bootstrap.empty()) Die("--bootstrap HOST:PORT is required");

  std::vector<std::string> topics;
  const std::string run = absl::StrCat(absl::ToUnixMillis(absl::Now()));
  for (int i = 0; i < topics_n; ++i) topics.push_back(absl::StrCat("lob-", run, "-", i));
  HandlePtr admin = Client(bootstrap, RD_KAFKA_PRODUCER);
  CreateTopics(admin.get(), topics, partitions);
  Produce(bootstrap, topics, partitions);

  // One client each, as a long-lived reader would have; both warmed up (metadata, connection).
  HandlePtr consumer = Client(bootstrap, RD_KAFKA_CONSUMER);
  HandlePtr admin_client = Client(bootstrap, RD_KAFKA_PRODUCER);
  QueuePtr queue(rd_kafka_queue_new(admin_client.get()));
  const Offsets a_end = ViaOffsetsForTimes(consumer.get(), topics, partitions, RD_KAFKA_OFFSET_END);
  const Offsets a_start =
      ViaOffsetsForTimes(consumer.get(), topics, partitions, RD_KAFKA_OFFSET_BEGINNING);
  const Offsets b_end = ViaAdminListOffsets(admin_client.get(), queue.get(), topics, partitions,
                                            RD_KAFKA_OFFSET_SPEC_LATEST);
  const Offsets b_start = ViaAdminListOffsets(admin_client.get(), queue.get(), topics, partitions,
                                              RD_KAFKA_OFFSET_SPEC_EARLIEST);
  if (a_end != b_end || a_start != b_start) {
    std::fprintf(stderr, "list_offsets_bench: the two methods disagree\n");
    return 1;
  }

  // Alternate A and B round by round, so machine noise hits both alike.
  Result a, b;
  for (int r = 0; r < rounds; ++r) {
    for (int which = 0; which < 2; ++which) {
      Result& res = (r + which) % 2 == 0 ? a : b;
      const bool is_a = &res == &a;
      const double cpu0 = CpuSeconds();
      const absl::Time t0 = absl::Now();
      Offsets end, start;
      if (is_a) {
        end = ViaOffsetsForTimes(consumer.get(), topics, partitions, RD_KAFKA_OFFSET_END);
        start = ViaOffsetsForTimes(consumer.get(), topics, partitions, RD_KAFKA_OFFSET_BEGINNING);
      } else {
        end = ViaAdminListOffsets(admin_client.get(), queue.get(), topics, partitions,
                                  RD_KAFKA_OFFSET_SPEC_LATEST);
        start = ViaAdminListOffsets(admin_client.get(), queue.get(), topics, partitions,
                                    RD_KAFKA_OFFSET_SPEC_EARLIEST);
      }
      res.ms.push_back(absl::ToDoubleMilliseconds(absl::Now() - t0));
      res.cpu_s += CpuSeconds() - cpu0;
      if (end != a_end || start != a_start) {
        std::fprintf(stderr, "list_offsets_bench: round %d: offsets changed\n", r);
        return 1;
      }
    }
  }

  std::printf("librdkafka %s; %d topics x %d partitions; %d rounds (end + log start per round)\n\n",
              rd_kafka_version_str(), topics_n, partitions, rounds);
  std::printf("| method | p50 ms | p99 ms | CPU ms per round (process) |\n|---|---|---|---|\n");
  for (const auto& [name, res] :
       {std::pair<const char*, const Result*>{"offsets_for_times (END/BEGINNING)", &a},
        {"admin ListOffsets (latest/earliest)", &b}}) {
    std::printf("| %s | %.2f | %.2f | %.3f |\n", name, Percentile(res->ms, 0.5),
                Percentile(res->ms, 0.99), res->cpu_s * 1000 / rounds);
  }
  std::printf("\nratio admin/offsets_for_times: p50 %.2fx, p99 %.2fx, CPU %.2fx\n",
              Percentile(b.ms, 0.5) / Percentile(a.ms, 0.5),
              Percentile(b.ms, 0.99) / Percentile(a.ms, 0.99), b.cpu_s / a.cpu_s);
  return 0;
}
