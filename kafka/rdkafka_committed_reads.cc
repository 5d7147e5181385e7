#include "kafka/rdkafka_committed_reads.h"

#include <algorithm>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace klag::kafka::rdkafka {
namespace {

// How many ListConsumerGroupOffsets requests one read makes while the group coordinator answers
// that it is moving or loading, and the backoff before the n-th retry (n times this).
constexpr int kAttempts = 3;
constexpr absl::Duration kCoordinatorBackoff = absl::Milliseconds(100);

// Group coordinator answers that mean "ask again shortly" (the coordinator moves or loads).
bool CoordinatorMoving(rd_kafka_resp_err_t err) {
  return err == RD_KAFKA_RESP_ERR_NOT_COORDINATOR ||
         err == RD_KAFKA_RESP_ERR_COORDINATOR_NOT_AVAILABLE ||
         err == RD_KAFKA_RESP_ERR_COORDINATOR_LOAD_IN_PROGRESS;
}

// Group, then the partitions asked for ("*": all the group has), each name preceded by its length:
// a group id is any string (it comes from trigger metadata), so no separator could be trusted to
// keep one tenant's read from matching another's key.
std::string KeyOf(const std::string& group, const std::vector<TopicPartition>* partitions) {
  std::string key = absl::StrCat(group.size(), ":", group);
  if (partitions == nullptr) {
    key += '*';
    return key;
  }
  const std::string* topic = nullptr;
  for (const TopicPartition& tp : *partitions) {
    if (topic == nullptr || *topic != tp.topic) {
      absl::StrAppend(&key, "/", tp.topic.size(), ":", tp.topic);
      topic = &tp.topic;
    }
    absl::StrAppend(&key, ",", tp.partition);
  }
  return key;
}

}  // namespace

// One ListConsumerGroupOffsets shared by the calls that joined it; its sender publishes the
// outcome.
struct CommittedReads::Read::Shared {
  absl::Time sent_at;   // before the sender's first OffsetFetch went out
  absl::Time deadline;  // the sender's
  bool done = false;
  absl::StatusOr<CommittedOffsets> result = absl::AbortedError("abandoned");
  absl::Time read_at;  // send time of the OffsetFetch that answered
};

CommittedReads::Read::Read(CommittedReads& reads, std::string key, std::string group,
                           const std::vector<TopicPartition>* partitions, std::string context)
    : reads_(reads),
      key_(std::move(key)),
      group_(std::move(group)),
      partitions_(partitions),
      context_(std::move(context)) {}

CommittedReads::Read::~Read() {
  if (owned_ != nullptr && !published_) {
    reads_.Publish(key_, owned_, absl::AbortedError("abandoned"), {});
  }
}

CommittedReads::CommittedReads(std::unique_ptr<Client> client, Options options)
    : client_(std::move(client)), options_(std::move(options)) {}

CommittedReads::~CommittedReads() = default;

absl::StatusOr<std::unique_ptr<CommittedReads::Read>> CommittedReads::Begin(
    const std::string& group, const std::vector<TopicPartition>* partitions, absl::Time arrived,
    absl::Time deadline, absl::string_view context) {
  std::unique_ptr<Read> read(
      new Read(*this, KeyOf(group, partitions), group, partitions, std::string(context)));
  if (absl::Status s = BeginInto(*read, arrived, deadline); !s.ok()) return s;
  return read;
}

absl::Status CommittedReads::BeginInto(Read& read, absl::Time arrived, absl::Time deadline) {
  {
    absl::MutexLock lock(&mu_);
    // Only a read sent after this call arrived answers it ("read for this poll"), or, with
    // max_age, one sent at most that long before it arrived: in flight, or done and successful.
    const absl::Time oldest = arrived - options_.max_age;
    if (auto it = reads_.find(read.key_); it != reads_.end()) {
      const Read::Shared& shared = *it->second;
      const bool in_flight = !shared.done && shared.sent_at >= oldest;
      const bool answered = shared.done && shared.result.ok() && shared.read_at >= oldest;
      if (in_flight || answered) {
        read.joined_ = it->second;
        shared_count_.fetch_add(1);
        return absl::OkStatus();
      }
    }
  }
  if (absl::Status s = client_->EnsureReachable(deadline, options_.unreachable_probe, read.context_,
                                                probe_requests_);
      !s.ok()) {
    if (absl::IsUnavailable(s)) probe_failures_.fetch_add(1);
    return s;
  }
  read.owned_ = std::make_shared<Read::Shared>();
  read.owned_->deadline = deadline;
  read.sent_at_ = absl::Now();
  read.owned_->sent_at = read.sent_at_;
  {
    absl::MutexLock lock(&mu_);
    reads_[read.key_] = read.owned_;  // later arrivals join this one
  }
  read.call_ = Start(read.group_, read.partitions_, deadline);
  return absl::OkStatus();
}

absl::StatusOr<CommittedOffsets> CommittedReads::Read::Finish(absl::Time deadline,
                                                              absl::Time& read_at) {
  if (owned_ != nullptr) {
    absl::Time sent_at = sent_at_;
    absl::StatusOr<CommittedOffsets> committed =
        reads_.Fetch(group_, partitions_, *std::move(call_), deadline, context_, sent_at);
    read_at = sent_at;
    reads_.Publish(key_, owned_, committed, sent_at);
    published_ = true;
    return committed;
  }
  std::shared_ptr<Shared> shared = joined_;
  {
    absl::MutexLock lock(&reads_.mu_);
    auto done = [&shared]() { return shared->done; };
    if (!reads_.mu_.AwaitWithDeadline(absl::Condition(&done), deadline)) {
      return reads_.client_->TimeoutStatus(absl::StrCat(context_, ": ListConsumerGroupOffsets"));
    }
  }
  // The sender gave up (its own deadline or another failure came first): read on our own while
  // our deadline allows.
  const absl::Status& status = shared->result.status();
  const bool sender_gave_up = absl::IsAborted(status) ||
                              (shared->deadline < deadline &&
                               (absl::IsDeadlineExceeded(status) || absl::IsUnavailable(status)));
  if (sender_gave_up && absl::Now() < deadline) {
    Read own(reads_, key_, group_, partitions_, context_);
    if (absl::Status s = reads_.BeginInto(own, absl::Now(), deadline); !s.ok()) return s;
    return own.Finish(deadline, read_at);
  }
  read_at = shared->read_at;
  return shared->result;
}

AdminCall CommittedReads::Start(const std::string& group,
                                const std::vector<TopicPartition>* partitions,
                                absl::Time deadline) {
  PartitionListPtr list;
  if (partitions != nullptr) {
    list.reset(rd_kafka_topic_partition_list_new(static_cast<int>(partitions->size())));
    for (const TopicPartition& tp : *partitions) {
      rd_kafka_topic_partition_list_add(list.get(), tp.topic.c_str(), tp.partition);
    }
  }
  // NULL partitions: every partition the group has committed offsets for (OffsetFetch with a
  // null topic list).
  rd_kafka_ListConsumerGroupOffsets_t* request =
      rd_kafka_ListConsumerGroupOffsets_new(group.c_str(), list.get());
  requests_.fetch_add(1);
  rd_kafka_t* rk = client_->rk();
  AdminCall call = StartAdmin(
      rk, deadline, RD_KAFKA_EVENT_LISTCONSUMERGROUPOFFSETS_RESULT,
      [&](const rd_kafka_AdminOptions_t* options, rd_kafka_queue_t* queue) {
        rd_kafka_ListConsumerGroupOffsets(rk, &request, 1, options, queue);
      },
      kMaxAdminRequestTimeout);
  rd_kafka_ListConsumerGroupOffsets_destroy(request);
  return call;
}

absl::StatusOr<CommittedOffsets> CommittedReads::Await(AdminCall& call, absl::Time deadline,
                                                       absl::string_view context,
                                                       rd_kafka_resp_err_t& err) {
  const std::string what = absl::StrCat(context, ": ListConsumerGroupOffsets");
  AdminOutcome outcome = AwaitAdmin(call, deadline);
  err = outcome.err;
  if (outcome.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
    return client_->ErrorStatus(outcome.err, what, outcome.detail);
  }
  client_->MarkReachable();
  size_t count = 0;
  const rd_kafka_group_result_t** groups = rd_kafka_ListConsumerGroupOffsets_result_groups(
      rd_kafka_event_ListConsumerGroupOffsets_result(outcome.event.get()), &count);
  CommittedOffsets committed;
  for (size_t i = 0; i < count; ++i) {
    if (const rd_kafka_error_t* error = rd_kafka_group_result_error(groups[i]); error != nullptr) {
      err = rd_kafka_error_code(error);
      return client_->ErrorStatus(err, what, rd_kafka_error_string(error));
    }
    const rd_kafka_topic_partition_list_t* partitions = rd_kafka_group_result_partitions(groups[i]);
    for (int p = 0; partitions != nullptr && p < partitions->cnt; ++p) {
      const rd_kafka_topic_partition_t& tp = partitions->elems[p];
      if (tp.err != RD_KAFKA_RESP_ERR_NO_ERROR) {
        err = tp.err;
        return client_->ErrorStatus(
            tp.err, absl::StrCat(what, ": topic ", tp.topic, " partition ", tp.partition));
      }
      // librdkafka reports "no commit" as RD_KAFKA_OFFSET_INVALID (-1001); the wire says -1.
      if (tp.offset >= 0) committed[TopicPartition{tp.topic, tp.partition}] = tp.offset;
    }
  }
  return committed;
}

absl::StatusOr<CommittedOffsets> CommittedReads::Fetch(
    const std::string& group, const std::vector<TopicPartition>* partitions, AdminCall first,
    absl::Time deadline, absl::string_view context, absl::Time& sent_at) {
  AdminCall call = std::move(first);
  for (int attempt = 1;; ++attempt) {
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR_NO_ERROR;
    absl::StatusOr<CommittedOffsets> committed = Await(call, deadline, context, err);
    if (committed.ok() || !CoordinatorMoving(err) || attempt >= kAttempts ||
        deadline - absl::Now() < 3 * kCoordinatorBackoff) {
      return committed;
    }
    absl::SleepFor(std::min(kCoordinatorBackoff * attempt, (deadline - absl::Now()) / 3));
    // The coordinator just answered, so the client is reachable and a new coordinator-routed
    // request is safe to start (see Reachability above).
    sent_at = absl::Now();
    call = Start(group, partitions, deadline);
  }
}

void CommittedReads::Publish(const std::string& key, const std::shared_ptr<Read::Shared>& shared,
                             absl::StatusOr<CommittedOffsets> result, absl::Time read_at) {
  absl::MutexLock lock(&mu_);
  shared->result = std::move(result);
  shared->read_at = read_at;
  shared->done = true;
  const absl::Duration max_age = options_.max_age;
  if (auto it = reads_.find(key); it != reads_.end() && it->second == shared &&
                                  (max_age <= absl::ZeroDuration() || !shared->result.ok())) {
    reads_.erase(it);
  }
  // With a max age, answers stay for later callers: drop those too old to serve anyone, at most
  // once per max age (so the map holds the keys read within about two max ages).
  const absl::Time now = absl::Now();
  if (max_age > absl::ZeroDuration() && now - last_sweep_ >= max_age) {
    last_sweep_ = now;
    for (auto it = reads_.begin(); it != reads_.end();) {
      const Read::Shared& entry = *it->second;
      if (entry.done && entry.read_at < now - max_age) {
        reads_.erase(it++);  // flat_hash_map: erase(iterator) returns void
      } else {
        ++it;
      }
    }
  }
}

CommittedReads::Stats CommittedReads::GetStats() const {
  return Stats{.requests = requests_.load(),
               .shared = shared_count_.load(),
               .probe_requests = probe_requests_.load(),
               .probe_failures = probe_failures_.load()};
}

size_t CommittedReads::entries() const {
  absl::MutexLock lock(&mu_);
  return reads_.size();
}

}  // namespace klag::kafka::rdkafka
