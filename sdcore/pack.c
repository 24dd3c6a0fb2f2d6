/* pack.c - the packed-weight caches of internal/pack.h.  All caches hang off one list under
 * one mutex: lookups are a handful per op call, so one lock costs nothing measurable, and a
 * single condition variable wakes the threads waiting for a pack being made.  Each cache
 * holds its entries in an open-addressing hash table keyed by (source pointer, layout).
 * The packing itself runs outside the lock. */
#include "internal/pack.h"

#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

enum { MAX_MAPPINGS = 16 };

typedef enum entry_state { BUSY, READY } entry_state;

struct sd_pack_entry {
    const void *src;
    size_t src_bytes;
    int kind;
    entry_state state;
    void *data;
    size_t bytes;
    sd_pack_cache *cache;
};

struct sd_pack_cache {
    const char *lo[MAX_MAPPINGS], *hi[MAX_MAPPINGS];
    int n_maps;
    sd_pack_entry **slots; /* hash table, cap a power of two (0 until the first entry) */
    size_t cap, n;
    size_t bytes;
    sd_pack_cache *next;
    bool listed;
};

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t cv = PTHREAD_COND_INITIALIZER;
static sd_pack_cache *caches;

sd_status sd_pack_cache_new(sd_pack_cache **out, sd_error *err)
{
    *out = sd_calloc(1, sizeof **out);
    return *out ? SD_OK : sd_fail_nomem(err, "weight cache");
}

sd_status sd_pack_cache_add_mapping(sd_pack_cache *c, const void *base, size_t len,
                                    sd_error *err)
{
    if (c->n_maps == MAX_MAPPINGS)
        return sd_fail(err, SD_ERR_NOMEM, "weight cache: more than %d mappings", MAX_MAPPINGS);
    pthread_mutex_lock(&mu);
    c->lo[c->n_maps] = base;
    c->hi[c->n_maps] = (const char *)base + len;
    c->n_maps++;
    if (!c->listed) {
        c->next = caches;
        caches = c;
        c->listed = true;
    }
    pthread_mutex_unlock(&mu);
    return SD_OK;
}

void sd_pack_cache_free(sd_pack_cache *c)
{
    if (!c)
        return;
    pthread_mutex_lock(&mu);
    for (sd_pack_cache **p = &caches; *p; p = &(*p)->next)
        if (*p == c) {
            *p = c->next;
            break;
        }
    pthread_mutex_unlock(&mu);
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i]) {
            sd_free(c->slots[i]->data);
            sd_free(c->slots[i]);
        }
    sd_free(c->slots);
    sd_free(c);
}

size_t sd_pack_total_bytes(void)
{
    size_t b = 0;
    pthread_mutex_lock(&mu);
    for (const sd_pack_cache *c = caches; c; c = c->next)
        b += c->bytes;
    pthread_mutex_unlock(&mu);
    return b;
}

/* ---- the hash table (called with mu held) ----------------------------------------------- */

static size_t hash(const void *src, int kind, size_t cap)
{
    uint64_t h = (uint64_t)(uintptr_t)src * 0x9E3779B97F4A7C15ULL ^ (uint64_t)kind;
    return (size_t)(h >> 17) & (cap - 1);
}

static size_t find_slot(const sd_pack_cache *c, const void *src, int kind)
{
    size_t i = hash(src, kind, c->cap);
    while (c->slots[i] && (c->slots[i]->src != src || c->slots[i]->kind != kind))
        i = (i + 1) & (c->cap - 1);
    return i;
}

static bool grow(sd_pack_cache *c)
{
    size_t cap = c->cap ? 2 * c->cap : 256;
    sd_pack_entry **old = c->slots;
    size_t old_cap = c->cap;
    c->slots = sd_calloc(cap, sizeof *c->slots);
    if (!c->slots) {
        c->slots = old;
        return false;
    }
    c->cap = cap;
    for (size_t i = 0; i < old_cap; i++)
        if (old[i])
            c->slots[find_slot(c, old[i]->src, old[i]->kind)] = old[i];
    sd_free(old);
    return true;
}

/* Remove the entry at slot i, re-inserting the run after it (linear probing). */
static void remove_at(sd_pack_cache *c, size_t i)
{
    c->slots[i] = NULL;
    c->n--;
    for (size_t j = (i + 1) & (c->cap - 1); c->slots[j]; j = (j + 1) & (c->cap - 1)) {
        sd_pack_entry *e = c->slots[j];
        c->slots[j] = NULL;
        c->slots[find_slot(c, e->src, e->kind)] = e;
    }
}

static sd_pack_cache *covering(const void *src, size_t bytes)
{
    const char *p = src;
    for (sd_pack_cache *c = caches; c; c = c->next)
        for (int i = 0; i < c->n_maps; i++)
            if (p >= c->lo[i] && p <= c->hi[i] && bytes <= (size_t)(c->hi[i] - p))
                return c;
    return NULL;
}

/* ---- lookups ------------------------------------------------------------------------------ */

sd_status sd_pack_get(const void *src, size_t src_bytes, int kind, size_t bytes,
                      sd_pack_slot *slot, sd_error *err)
{
    *slot = (sd_pack_slot){0};
    sd_status st = SD_OK;
    pthread_mutex_lock(&mu);
    sd_pack_cache *c = covering(src, src_bytes);
    while (c) {
        sd_pack_entry *e = c->cap ? c->slots[find_slot(c, src, kind)] : NULL;
        if (e && e->state == READY) {
            slot->data = e->data;
            break;
        }
        if (e) { /* another thread is packing it */
            pthread_cond_wait(&cv, &mu);
            continue;
        }
        if (2 * (c->n + 1) > c->cap && !grow(c)) {
            st = sd_fail_nomem(err, "weight cache");
            break;
        }
        e = sd_calloc(1, sizeof *e);
        void *data = e ? sd_malloc(SD_MAX(bytes, 1)) : NULL;
        if (!data) {
            sd_free(e);
            st = sd_fail_nomem(err, "packed weights");
            break;
        }
        /* long-lived and streamed through by every call: huge pages where the system
         * allows (fewer faults while packing, fewer TLB misses afterwards) */
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)data + page - 1) & ~(page - 1);
        uintptr_t hi = ((uintptr_t)data + bytes) & ~(page - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_HUGEPAGE);
        *e = (sd_pack_entry){.src = src, .src_bytes = src_bytes, .kind = kind, .state = BUSY,
                             .data = data, .bytes = bytes, .cache = c};
        c->slots[find_slot(c, src, kind)] = e;
        c->n++;
        c->bytes += bytes;
        *slot = (sd_pack_slot){.data = data, .fill = true, .entry = e};
        break;
    }
    pthread_mutex_unlock(&mu);
    return st;
}

void sd_pack_done(sd_pack_slot *slot, bool ok)
{
    sd_pack_entry *e = slot->entry;
    if (!e)
        return;
    pthread_mutex_lock(&mu);
    sd_pack_cache *c = e->cache;
    if (ok) {
        e->state = READY;
    } else {
        remove_at(c, find_slot(c, e->src, e->kind));
        c->bytes -= e->bytes;
        sd_free(e->data);
        sd_free(e);
    }
    pthread_cond_broadcast(&cv);
    pthread_mutex_unlock(&mu);
    if (ok) {
        /* the source pages are no longer needed in memory: the file still has them */
        uintptr_t page = (uintptr_t)sysconf(_SC_PAGESIZE);
        uintptr_t lo = ((uintptr_t)e->src + page - 1) & ~(page - 1);
        uintptr_t hi = ((uintptr_t)e->src + e->src_bytes) & ~(page - 1);
        if (hi > lo)
            madvise((void *)lo, hi - lo, MADV_DONTNEED);
    }
    *slot = (sd_pack_slot){0};
}
