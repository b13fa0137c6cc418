/*
 * idmap.c — engine request id -> (call, choice) map for dispatch.c: open addressing with
 * linear probing and backward-shift deletion (no tombstones, so lookups stay short however
 * many requests come and go). Id 0 marks an empty slot (the engine never hands it out).
 * Threads: I/O thread only.
 */
#include "server/internal.h"

#include <stdlib.h>

static size_t id_hash(uint64_t eid, size_t cap) {
    return (size_t)((eid * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

int inf__idmap_put(inf__idmap *m, uint64_t eid, inf__call *call, int sub) {
    if (!eid) return INF_EINVAL;
    if ((m->n + 1) * 2 > m->cap) {
        size_t cap = m->cap ? m->cap * 2 : 256;
        inf__idmap_slot *nt = inf__calloc(cap, sizeof *nt);
        if (!nt) return INF_ENOMEM;
        for (size_t i = 0; i < m->cap; i++) {
            inf__idmap_slot *o = &m->slots[i];
            if (!o->eid) continue;
            size_t j = id_hash(o->eid, cap);
            while (nt[j].eid)
                j = (j + 1) & (cap - 1);
            nt[j] = *o;
        }
        free(m->slots);
        m->slots = nt;
        m->cap = cap;
    }
    size_t j = id_hash(eid, m->cap);
    while (m->slots[j].eid && m->slots[j].eid != eid)
        j = (j + 1) & (m->cap - 1);
    if (!m->slots[j].eid) m->n++;
    m->slots[j] = (inf__idmap_slot){eid, call, sub};
    return 0;
}

inf__idmap_slot *inf__idmap_get(inf__idmap *m, uint64_t eid) {
    if (!m->cap || !eid) return NULL;
    size_t j = id_hash(eid, m->cap);
    while (m->slots[j].eid) {
        if (m->slots[j].eid == eid) return &m->slots[j];
        j = (j + 1) & (m->cap - 1);
    }
    return NULL;
}

void inf__idmap_del(inf__idmap *m, uint64_t eid) {
    inf__idmap_slot *s = inf__idmap_get(m, eid);
    if (!s) return;
    size_t cap = m->cap, i = (size_t)(s - m->slots), j = i;
    m->slots[i].eid = 0;
    m->n--;
    /* backward-shift the following cluster so lookups never stop at the hole */
    for (;;) {
        j = (j + 1) & (cap - 1);
        if (!m->slots[j].eid) break;
        size_t home = id_hash(m->slots[j].eid, cap);
        bool movable = i <= j ? (home <= i || home > j) : (home <= i && home > j);
        if (movable) {
            m->slots[i] = m->slots[j];
            m->slots[j].eid = 0;
            i = j;
        }
    }
}

void inf__idmap_free(inf__idmap *m) {
    free(m->slots);
    m->slots = NULL;
    m->cap = m->n = 0;
}
