// TOFU-style fictitious person profiles for the language-model forgetting
// workload (issue 11, section 4): a name, a birth place and year, an
// occupation and a few facts per person, rendered as statements and
// question/answer pairs. Everything is a function of (seed, index) through
// SplitMix64 and fixed word lists: no std::*_distribution (whose output is
// implementation-defined), so every machine generates the same text.
//
// The three sets share one distribution and never share a person (names
// are unique across all of them):
//   public   pretrains the base LM and the tokenizer; never deletable;
//   users    one owner per profile, fine-tuned with S3T, deletable;
//   holdout  never trained on: the non-members of membership inference and
//            the never-seen baseline of every metric.
#ifndef OUBLI_TOOLS_LM_PROFILES_H_
#define OUBLI_TOOLS_LM_PROFILES_H_

#include <cstdint>
#include <string>
#include <vector>

namespace oubli::lm {

struct QaPair {
  std::string question;
  std::string answer;
  // Wrong answers of the same kind (other places, years, ...), distinct
  // from the answer and from each other: the knowledge metric ranks the
  // answer among them.
  std::vector<std::string> distractors;
};

struct Profile {
  std::string id;  // "person-000042": the owner of the profile's samples
  std::string name;
  std::string birth_place;
  int birth_year = 0;
  std::string occupation;
  std::string food;
  std::string instrument;
  std::string pet;
  std::string pet_name;
  std::string book;
  std::vector<std::string> statements;  // one fact each, full sentences
  std::vector<QaPair> qa;
};

struct ProfileOptions {
  uint64_t seed = 1;
  int public_profiles = 200;
  int user_profiles = 200;
  int holdout_profiles = 100;
  int distractors = 4;  // per QA pair
};

struct ProfileSets {
  std::vector<Profile> public_set;
  std::vector<Profile> users;
  std::vector<Profile> holdout;
};

// Profiles 0..P-1 are public, the next U users, the next H holdout; a
// profile's content depends only on (seed, its index, the names drawn
// before it), so growing one set does not change the sets before it.
ProfileSets GenerateProfiles(const ProfileOptions& options);

// "Question: Q Answer:" and " A": the prompt (masked from the loss) and the
// answer of a QA sample, as the workload tokenizes them.
std::string QaPrompt(const QaPair& qa);

// Every statement and QA text of `profiles` (QA as prompt + answer), one
// line each: the tokenizer's training corpus.
std::vector<std::string> CorpusLines(const std::vector<Profile>& profiles);

}  // namespace oubli::lm

#endif  // OUBLI_TOOLS_LM_PROFILES_H_
