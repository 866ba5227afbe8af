#include "coordinator/position_choice.h"

#include <set>

namespace oubli::coordinator {

std::optional<NextPosition> ChooseNextPosition(const std::vector<int>& valid,
                                               const std::vector<int>& first,
                                               int slices) {
  std::set<int> serving_heads;  // first slices of the serving sequences
  int longest = -1;  // the lowest incomplete sequence with the longest
  for (int b = 0; b < static_cast<int>(valid.size()); ++b) {
    if (valid[b] > 0) serving_heads.insert(first[b]);
    if (valid[b] < slices && (longest < 0 || valid[b] > valid[longest])) {
      longest = b;
    }
  }
  if (longest < 0) return std::nullopt;
  if (serving_heads.size() == 1) {
    for (int b = 0; b < static_cast<int>(valid.size()); ++b) {
      if (valid[b] == 0 && !serving_heads.contains(first[b])) {
        return NextPosition{b, 1};
      }
    }
  }
  return NextPosition{longest, valid[longest] + 1};
}

}  // namespace oubli::coordinator
