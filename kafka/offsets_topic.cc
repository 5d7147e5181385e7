#include "kafka/offsets_topic.h"

#include <string>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace klag::kafka {
namespace {

// Big-endian reader over one record's key or value; every read names the field it failed on.
class Reader {
 public:
  Reader(absl::string_view bytes, std::string what) : bytes_(bytes), what_(std::move(what)) {}

  absl::Status Int16(absl::string_view field, int16_t& out) { return Fixed(field, 2, out); }
  absl::Status Int32(absl::string_view field, int32_t& out) { return Fixed(field, 4, out); }
  absl::Status Int64(absl::string_view field, int64_t& out) { return Fixed(field, 8, out); }

  // A string with an int16 length (-1 is null, read as empty).
  absl::Status String(absl::string_view field, std::string& out) {
    int16_t length = 0;
    if (absl::Status s = Int16(field, length); !s.ok()) return s;
    if (length < -1) return Malformed(field, absl::StrCat("negative length ", length));
    return Bytes(field, length < 0 ? 0 : static_cast<size_t>(length), out);
  }

  // A compact string: unsigned varint length + 1 (0 is null, read as empty).
  absl::Status CompactString(absl::string_view field, std::string& out) {
    uint32_t length_plus_one = 0;
    if (absl::Status s = UnsignedVarint(field, length_plus_one); !s.ok()) return s;
    return Bytes(field, length_plus_one == 0 ? 0 : length_plus_one - 1, out);
  }

  // Tagged fields (flexible versions): a count, then per field a tag, a size and its bytes. None
  // is needed here (OffsetCommitValue's topic id is one), so all are skipped.
  absl::Status SkipTaggedFields() {
    uint32_t count = 0;
    if (absl::Status s = UnsignedVarint("tagged field count", count); !s.ok()) return s;
    for (uint32_t i = 0; i < count; ++i) {
      uint32_t tag = 0;
      uint32_t size = 0;
      if (absl::Status s = UnsignedVarint("tagged field tag", tag); !s.ok()) return s;
      if (absl::Status s = UnsignedVarint("tagged field size", size); !s.ok()) return s;
      if (size > bytes_.size()) return Malformed("tagged field", "truncated");
      bytes_.remove_prefix(size);
    }
    return absl::OkStatus();
  }

  absl::Status ExpectEnd() {
    if (bytes_.empty()) return absl::OkStatus();
    return absl::InvalidArgumentError(
        absl::StrCat(kOffsetsTopic, " record ", what_, ": ", bytes_.size(), " bytes left over"));
  }

 private:
  template <typename T>
  absl::Status Fixed(absl::string_view field, size_t size, T& out) {
    if (bytes_.size() < size) return Malformed(field, "truncated");
    uint64_t value = 0;
    for (size_t i = 0; i < size; ++i) value = (value << 8) | static_cast<uint8_t>(bytes_[i]);
    out = static_cast<T>(value);
    bytes_.remove_prefix(size);
    return absl::OkStatus();
  }

  absl::Status Bytes(absl::string_view field, size_t size, std::string& out) {
    if (bytes_.size() < size) return Malformed(field, "truncated");
    out.assign(bytes_.data(), size);
    bytes_.remove_prefix(size);
    return absl::OkStatus();
  }

  absl::Status UnsignedVarint(absl::string_view field, uint32_t& out) {
    out = 0;
    for (int shift = 0; shift <= 28; shift += 7) {
      if (bytes_.empty()) return Malformed(field, "truncated");
      const auto byte = static_cast<uint8_t>(bytes_.front());
      bytes_.remove_prefix(1);
      out |= static_cast<uint32_t>(byte & 0x7f) << shift;
      if ((byte & 0x80) == 0) return absl::OkStatus();
    }
    return Malformed(field, "varint longer than 5 bytes");
  }

  absl::Status Malformed(absl::string_view field, absl::string_view why) const {
    return absl::InvalidArgumentError(
        absl::StrCat(kOffsetsTopic, " record ", what_, ": ", field, ": ", why));
  }

  absl::string_view bytes_;
  const std::string what_;  // owned: callers pass temporaries
};

}  // namespace

absl::StatusOr<std::optional<OffsetCommitRecord>> ParseOffsetsTopicRecord(
    absl::string_view key, std::optional<absl::string_view> value) {
  Reader k(key, "key");
  int16_t key_version = 0;
  if (absl::Status s = k.Int16("version", key_version); !s.ok()) return s;
  // 0 and 1: offset commit (LegacyOffsetCommitKey / OffsetCommitKey, same fields); 2: group
  // metadata; 3 and up: consumer, share and streams group records (KIP-848 and after).
  if (key_version != 0 && key_version != 1) return std::nullopt;
  OffsetCommitRecord record;
  if (absl::Status s = k.String("group", record.group); !s.ok()) return s;
  if (absl::Status s = k.String("topic", record.partition.topic); !s.ok()) return s;
  if (absl::Status s = k.Int32("partition", record.partition.partition); !s.ok()) return s;
  if (absl::Status s = k.ExpectEnd(); !s.ok()) return s;
  if (!value.has_value()) return record;  // tombstone

  Reader v(*value, absl::StrCat("value of group ", record.group));
  int16_t version = 0;
  if (absl::Status s = v.Int16("version", version); !s.ok()) return s;
  if (version < 0 || version > 4) {
    return absl::InvalidArgumentError(absl::StrCat(kOffsetsTopic, " record value of group ",
                                                   record.group, ": unknown version ", version));
  }
  int64_t offset = 0;
  if (absl::Status s = v.Int64("offset", offset); !s.ok()) return s;
  if (version >= 3) {
    int32_t leader_epoch = 0;
    if (absl::Status s = v.Int32("leader epoch", leader_epoch); !s.ok()) return s;
  }
  std::string metadata;
  if (absl::Status s =
          version >= 4 ? v.CompactString("metadata", metadata) : v.String("metadata", metadata);
      !s.ok()) {
    return s;
  }
  if (absl::Status s = v.Int64("commit timestamp", record.commit_timestamp_ms); !s.ok()) return s;
  if (version == 1) {
    int64_t expire_timestamp = 0;
    if (absl::Status s = v.Int64("expire timestamp", expire_timestamp); !s.ok()) return s;
  }
  if (version >= 4) {
    if (absl::Status s = v.SkipTaggedFields(); !s.ok()) return s;
  }
  if (absl::Status s = v.ExpectEnd(); !s.ok()) return s;
  record.offset = offset;
  return record;
}

bool CommittedOffsetsTable::Apply(const OffsetCommitRecord& record) {
  if (!record.offset.has_value()) {
    auto group = groups_.find(record.group);
    if (group == groups_.end()) return true;
    const auto erased = static_cast<int64_t>(group->second.erase(record.partition));
    entries_ -= erased;
    if (options_.budget != nullptr && erased > 0) options_.budget->Give(erased);
    if (group->second.empty()) groups_.erase(group);
    return true;
  }
  auto group = groups_.find(record.group);
  if (group != groups_.end()) {
    if (auto it = group->second.find(record.partition); it != group->second.end()) {
      it->second = *record.offset;
      return true;
    }
  }
  if (entries_ >= options_.max_entries) return false;
  if (options_.budget != nullptr && !options_.budget->Take()) return false;
  if (group == groups_.end()) group = groups_.try_emplace(record.group).first;
  group->second.emplace(record.partition, *record.offset);
  ++entries_;
  return true;
}

absl::flat_hash_map<TopicPartition, int64_t> CommittedOffsetsTable::Group(
    const std::string& group, const std::vector<TopicPartition>* partitions) const {
  absl::flat_hash_map<TopicPartition, int64_t> out;
  auto it = groups_.find(group);
  if (it == groups_.end()) return out;
  if (partitions == nullptr) return it->second;
  for (const TopicPartition& tp : *partitions) {
    if (auto found = it->second.find(tp); found != it->second.end()) out.emplace(tp, found->second);
  }
  return out;
}

void CommittedOffsetsTable::Clear() {
  if (options_.budget != nullptr) options_.budget->Give(entries_);
  groups_.clear();
  entries_ = 0;
}

}  // namespace klag::kafka
