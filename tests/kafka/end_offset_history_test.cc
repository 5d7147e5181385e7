// EndOffsetHistory: interpolation, flat stretches, the point bound, resets and extrapolation.
#include "kafka/end_offset_history.h"

#include <gtest/gtest.h>

#include <cstdint>
#include <optional>

#include "absl/time/time.h"

namespace klag::kafka {
namespace {

const absl::Time kT0 = absl::FromUnixSeconds(1'700'000'000);

absl::Time At(double seconds) { return kT0 + absl::Seconds(seconds); }

// Expects `actual` within 1 ms of `expected`.
void ExpectNear(std::optional<absl::Time> actual, absl::Time expected) {
  ASSERT_TRUE(actual.has_value());
  EXPECT_LE(absl::AbsDuration(*actual - expected), absl::Milliseconds(1))
      << "got " << absl::FormatDuration(*actual - kT0) << " after t0, want "
      << absl::FormatDuration(expected - kT0);
}

TEST(EndOffsetHistoryTest, InterpolatesWhenTheEndMovedPastTheOffset) {
  EndOffsetHistory h;
  h.Add(100, At(0));
  h.Add(140, At(2));   // 20 records/s
  h.Add(160, At(12));  // 2 records/s
  // Record 119 exists once the end reaches 120: 20 records after t0 at 20/s.
  ExpectNear(h.TimeOf(119), At(1));
  ExpectNear(h.TimeOf(100), At(0.05));
  ExpectNear(h.TimeOf(139), At(2));
  // In the slower segment: 150 needs the end at 151, 11 records after 140 at 2/s.
  ExpectNear(h.TimeOf(150), At(7.5));
  ExpectNear(h.TimeOf(159), At(12));
}

TEST(EndOffsetHistoryTest, NothingAtOrPastTheNewestEndIsNullopt) {
  EndOffsetHistory h;
  EXPECT_EQ(h.TimeOf(0), std::nullopt);  // no points
  h.Add(100, At(0));
  h.Add(140, At(2));
  EXPECT_EQ(h.TimeOf(140), std::nullopt);
  EXPECT_EQ(h.TimeOf(1000), std::nullopt);
}

TEST(EndOffsetHistoryTest, FlatStretchKeepsItsFirstAndLastSample) {
  EndOffsetHistory h;
  h.Add(100, At(0));
  h.Add(200, At(10));  // producer stops here
  for (int s = 11; s <= 60; ++s) h.Add(200, At(s));
  ASSERT_EQ(h.points().size(), 3u);
  EXPECT_EQ(h.points()[1].unix_nanos, absl::ToUnixNanos(At(10)));
  EXPECT_EQ(h.points()[2].unix_nanos, absl::ToUnixNanos(At(60)));
  // The records of the rise keep their times however long the stop lasts.
  ExpectNear(h.TimeOf(149), At(5));
  h.Add(210, At(61));  // resumes: 10 records between 60 s and 61 s
  ExpectNear(h.TimeOf(200), At(60.1));
  ExpectNear(h.TimeOf(149), At(5));
}

TEST(EndOffsetHistoryTest, SamplesNotNewerThanTheNewestAreIgnored) {
  EndOffsetHistory h;
  h.Add(100, At(0));
  h.Add(200, At(10));
  h.Add(150, At(5));   // a fetch that returned late
  h.Add(300, At(10));  // same time as the newest
  EXPECT_EQ(h.points().size(), 2u);
  ExpectNear(h.TimeOf(149), At(5));
}

TEST(EndOffsetHistoryTest, EndGoingBackwardsResetsTheHistory) {
  EndOffsetHistory h;
  h.Add(1000, At(0));
  h.Add(2000, At(10));
  h.Add(5, At(11));  // topic recreated
  ASSERT_EQ(h.points().size(), 1u);
  EXPECT_EQ(h.points()[0].end, 5);
  h.Add(25, At(13));
  ExpectNear(h.TimeOf(14), At(12));
  EXPECT_EQ(h.TimeOf(1500), std::nullopt);  // the old topic's offsets are gone
}

TEST(EndOffsetHistoryTest, OffsetBeforeTheHistoryIsExtrapolatedAtTheAverageRate) {
  EndOffsetHistory h;
  h.Add(100, At(10));
  h.Add(120, At(12));
  h.Add(140, At(20));  // 40 records in 10 s overall: 4/s
  // Record 79 needs the end at 80, 20 records before the oldest point: 5 s earlier.
  ExpectNear(h.TimeOf(79), At(5));
  // The record just before the oldest point's end was there at the oldest point's time.
  ExpectNear(h.TimeOf(99), At(10));
}

TEST(EndOffsetHistoryTest, ExtrapolationStopsAtTheUnixEpoch) {
  EndOffsetHistory h;
  h.Add(1'000'000'000'000, At(0));
  h.Add(1'000'000'000'001, At(100'000'000));  // one record in ~3 years
  EXPECT_EQ(h.TimeOf(0), absl::UnixEpoch());
}

TEST(EndOffsetHistoryTest, OffsetBeforeAFlatHistoryIsTheOldestTime) {
  EndOffsetHistory h;
  h.Add(100, At(10));
  ExpectNear(h.TimeOf(3), At(10));  // one point: no rate
  h.Add(100, At(20));
  h.Add(100, At(30));
  ExpectNear(h.TimeOf(3), At(10));  // flat: no rate, never later than the oldest point
}

TEST(EndOffsetHistoryTest, StaysWithinItsPointBoundAndKeepsTheOldestAndNewest) {
  EndOffsetHistory h(8);
  int64_t end = 0;
  for (int i = 0; i < 1000; ++i) {
    end += 1 + (i % 7) * (i % 3);  // an uneven rate
    h.Add(end, At(i));
    ASSERT_LE(h.points().size(), 8u);
    ASSERT_LE(h.MemoryBytes(), 8 * sizeof(EndOffsetHistory::Point));
  }
  EXPECT_EQ(h.points().front().unix_nanos, absl::ToUnixNanos(At(0)));
  EXPECT_EQ(h.points().back().unix_nanos, absl::ToUnixNanos(At(999)));
  EXPECT_EQ(h.points().back().end, end);
}

TEST(EndOffsetHistoryTest, FullTableDropsCollinearPointsBeforeTheCornerOfAStop) {
  EndOffsetHistory h(4);
  h.Add(0, At(0));
  h.Add(100, At(10));  // 10/s
  h.Add(200, At(20));  // 10/s: collinear, cheapest to drop
  h.Add(200, At(50));  // stopped for 30 s
  h.Add(300, At(60));  // table full: (100, 10 s) goes, the stop stays
  ASSERT_EQ(h.points().size(), 4u);
  EXPECT_EQ(h.points()[1].end, 200);
  EXPECT_EQ(h.points()[1].unix_nanos, absl::ToUnixNanos(At(20)));
  EXPECT_EQ(h.points()[2].unix_nanos, absl::ToUnixNanos(At(50)));
  ExpectNear(h.TimeOf(49), At(5));    // still exact on the straight part
  ExpectNear(h.TimeOf(249), At(55));  // after the stop, not spread over it
}

TEST(EndOffsetHistoryTest, AFlatPartitionHoldsTwoPoints) {
  EndOffsetHistory h(32);
  for (int i = 0; i < 100; ++i) h.Add(7, At(i));
  EXPECT_EQ(h.points().size(), 2u);
  EXPECT_LE(h.MemoryBytes(), 2 * sizeof(EndOffsetHistory::Point));
}

TEST(EndOffsetHistoryTest, BoundsBelowTheMinimumMeanTheMinimum) {
  EndOffsetHistory h(1);
  for (int i = 0; i < 10; ++i) h.Add(i * i, At(i));
  EXPECT_EQ(h.points().size(), static_cast<size_t>(EndOffsetHistory::kMinPoints));
}

}  // namespace
}  // namespace klag::kafka
