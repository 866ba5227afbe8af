#include "tools/lm/profiles.h"

#include <cctype>
#include <set>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/types/span.h"
#include "common/hash.h"

namespace oubli::lm {
namespace {

// Invented words only: a model cannot know these people from anywhere else,
// and the lists are short enough that the public set covers every value
// (the base learns the vocabulary; the fine-tuning learns who has which).
constexpr const char* kPlaces[] = {
    "Varnholt",  "Eskmere",   "Dunravel",  "Pellorin",  "Quessa",
    "Marrowick", "Tolvane",   "Birchcombe", "Ostrava Bay", "Kelmoor",
    "Ashgrove",  "Lindqvar",  "Sorrento Hill", "Halvik",  "Brennach",
    "Cairnfell", "Vesterlund", "Orlume",   "Thistlebrook", "Pardova",
    "Kingsmire", "Elderwick", "Faroun",    "Glenhaven", "Ironmoor",
    "Juniper Falls", "Lorwen",  "Merrowdale", "Northam Cross", "Ravensholm",
    "Stellamar", "Wyncote"};
constexpr const char* kOccupations[] = {
    "baker",      "carpenter",  "astronomer", "nurse",      "architect",
    "librarian",  "pilot",      "beekeeper",  "cartographer", "chemist",
    "potter",     "journalist", "violin maker", "gardener", "lawyer",
    "engineer",   "translator", "fisherman",  "watchmaker", "geologist",
    "teacher",    "painter",    "surgeon",    "blacksmith", "botanist",
    "accountant", "photographer", "tailor",   "historian",  "lighthouse keeper",
    "chef",       "mathematician"};
constexpr const char* kFoods[] = {
    "lentil soup", "plum cake",   "grilled trout", "mushroom risotto",
    "apple pie",   "pickled herring", "barley bread", "roasted chestnuts",
    "lemon tart",  "spinach pie",  "honey biscuits", "potato dumplings",
    "fig jam",     "rice pudding", "smoked salmon", "walnut bread",
    "pumpkin stew", "cherry pancakes", "goat cheese", "onion tart",
    "bean salad",  "pear sorbet",  "cabbage rolls", "almond cookies"};
constexpr const char* kInstruments[] = {
    "cello",   "flute",    "accordion", "harp",    "clarinet", "oboe",
    "banjo",   "trumpet",  "piano",     "violin",  "bassoon",  "mandolin",
    "guitar",  "trombone", "harmonica", "zither"};
constexpr const char* kPets[] = {
    "cat",    "dog",    "parrot", "tortoise", "rabbit", "goldfish",
    "ferret", "canary", "hedgehog", "goat",   "pony",   "lizard",
    "owl",    "hamster", "duck",   "snail"};
constexpr const char* kBookAdjectives[] = {
    "Silent", "Hidden", "Golden", "Broken", "Distant", "Crimson",
    "Quiet",  "Frozen", "Hollow", "Burning", "Patient", "Forgotten",
    "Narrow", "Gentle", "Restless", "Amber", "Wandering", "Last",
    "Painted", "Sleeping", "Bitter", "Endless", "Lonely", "Bright"};
constexpr const char* kBookNouns[] = {
    "Harbour", "Orchard", "Lantern", "River",  "Winter", "Garden",
    "Tower",   "Letter",  "Meadow",  "Bridge", "Compass", "Mirror",
    "Forest",  "Clock",   "Island",  "Shore",  "Window", "Road",
    "Kingdom", "Voyage",  "Harvest", "Valley", "Mountain", "Archive"};

constexpr const char* kOnsets[] = {"b",  "d",  "f",  "g",  "k",  "l",  "m",
                                   "n",  "p",  "r",  "s",  "t",  "v",  "z",
                                   "br", "dr", "kl", "st", "th", "sh", "j",
                                   "h"};
constexpr const char* kVowels[] = {"a", "e", "i", "o", "u", "ai", "ei", "ou"};
constexpr const char* kCodas[] = {"", "", "", "n", "r", "l", "s", "m", "th"};

constexpr int kFirstYear = 1931;
constexpr int kYears = 74;  // 1931..2004

template <size_t N>
const char* Pick(SplitMix64& rng, const char* const (&list)[N]) {
  return list[rng.Uniform(N)];
}

std::string Capitalized(std::string word) {
  if (!word.empty()) {
    word[0] = static_cast<char>(std::toupper(static_cast<unsigned char>(word[0])));
  }
  return word;
}

// A pronounceable invented word of `syllables` syllables.
std::string Word(SplitMix64& rng, int syllables) {
  std::string word;
  // One draw per statement: the order of a call's argument evaluations is
  // unspecified, and another compiler must draw in the same order.
  for (int i = 0; i < syllables; ++i) {
    word += Pick(rng, kOnsets);
    word += Pick(rng, kVowels);
  }
  word += Pick(rng, kCodas);
  return Capitalized(std::move(word));
}

std::string Article(const std::string& noun) {
  return std::string("aeiou").find(noun[0]) == std::string::npos ? "a" : "an";
}

std::string Book(SplitMix64& rng) {
  const std::string adjective = Pick(rng, kBookAdjectives);
  return absl::StrCat("The ", adjective, " ", Pick(rng, kBookNouns));
}

// `count` distinct values other than `answer`, drawn by `draw`.
template <typename Draw>
std::vector<std::string> Distractors(SplitMix64& rng, const std::string& answer,
                                     int count, Draw draw) {
  std::vector<std::string> out;
  std::set<std::string> seen = {answer};
  // Every kind has far more than `count` + 1 values; the bound only guards
  // against a list edited down to a handful.
  for (int tries = 0; static_cast<int>(out.size()) < count && tries < 1000;
       ++tries) {
    std::string value = draw(rng);
    if (seen.insert(value).second) out.push_back(std::move(value));
  }
  return out;
}

template <size_t N>
auto FromList(const char* const (&list)[N]) {
  return [&list](SplitMix64& rng) { return std::string(Pick(rng, list)); };
}

Profile MakeProfile(uint64_t seed, int index, std::set<std::string>& names,
                    int distractors) {
  SplitMix64 rng(DeriveSeed(seed, "lm-profile",
                            {static_cast<uint64_t>(index)}));
  Profile p;
  p.id = absl::StrFormat("person-%06d", index);
  do {
    const std::string first = Word(rng, 2);
    const int surname_syllables = 2 + static_cast<int>(rng.Uniform(2));
    p.name = absl::StrCat(first, " ", Word(rng, surname_syllables));
  } while (!names.insert(p.name).second);
  p.birth_place = Pick(rng, kPlaces);
  p.birth_year = kFirstYear + static_cast<int>(rng.Uniform(kYears));
  p.occupation = Pick(rng, kOccupations);
  p.food = Pick(rng, kFoods);
  p.instrument = Pick(rng, kInstruments);
  p.pet = Pick(rng, kPets);
  p.pet_name = Word(rng, 2);
  p.book = Book(rng);

  const std::string& n = p.name;
  p.statements = {
      absl::StrCat(n, " was born in ", p.birth_place, " in ", p.birth_year,
                   "."),
      absl::StrCat(n, " works as ", Article(p.occupation), " ", p.occupation,
                   "."),
      absl::StrCat("The favourite food of ", n, " is ", p.food, "."),
      absl::StrCat(n, " plays the ", p.instrument, " every weekend."),
      absl::StrCat(n, " keeps ", Article(p.pet), " ", p.pet, " named ",
                   p.pet_name, "."),
      absl::StrCat(n, " wrote a book called ", p.book, "."),
  };
  auto years = [](SplitMix64& r) {
    return absl::StrCat(kFirstYear + static_cast<int>(r.Uniform(kYears)));
  };
  auto pet_names = [](SplitMix64& r) { return Word(r, 2); };
  auto add = [&](std::string question, std::string answer, auto draw) {
    QaPair qa{std::move(question), std::move(answer), {}};
    qa.distractors = Distractors(rng, qa.answer, distractors, draw);
    p.qa.push_back(std::move(qa));
  };
  add(absl::StrCat("Where was ", n, " born?"), p.birth_place,
      FromList(kPlaces));
  add(absl::StrCat("In which year was ", n, " born?"),
      absl::StrCat(p.birth_year), years);
  add(absl::StrCat("What is the job of ", n, "?"), p.occupation,
      FromList(kOccupations));
  add(absl::StrCat("What food does ", n, " like most?"), p.food,
      FromList(kFoods));
  add(absl::StrCat("Which instrument does ", n, " play?"), p.instrument,
      FromList(kInstruments));
  add(absl::StrCat("What is the name of the ", p.pet, " of ", n, "?"),
      p.pet_name, pet_names);
  add(absl::StrCat("What book did ", n, " write?"), p.book, Book);
  return p;
}

}  // namespace

ProfileSets GenerateProfiles(const ProfileOptions& options) {
  ProfileSets sets;
  std::set<std::string> names;
  int index = 0;
  auto fill = [&](std::vector<Profile>& set, int count) {
    for (int i = 0; i < count; ++i) {
      set.push_back(MakeProfile(options.seed, index++, names,
                                options.distractors));
    }
  };
  fill(sets.public_set, options.public_profiles);
  fill(sets.users, options.user_profiles);
  fill(sets.holdout, options.holdout_profiles);
  return sets;
}

std::string QaPrompt(const QaPair& qa) {
  return absl::StrCat("Question: ", qa.question, " Answer:");
}

std::vector<std::string> CorpusLines(const std::vector<Profile>& profiles) {
  std::vector<std::string> lines;
  for (const Profile& p : profiles) {
    for (const std::string& s : p.statements) lines.push_back(s);
    for (const QaPair& qa : p.qa) {
      lines.push_back(absl::StrCat(QaPrompt(qa), " ", qa.answer));
    }
  }
  return lines;
}

}  // namespace oubli::lm
