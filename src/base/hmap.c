/*
 * hmap.c — the tree's one hash map: uint64_t keys to uint64_t values, open addressing with
 * linear probing and backward-shift deletion (no tombstones, so lookups never slow down with
 * churn). Keys are mixed (fmix64) before taking the home slot, so sequential ids and FNV hashes
 * spread alike.
 *
 * Invariants: cap is 0 or a power of two >= 16; n <= cap / 2 (the table grows before an insert
 * would pass that load, so every probe run ends at an empty slot); an entry lies in the cyclic
 * run from its home slot to its slot with no empty slot between. A map made by inf__hmap_init
 * with a reserve never reallocates while it holds at most that many entries.
 * Threads: none inside; the owner serialises access.
 */
#include "base.h"

#include <stdlib.h>
#include <string.h>

static inline uint64_t mix(uint64_t k) {
    k ^= k >> 33;
    k *= 0xff51afd7ed558ccdull;
    k ^= k >> 33;
    k *= 0xc4ceb9fe1a85ec53ull;
    k ^= k >> 33;
    return k;
}

static inline size_t home_of(const inf_hmap *m, uint64_t key) {
    return (size_t)mix(key) & (m->cap - 1);
}

/* Places an entry known to be absent-or-duplicate-allowed into a table with room. */
static void place(inf_hmap *m, uint64_t key, uint64_t val) {
    size_t i = home_of(m, key);
    while (m->used[i])
        i = (i + 1) & (m->cap - 1);
    m->used[i] = 1;
    m->slot[i].key = key;
    m->slot[i].val = val;
    m->n++;
}

static int resize(inf_hmap *m, size_t cap) {
    inf_hmap nm = {0};
    nm.cap = cap;
    nm.slot = inf__calloc(cap, sizeof *nm.slot);
    nm.used = inf__calloc(cap, 1);
    if (!nm.slot || !nm.used) {
        free(nm.slot);
        free(nm.used);
        return inf__err(INF_ENOMEM, "hash map: out of memory for %zu slots", cap);
    }
    for (size_t i = 0; i < m->cap; i++)
        if (m->used[i]) place(&nm, m->slot[i].key, m->slot[i].val);
    free(m->slot);
    free(m->used);
    *m = nm;
    return 0;
}

/* Capacity for n entries at load <= 1/2, or 0 on overflow. */
static size_t cap_for(size_t n) {
    size_t cap = 16;
    while (cap / 2 < n) {
        if (cap > SIZE_MAX / 4) return 0;
        cap *= 2;
    }
    return cap;
}

int inf__hmap_init(inf_hmap *m, size_t reserve) {
    memset(m, 0, sizeof *m);
    if (reserve == 0) return 0;
    size_t cap = cap_for(reserve);
    if (!cap) return inf__err(INF_ERANGE, "hash map: %zu entries", reserve);
    return resize(m, cap);
}

void inf__hmap_free(inf_hmap *m) {
    if (!m) return;
    free(m->slot);
    free(m->used);
    memset(m, 0, sizeof *m);
}

static int room_for_one(inf_hmap *m) {
    if (m->cap && (m->n + 1) <= m->cap / 2) return 0;
    size_t cap = cap_for(m->n + 1);
    if (!cap) return inf__err(INF_ERANGE, "hash map: too many entries");
    return resize(m, cap);
}

int inf__hmap_add(inf_hmap *m, uint64_t key, uint64_t val) {
    int rc = room_for_one(m);
    if (rc < 0) return rc;
    place(m, key, val);
    return 0;
}

static bool find_slot(const inf_hmap *m, uint64_t key, size_t *at) {
    if (!m->cap) return false;
    for (size_t i = home_of(m, key); m->used[i]; i = (i + 1) & (m->cap - 1))
        if (m->slot[i].key == key) {
            *at = i;
            return true;
        }
    return false;
}

int inf__hmap_put(inf_hmap *m, uint64_t key, uint64_t val) {
    size_t i;
    if (find_slot(m, key, &i)) {
        m->slot[i].val = val;
        return 0;
    }
    int rc = inf__hmap_add(m, key, val);
    return rc < 0 ? rc : 1;
}

bool inf__hmap_get(const inf_hmap *m, uint64_t key, uint64_t *val) {
    size_t i;
    if (!find_slot(m, key, &i)) return false;
    if (val) *val = m->slot[i].val;
    return true;
}

bool inf__hmap_next(const inf_hmap *m, uint64_t key, size_t *it, uint64_t *val) {
    if (!m->cap) return false;
    size_t mask = m->cap - 1;
    for (size_t i = (home_of(m, key) + *it) & mask; m->used[i] && *it <= mask;
         i = (i + 1) & mask) {
        ++*it;
        if (m->slot[i].key == key) {
            *val = m->slot[i].val;
            return true;
        }
    }
    return false;
}

bool inf__hmap_each(const inf_hmap *m, size_t *it, uint64_t *key, uint64_t *val) {
    for (; *it < m->cap; ++*it)
        if (m->used[*it]) {
            if (key) *key = m->slot[*it].key;
            if (val) *val = m->slot[*it].val;
            ++*it;
            return true;
        }
    return false;
}

/* Empties slot i and shifts later members of its probe run back so no run has a hole. */
static void remove_at(inf_hmap *m, size_t i) {
    size_t mask = m->cap - 1, hole = i;
    for (size_t j = (i + 1) & mask; m->used[j]; j = (j + 1) & mask) {
        size_t home = home_of(m, m->slot[j].key);
        /* the entry at j may fill the hole unless its home lies cyclically in (hole, j] */
        bool stays = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
        if (!stays) {
            m->slot[hole] = m->slot[j];
            hole = j;
        }
    }
    m->used[hole] = 0;
    m->n--;
}

bool inf__hmap_del(inf_hmap *m, uint64_t key) {
    size_t i;
    if (!find_slot(m, key, &i)) return false;
    remove_at(m, i);
    return true;
}

bool inf__hmap_del_entry(inf_hmap *m, uint64_t key, uint64_t val) {
    if (!m->cap) return false;
    for (size_t i = home_of(m, key); m->used[i]; i = (i + 1) & (m->cap - 1))
        if (m->slot[i].key == key && m->slot[i].val == val) {
            remove_at(m, i);
            return true;
        }
    return false;
}
