#include "coordinator/position_choice.h"

namespace oubli::coordinator {

std::optional<NextPosition> ChooseNextPosition(const std::vector<int>& valid,
                                               int slices) {
  int serving = 0;   // sequences with a valid prefix
  int unserved = -1;  // the lowest sequence with none
  int longest = -1;   // the lowest incomplete sequence with the longest
  for (int b = 0; b < static_cast<int>(valid.size()); ++b) {
    if (valid[b] > 0) ++serving;
    if (valid[b] == 0 && unserved < 0) unserved = b;
    if (valid[b] < slices && (longest < 0 || valid[b] > valid[longest])) {
      longest = b;
    }
  }
  if (longest < 0) return std::nullopt;
  if (serving == 1 && unserved >= 0) return NextPosition{unserved, 1};
  return NextPosition{longest, valid[longest] + 1};
}

}  // namespace oubli::coordinator
