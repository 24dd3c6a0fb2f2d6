/* internal/pack.h - weights packed once into the layout of the GEMM micro-kernels and kept
 * for the life of the model they come from.  A model's cache covers its read-only file
 * mappings: the ops find it from a weight's data pointer (caches are listed process-wide),
 * pack the weight on its first use and reuse the pack on every later call, from any ctx.
 * Weights outside every cache (tensors a test made, misaligned copies) are not cached: the
 * ops then pack the pieces they need per call.  Packing one weight happens once even when
 * several threads ask at the same time: the first one packs, the others wait. */
#ifndef SD_INTERNAL_PACK_H
#define SD_INTERNAL_PACK_H

#include "internal/common.h"

typedef struct sd_pack_cache sd_pack_cache;
typedef struct sd_pack_entry sd_pack_entry;

/* An empty cache, not yet findable.  Errors: SD_ERR_NOMEM. */
sd_status sd_pack_cache_new(sd_pack_cache **out, sd_error *err);
/* Let the cache hold packs of weights inside [base, base + len), a read-only file mapping
 * (its pages may be dropped with MADV_DONTNEED once a weight is packed: they are re-read
 * from the file if touched again).  Call before the model is used.  Errors: SD_ERR_NOMEM. */
sd_status sd_pack_cache_add_mapping(sd_pack_cache *c, const void *base, size_t len,
                                    sd_error *err);
/* Forget the cache and free every pack in it.  No op may be using them.  NULL is a no-op. */
void sd_pack_cache_free(sd_pack_cache *c);

/* Bytes of packed weights held by all caches (for sd bench). */
size_t sd_pack_total_bytes(void);

/* The result of a lookup. */
typedef struct sd_pack_slot {
    void *data;            /* the pack (bytes long), or NULL: no cache covers the weight */
    bool fill;             /* data is fresh: the caller packs into it, then sd_pack_done */
    sd_pack_entry *entry;  /* private */
} sd_pack_slot;

/* The pack of weight `src` (a tensor's data pointer, src_bytes long) in layout `kind` (an
 * ops.c layout number), `bytes` long.  Found ready: slot->data set, fill false.  Being packed
 * by another thread: waits for it.  Not there: allocates it and returns fill = true; the
 * caller must then pack and call sd_pack_done whatever happens.  Not covered by any cache:
 * data NULL.  Errors: SD_ERR_NOMEM (the pack could not be allocated). */
sd_status sd_pack_get(const void *src, size_t src_bytes, int kind, size_t bytes,
                      sd_pack_slot *slot, sd_error *err);
/* Publish a pack filled after sd_pack_get (ok), or drop it (!ok: the next caller packs). */
void sd_pack_done(sd_pack_slot *slot, bool ok);

#endif
