// libFuzzer harness: `__consumer_offsets` records (kafka/offsets_topic.h), bytes the follower
// reads from any group's commits on a cluster a trigger names. Input: one flags byte (bit 0: the
// value is null, a tombstone), a big-endian uint16 key length, the key, then the value.
// Invariants: parsing never crashes or reads past the input; a parsed commit names a group and
// topic no longer than the key; the table it is applied to never holds more than its bound, and
// holds the commit afterwards (or its absence, for a tombstone) whenever Apply accepted it.
#include <cstddef>
#include <cstdint>
#include <optional>
#include <string>

#include "kafka/offsets_topic.h"
#include "tests/fuzz/fuzz_input.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 3) return 0;
  const bool null_value = (data[0] & 1) != 0;
  const size_t key_size = std::min<size_t>((size_t{data[1]} << 8) | data[2], size - 3);
  const std::string key(reinterpret_cast<const char*>(data + 3), key_size);
  const std::string value(reinterpret_cast<const char*>(data + 3 + key_size), size - 3 - key_size);
  absl::StatusOr<std::optional<klag::kafka::OffsetCommitRecord>> record =
      klag::kafka::ParseOffsetsTopicRecord(
          key, null_value ? std::nullopt : std::optional<absl::string_view>(value));
  if (!record.ok() || !record->has_value()) return 0;
  const klag::kafka::OffsetCommitRecord& commit = **record;
  klag::fuzz::Check(commit.group.size() + commit.partition.topic.size() <= key.size(),
                    "names longer than the key");
  klag::fuzz::Check(commit.offset.has_value() != null_value, "tombstone iff null value");

  klag::kafka::CommittedOffsetsTable table({.max_entries = 1});
  table.Apply({"other", {"t", 0}, 1, 0});
  const bool applied = table.Apply(commit);
  klag::fuzz::Check(table.entries() <= 1, "table past its bound");
  const auto held = table.Group(commit.group, nullptr);
  const auto it = held.find(commit.partition);
  if (!commit.offset.has_value()) {
    klag::fuzz::Check(applied && it == held.end(), "tombstone left the commit");
  } else if (applied) {
    klag::fuzz::Check(it != held.end() && it->second == *commit.offset, "commit not held");
  } else {
    klag::fuzz::Check(
        commit.group != "other" || commit.partition.topic != "t" || commit.partition.partition != 0,
        "update of a held commit refused");
  }
  return 0;
}
