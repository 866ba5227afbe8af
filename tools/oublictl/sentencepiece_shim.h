/* The C interface of liboubli_sentencepiece.so, a module oublictl loads
 * with dlopen(RTLD_DEEPBIND) when it tokenizes (sentencepiece_tokenizer.cc
 * says why). Plain C types only: nothing allocated on one side is freed on
 * the other. */
#ifndef OUBLI_TOOLS_OUBLICTL_SENTENCEPIECE_SHIM_H_
#define OUBLI_TOOLS_OUBLICTL_SENTENCEPIECE_SHIM_H_

#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

typedef struct OubliSpm OubliSpm;

/* The model in `path`, or NULL with a message in error[error_size]. */
OubliSpm* oubli_spm_load(const char* path, char* error, size_t error_size);
void oubli_spm_free(OubliSpm* spm);
int oubli_spm_piece_size(const OubliSpm* spm);
int oubli_spm_eos_id(const OubliSpm* spm); /* -1: none */
/* The ids of text[size]: their count, of which the first `capacity` are
 * written to ids (ask again with room for all when it is larger); -1 with
 * a message on failure. */
long oubli_spm_encode(const OubliSpm* spm, const char* text, size_t size,
                      int* ids, size_t capacity, char* error,
                      size_t error_size);
/* The text of ids[count]: its length in bytes, of which the first
 * `capacity` are written (ask again likewise); -1 with a message. */
long oubli_spm_decode(const OubliSpm* spm, const int* ids, size_t count,
                      char* text, size_t capacity, char* error,
                      size_t error_size);

#ifdef __cplusplus
}
#endif

#endif /* OUBLI_TOOLS_OUBLICTL_SENTENCEPIECE_SHIM_H_ */
