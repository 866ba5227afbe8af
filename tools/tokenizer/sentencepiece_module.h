/* The C interface of liboubli_sentencepiece.so, the one module through
 * which oubli uses Debian's libsentencepiece (processor and trainer).
 * sentencepiece_tokenizer.cc loads it with dlopen(RTLD_DEEPBIND); that
 * header says why it is a module of its own.
 *
 * Plain C types only, and every output of variable size reaches the caller
 * through a callback that copies it: nothing allocated on one side is
 * freed on the other (under RTLD_DEEPBIND the module would take libstdc++'s
 * operator new even where the program replaced it). No exception leaves a
 * function. */
#ifndef OUBLI_TOOLS_TOKENIZER_SENTENCEPIECE_MODULE_H_
#define OUBLI_TOOLS_TOKENIZER_SENTENCEPIECE_MODULE_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OubliSentencePiece OubliSentencePiece; /* a loaded model */

/* Receive one output (text, a serialized model, an error message) or the
 * ids of one encoding. The data is the module's and is gone once the call
 * returns: copy it. `context` is what the caller passed with them. */
typedef void (*OubliSpmBytesOut)(void* context, const char* data, size_t size);
typedef void (*OubliSpmIdsOut)(void* context, const int* ids, size_t count);

/* Each function that can fail returns 0 (or a model) having passed its
 * result to `out`, or -1 (or NULL) having passed a message to `error`. */
typedef struct OubliSentencePieceApi {
  /* A model from the bytes of a .model file (a serialized ModelProto). */
  OubliSentencePiece* (*load)(const char* model, size_t size,
                              OubliSpmBytesOut error, void* context);
  void (*free)(OubliSentencePiece* spm);
  int (*piece_size)(const OubliSentencePiece* spm);
  int (*bos_id)(const OubliSentencePiece* spm); /* -1: the model has none */
  int (*eos_id)(const OubliSentencePiece* spm); /* -1: the model has none */
  /* The ids of text[size], no BOS or EOS. */
  int (*encode)(const OubliSentencePiece* spm, const char* text, size_t size,
                OubliSpmIdsOut out, OubliSpmBytesOut error, void* context);
  /* The text of ids[count]; an id outside [0, piece_size) is an error
   * (SentencePiece itself would read past its piece table). */
  int (*decode)(const OubliSentencePiece* spm, const int* ids, size_t count,
                OubliSpmBytesOut out, OubliSpmBytesOut error, void* context);
  /* Trains on sentences[i] (lengths[i] bytes each, i < count, in order)
   * with the trainer's flags names[j]=values[j] (j < options, names
   * without "--"); `out` receives the serialized model. */
  int (*train)(const char* const* sentences, const size_t* lengths,
               size_t count, const char* const* names,
               const char* const* values, size_t options, OubliSpmBytesOut out,
               OubliSpmBytesOut error, void* context);
} OubliSentencePieceApi;

/* The module's only exported symbol: its functions. A module of another
 * interface exports another name, so a stale file is refused at load. */
#define OUBLI_SENTENCEPIECE_API_SYMBOL "oubli_sentencepiece_api_v1"
const OubliSentencePieceApi* oubli_sentencepiece_api_v1(void);

#ifdef __cplusplus
}
#endif

#endif /* OUBLI_TOOLS_TOKENIZER_SENTENCEPIECE_MODULE_H_ */
