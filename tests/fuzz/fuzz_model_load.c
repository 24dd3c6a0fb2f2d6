/* tests/fuzz/fuzz_model_load.c - libFuzzer target: arbitrary bytes as a model file given to
 * sd_model_load (pickle/GGUF sniffing, safetensors validation, classification, renaming,
 * family detection, default hyper-parameters and their checks).  The bytes go into a memfd
 * opened by its /proc path, so nothing touches the disk.  A refused file must give an error
 * code and message; a loaded model is walked (info, every canonical tensor's bytes). */
#include "internal/model_load.h"

#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>

#define REQUIRE(c) ((c) ? (void)0 : __builtin_trap())

static int fd = -1;
static char path[64];
static volatile uint8_t sink;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (fd < 0) {
        fd = memfd_create("fuzz_model", MFD_CLOEXEC);
        REQUIRE(fd >= 0);
        snprintf(path, sizeof path, "/proc/self/fd/%d", fd);
    }
    REQUIRE(ftruncate(fd, 0) == 0);
    REQUIRE(pwrite(fd, data, size, 0) == (ssize_t)size);
    sd_model *m = NULL;
    sd_error err = {0};
    sd_status st = sd_model_load(NULL, path, &m, &err);
    if (st != SD_OK) {
        REQUIRE(m == NULL && err.code == st && err.msg[0]);
        REQUIRE(st == SD_ERR_FORMAT || st == SD_ERR_UNSUPPORTED || st == SD_ERR_NOMEM);
        REQUIRE(sd_alloc_live_bytes() == 0);
        return 0;
    }
    sd_model_info in;
    sd_model_get_info(m, &in);
    REQUIRE(in.family != SD_FAMILY_UNKNOWN && in.n_tensors == (int64_t)m->n);
    for (size_t i = 0; i < m->n; i++) {
        const sd_tensor *t = &m->tensors[i].t;
        REQUIRE(sd_model_tensor(m, m->tensors[i].name) == t);
        const uint8_t *p = t->data;
        size_t es = sd_dtype_size(t->dtype);
        /* the last element by the view's strides must lie inside the file ... */
        int64_t last = 0;
        bool empty = false;
        for (int d = 0; d < t->ndim; d++) {
            empty |= t->shape[d] == 0;
            last += (t->shape[d] - 1) * t->stride[d];
        }
        if (empty)
            continue;
        size_t end = (size_t)last * es + es;
        bool inside = false;
        /* ... of the file entry it is a view of (in the mapping or an aligned copy) */
        for (int k = 0; k < m->n_files && !inside; k++) {
            const sd_st_file *f = m->files[k];
            for (size_t j = 0; j < f->n && !inside; j++) {
                const uint8_t *lo = f->entries[j].t.data;
                if (f->entries[j].usable && p >= lo && p < lo + f->entries[j].nbytes)
                    inside = end <= (size_t)(lo + f->entries[j].nbytes - p);
            }
        }
        REQUIRE(inside);
        sink = p[0];
        sink = p[end - 1];
    }
    sd_model_free(m);
    REQUIRE(sd_alloc_live_bytes() == 0);
    return 0;
}
