/* Dataset readers of the weft CLI: fortune cookie files (data_fortunes.c),
 * a character corpus with a held-out split (data_text.c), and a Keras-like
 * word tokenizer and vocabulary (data_words.c).  Errors are weft_status
 * with weft_last_error() naming the file. */
#ifndef WEFT_TOOLS_DATA_H
#define WEFT_TOOLS_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "weft/weft.h"

/* Debian's fortunes package puts its files here. */
#define FORTUNES_DIR "/usr/share/games/fortunes"

/* ------------------------------------------------------------- fortunes */

typedef struct fortune_set {
    char **text;     /* each cookie, NUL-terminated, without its '%' line */
    int *label;      /* index of the file (category) it came from */
    int *index;      /* its position within that file */
    int n;
} fortune_set;

/* Reads the cookies of the named files of dir (a fortune file is cookies
 * separated by lines holding only '%').  files == NULL: every regular file
 * of dir whose name has no '.', in name order (the .dat indexes and .u8
 * copies are skipped); *names_out, if not NULL, receives that list (free
 * with fortunes_free_names). */
weft_status fortunes_read(const char *dir, const char *const *files, int nfiles,
                          fortune_set *out, char ***names_out, int *nnames_out);
void fortunes_free(fortune_set *s);
void fortunes_free_names(char **names, int n);

/* ---------------------------------------------------- character corpus */

typedef struct char_corpus {
    int32_t *train, *test;  /* character ids */
    int64_t ntrain, ntest;
    int vocab;              /* distinct bytes */
    unsigned char chars[256]; /* id -> byte */
    int16_t id[256];          /* byte -> id, -1 if absent */
} char_corpus;

/* path is a text file (its last tenth is held out) or a directory of
 * fortune files (every tenth cookie of each file is held out; cookies are
 * joined with a blank line).  The vocabulary is every byte of the text. */
weft_status char_corpus_read(const char *path, char_corpus *out);
void char_corpus_free(char_corpus *c);
/* "10,32,33,..." (the byte of each id) and back, for checkpoints. */
char *char_vocab_string(const char_corpus *c);
weft_status char_vocab_parse(const char *s, char_corpus *c);

/* ------------------------------------------------------------ words */

/* Keras TextVectorization's defaults: lower-case, strip punctuation, split
 * on white space; id 0 is padding and 1 is out-of-vocabulary, then the
 * words of the training texts by falling frequency (ties alphabetical),
 * max_tokens ids in all. */
typedef struct vocab {
    char **words;     /* id -> word ("" and "[UNK]" first) */
    int n;
    int *slots;       /* open-addressing hash: word id or -1 */
    int nslots;
} vocab;

weft_status vocab_build(char *const *texts, int n, int max_tokens, vocab *out);
void vocab_free(vocab *v);
/* Word id, 1 if unknown. */
int vocab_id(const vocab *v, const char *word);
/* Token ids of text into ids[max_len] (the first max_len tokens);
 * returns how many were written. */
int vocab_encode(const vocab *v, const char *text, int32_t *ids, int max_len);
/* Number of tokens in text (no truncation). */
int words_count(const char *text);

#endif
