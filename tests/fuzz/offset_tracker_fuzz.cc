// libFuzzer harness: OffsetTracker (job/offset_tracker.h) driven by sequences of assign, offer,
// ack, reached-end, revoke and commit on three partitions, beside a model of what was handed to
// the sink. The at-least-once invariant: a position to commit never passes the first record
// handed out (since the partition's latest assignment) and not yet acknowledged. Also:
// Unacknowledged() is the model's count; RemainingLag() is never negative.
#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>

#include "job/offset_tracker.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using klag::fuzz::Check;
  using klag::job::OffsetTracker;
  struct Model {
    bool assigned = false;
    int64_t next = 0;          // next offset the "consumer" returns
    std::set<int64_t> handed;  // handed to the sink, not acknowledged
  };
  OffsetTracker tracker;
  std::map<int, Model> model;
  size_t pos = 0;
  auto byte = [&]() -> uint8_t { return pos < size ? data[pos++] : 0; };
  while (pos < size) {
    const uint8_t op = byte();
    const int p = op % 3;
    const klag::kafka::TopicPartition tp{"t", p};
    Model& m = model[p];
    switch ((op / 3) % 6) {
      case 0:  // assign
        if (!m.assigned) {
          const int64_t start = byte();
          const int64_t end = start + byte() % 16;
          std::optional<int64_t> committed;
          if (byte() & 1) committed = start;
          tracker.Assign(tp, start, end, committed);
          m = Model{.assigned = true, .next = start};
        }
        break;
      case 1: {  // the consumer returns a record (sometimes skipping offsets: control records)
        const int64_t offset = m.next + byte() % 3;
        if (tracker.Offer(tp, offset) == OffsetTracker::Disposition::kDeliver) {
          m.handed.insert(offset);
        }
        m.next = offset + 1;
        break;
      }
      case 2:  // the sink acknowledges one record it was handed
        if (!m.handed.empty()) {
          auto it = m.handed.begin();
          std::advance(it, byte() % m.handed.size());
          tracker.Ack(tp, *it);
          m.handed.erase(it);
        }
        break;
      case 3:  // end of partition at the consumer's position
        tracker.ReachedEnd(tp, m.next);
        break;
      case 4:  // revoked: handed-out records are forgotten
        tracker.Revoke(tp);
        m = Model{};
        break;
      case 5: {  // commit what is pending
        const std::vector<klag::job::CommitOffset> pending = tracker.PendingCommits();
        for (const auto& c : pending) {
          const Model& cm = model[c.partition.partition];
          Check(cm.assigned, "a commit for a partition that is not assigned");
          if (!cm.handed.empty()) {
            Check(c.offset <= *cm.handed.begin(),
                  "a commit passes the first unacknowledged record");
          }
        }
        if (byte() & 1) tracker.Committed(pending);
        break;
      }
    }
    int64_t unacked = 0;
    for (const auto& [id, mm] : model) unacked += static_cast<int64_t>(mm.handed.size());
    Check(tracker.Unacknowledged() == unacked, "Unacknowledged() differs from the model");
    Check(tracker.RemainingLag() >= 0, "negative remaining lag");
  }
  return 0;
}
