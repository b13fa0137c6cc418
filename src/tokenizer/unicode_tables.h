/*
 * unicode_tables.h — Unicode data for the WordPiece tokenizer: the tables are generated into
 * unicode_tables.c by tools/gen_unicode_tables.py; the lookups (binary searches) are static in
 * wpm.c, their only user.
 */
#ifndef INF_UNICODE_TABLES_H
#define INF_UNICODE_TABLES_H

#include <stddef.h>
#include <stdint.h>

/* Code point classes (llama.cpp's unicode_cpt_flags; 0 = unassigned). */
enum {
    INF__UCD_NUMBER = 0x01,
    INF__UCD_LETTER = 0x02,
    INF__UCD_SEPARATOR = 0x04,
    INF__UCD_MARK = 0x08,
    INF__UCD_PUNCT = 0x10,
    INF__UCD_SYMBOL = 0x20,
    INF__UCD_CONTROL = 0x40,
    INF__UCD_WHITESPACE = 0x80,
};

/* A run of a code point map: members first, first + step, ..., last; mode 0: cp -> cp + value,
 * mode 1: cp -> value. Runs are sorted by first and do not overlap. */
typedef struct inf__ucd_run {
    uint32_t first, last;
    int32_t value;
    uint8_t step, mode;
} inf__ucd_run;

extern const char inf__ucd_version[];
extern const uint32_t inf__ucd_flag_ranges[]; /* start << 8 | flags, sorted by start */
extern const size_t inf__ucd_n_flag_ranges;
extern const inf__ucd_run inf__ucd_lower[]; /* simple lowercase mapping */
extern const size_t inf__ucd_n_lower;
extern const inf__ucd_run inf__ucd_nfd[]; /* first code point of the canonical decomposition */
extern const size_t inf__ucd_n_nfd;

#endif
