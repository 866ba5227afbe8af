#include "tools/lm/profiles.h"

#include <set>

#include "common/hash.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace oubli::lm {
namespace {

using ::testing::HasSubstr;

std::string Digest(const ProfileSets& sets) {
  Sha256 h;
  for (const auto* set : {&sets.public_set, &sets.users, &sets.holdout}) {
    for (const std::string& line : CorpusLines(*set)) h.AddField(line);
    for (const Profile& p : *set) {
      h.AddField(p.id);
      for (const QaPair& qa : p.qa) {
        for (const std::string& d : qa.distractors) h.AddField(d);
      }
    }
  }
  return h.FinishHex();
}

TEST(ProfilesTest, SameSeedSameText) {
  const ProfileOptions options{.seed = 7, .public_profiles = 30,
                               .user_profiles = 20, .holdout_profiles = 10};
  EXPECT_EQ(Digest(GenerateProfiles(options)),
            Digest(GenerateProfiles(options)));
  ProfileOptions other = options;
  other.seed = 8;
  EXPECT_NE(Digest(GenerateProfiles(options)), Digest(GenerateProfiles(other)));
}

// The text is a function of the seed alone, on every machine and compiler:
// pinned here. A deliberate change to the generator updates this digest.
TEST(ProfilesTest, GoldenText) {
  const ProfileSets sets = GenerateProfiles(
      {.seed = 1, .public_profiles = 3, .user_profiles = 2,
       .holdout_profiles = 1});
  const Profile& first = sets.public_set.front();
  EXPECT_EQ(first.id, "person-000000");
  EXPECT_EQ(first.statements.front(),
            first.name + " was born in " + first.birth_place + " in " +
                std::to_string(first.birth_year) + ".");
  EXPECT_EQ(Digest(sets), "2b21aef91aee1e323d814e43616c2db472efc4b61cf2e73f432ca7129e622010");
}

TEST(ProfilesTest, SetsHaveTheirSizesAndNoSharedPerson) {
  const ProfileSets sets = GenerateProfiles(
      {.seed = 3, .public_profiles = 300, .user_profiles = 200,
       .holdout_profiles = 100});
  EXPECT_EQ(sets.public_set.size(), 300u);
  EXPECT_EQ(sets.users.size(), 200u);
  EXPECT_EQ(sets.holdout.size(), 100u);
  std::set<std::string> names, ids;
  for (const auto* set : {&sets.public_set, &sets.users, &sets.holdout}) {
    for (const Profile& p : *set) {
      EXPECT_TRUE(names.insert(p.name).second) << p.name;
      EXPECT_TRUE(ids.insert(p.id).second) << p.id;
    }
  }
}

TEST(ProfilesTest, GrowingALaterSetKeepsTheEarlierOnes) {
  const ProfileSets small = GenerateProfiles(
      {.seed = 5, .public_profiles = 10, .user_profiles = 5,
       .holdout_profiles = 5});
  const ProfileSets large = GenerateProfiles(
      {.seed = 5, .public_profiles = 10, .user_profiles = 5,
       .holdout_profiles = 50});
  for (size_t i = 0; i < small.users.size(); ++i) {
    EXPECT_EQ(small.users[i].statements, large.users[i].statements);
  }
}

TEST(ProfilesTest, StatementsAndQuestionsCarryTheFacts) {
  const ProfileSets sets = GenerateProfiles(
      {.seed = 11, .public_profiles = 1, .user_profiles = 0,
       .holdout_profiles = 0, .distractors = 4});
  const Profile& p = sets.public_set.front();
  ASSERT_EQ(p.statements.size(), 6u);
  ASSERT_EQ(p.qa.size(), 7u);
  for (const std::string& s : p.statements) EXPECT_THAT(s, HasSubstr(p.name));
  EXPECT_THAT(p.statements[1], HasSubstr(p.occupation));
  EXPECT_EQ(p.qa[0].answer, p.birth_place);
  EXPECT_EQ(p.qa[1].answer, std::to_string(p.birth_year));
  EXPECT_EQ(p.qa[5].answer, p.pet_name);
  EXPECT_EQ(QaPrompt(p.qa[0]), "Question: Where was " + p.name +
                                   " born? Answer:");
  for (const QaPair& qa : p.qa) {
    EXPECT_THAT(qa.question, HasSubstr(p.name));
    ASSERT_EQ(qa.distractors.size(), 4u);
    std::set<std::string> distinct(qa.distractors.begin(),
                                   qa.distractors.end());
    distinct.insert(qa.answer);
    EXPECT_EQ(distinct.size(), 5u) << qa.question;
  }
}

}  // namespace
}  // namespace oubli::lm
