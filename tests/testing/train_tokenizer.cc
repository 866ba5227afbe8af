// train_tokenizer DIR: a tiny SentencePiece tokenizer for
// oublictl's tests, trained on the spot (never downloaded). Writes a corpus
// of short English sentences (fictitious people, places and jobs; the same
// every time) to DIR/corpus.txt and trains a unigram model of about 96
// pieces into DIR/tokenizer.model, with SentencePiece's
// default special pieces (unk 0, bos 1, eos 2).
//
// No Abseil here: sentencepiece_trainer.h declares absl::string_view as
// std::string_view, which clashes with Debian's Abseil.
#include <sentencepiece_trainer.h>

#include <cstdio>
#include <fstream>
#include <string>

namespace {

std::string TrainTinyTokenizer(const std::string& dir) {
  static const char* const kNames[] = {"alice", "bob",   "carol", "dmitri",
                                       "erin",  "farid", "grace", "hiro"};
  static const char* const kPlaces[] = {"lyon", "osaka", "lima",
                                        "oslo", "quito", "accra"};
  static const char* const kJobs[] = {"baker", "pilot", "nurse", "painter",
                                      "teacher"};
  const std::string corpus = dir + "/corpus.txt";
  {
    std::ofstream out(corpus, std::ios::trunc);
    int i = 0;
    for (const char* name : kNames) {
      for (const char* place : kPlaces) {
        const char* job = kJobs[i++ % 5];
        out << name << " was born in " << place << ".\n"
            << "where was " << name << " born? in " << place << ".\n"
            << name << " works as a " << job << " in " << place << ".\n";
      }
    }
    if (!out) return "cannot write " + corpus;
  }
  const sentencepiece::util::Status status =
      sentencepiece::SentencePieceTrainer::Train(
          "--input=" + corpus + " --model_prefix=" + dir +
          "/tokenizer --vocab_size=96 --model_type=unigram"
          " --character_coverage=1.0 --hard_vocab_limit=false"
          " --num_threads=1 --minloglevel=2");
  return status.ok() ? "" : status.ToString();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: train_tokenizer DIR\n");
    return 2;
  }
  const std::string error = TrainTinyTokenizer(argv[1]);
  if (!error.empty()) {
    std::fprintf(stderr, "train_tokenizer: %s\n", error.c_str());
    return 1;
  }
  return 0;
}
