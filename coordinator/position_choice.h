// Which position of a shard trains next, from how long each sequence's
// valid prefix is (every prefix up to it stored, see ShardTable).
//
// The first missing prefix of the sequence with the longest valid prefix
// (the lowest on ties): the served prefix grows back to full length
// soonest. One exception keeps the shard in the ensemble: while every
// sequence with a valid prefix starts with the same slice and some
// sequence starting with another has none, that one's first position (one
// slice) trains first, so a single further deletion in that first slice
// cannot leave the shard unserved. The same positions train either way;
// only their order changes.
//
// Pure function of its arguments.
#ifndef OUBLI_COORDINATOR_POSITION_CHOICE_H_
#define OUBLI_COORDINATOR_POSITION_CHOICE_H_

#include <optional>
#include <vector>

namespace oubli::coordinator {

struct NextPosition {
  int sequence = 0;
  int length = 0;  // of the prefix to train: its valid length + 1
};

// `valid[b]`: sequence b's valid length, in 0..slices; `first[b]`: the
// slice its order starts with. nullopt when every sequence is whole.
std::optional<NextPosition> ChooseNextPosition(const std::vector<int>& valid,
                                               const std::vector<int>& first,
                                               int slices);

}  // namespace oubli::coordinator

#endif  // OUBLI_COORDINATOR_POSITION_CHOICE_H_
