/* tests/t_params_def.c - the texts of plugin/sd_params.def, which the dialogs (ui/fields.c)
 * turn into labels, mnemonics and tooltips and the PDB into argument descriptions: every
 * parameter has a key (unique), a label and a description (the tooltip of its widgets: an
 * empty one would leave a field without help), and each filter's dialog has no mnemonic
 * twice, counting the dialog's own buttons (ui/dialog.c).
 *
 * The list is expanded here without libgimp: the macros keep key, label, blurb and the
 * filter bits and drop the ui hint (an unused macro argument is never expanded), so the
 * filter bits are redeclared below with the names and values of plugin/sdp.h. */
#include "harness.h"

#include <ctype.h>

#define N_(s) s

enum {
    SDP_F_TXT2IMG = 1 << 0,
    SDP_F_IMG2IMG = 1 << 1,
    SDP_F_INPAINT = 1 << 2,
    SDP_F_OUTPAINT = 1 << 3,
    SDP_F_DENOISE = 1 << 4,
    SDP_F_ALL = (1 << 5) - 1,
};
static const char *const filter_names[] = {"txt2img", "img2img", "inpaint", "outpaint",
                                           "denoise"};

typedef struct param {
    const char *key, *label, *blurb;
    unsigned filters;
} param;

static const param params[] = {
#define SDP_STR(id, key, label, blurb, def, size, filters, ui) {key, label, blurb, filters},
#define SDP_INT(id, key, label, blurb, def, lo, hi, filters, ui) {key, label, blurb, filters},
#define SDP_FLOAT(id, key, label, blurb, def, lo, hi, filters, ui) {key, label, blurb, filters},
#define SDP_BOOL(id, key, label, blurb, def, filters, ui) {key, label, blurb, filters},
#define SDP_ENUM(id, key, label, blurb, def, lo, hi, name_fn, filters, ui)                     \
    {key, label, blurb, filters},
#include "../plugin/sd_params.def"
#undef SDP_STR
#undef SDP_INT
#undef SDP_FLOAT
#undef SDP_BOOL
#undef SDP_ENUM
};
#define N_PARAMS (sizeof params / sizeof params[0])

/* The mnemonics of every dialog's own widgets (ui/dialog.c): _Advanced, _Generate, _Close,
 * _Help, Ca_ncel. */
static const char fixed_mnemonics[] = "agchn";

/* The mnemonic of a label (lower case), 0 when it has none; -1 when the label has more
 * than one '_' or one not followed by a letter or digit. */
static int mnemonic(const char *label)
{
    const char *u = strchr(label, '_');
    if (!u)
        return 0;
    if (!isalnum((unsigned char)u[1]) || strchr(u + 1, '_'))
        return -1;
    return tolower((unsigned char)u[1]);
}

int main(void)
{
    CHECK(N_PARAMS >= 20, "only %zu parameters expanded", N_PARAMS);
    for (size_t i = 0; i < N_PARAMS; i++) {
        const param *p = &params[i];
        CHECK(p->key && p->key[0], "parameter %zu has no key", i);
        if (!p->key || !p->key[0])
            continue;
        CHECK(p->label && p->label[0], "%s: no label", p->key);
        CHECK(p->blurb && strlen(p->blurb) >= 10, "%s: no description (the tooltip)", p->key);
        CHECK(p->blurb && p->blurb[0] && p->blurb[strlen(p->blurb) - 1] == '.',
              "%s: the description does not end a sentence: \"%s\"", p->key, p->blurb);
        CHECK(p->label && mnemonic(p->label) >= 0, "%s: bad mnemonic in \"%s\"", p->key,
              p->label);
        CHECK(p->filters && (p->filters & ~(unsigned)SDP_F_ALL) == 0, "%s: filters %#x", p->key,
              p->filters);
        for (size_t j = 0; j < i; j++)
            CHECK(strcmp(params[j].key, p->key) != 0, "key %s twice", p->key);
    }

    /* each filter's dialog: no mnemonic twice */
    for (int f = 0; f < 5; f++) {
        char seen[128] = {0};
        for (const char *m = fixed_mnemonics; *m; m++)
            seen[(int)*m] = 1;
        for (size_t i = 0; i < N_PARAMS; i++) {
            const param *p = &params[i];
            int m = p->label ? mnemonic(p->label) : 0;
            if (!(p->filters & (1u << f)) || m <= 0 || m >= 128)
                continue;
            CHECK(!seen[m], "%s: the mnemonic '%c' of \"%s\" is taken in the %s dialog", p->key,
                  m, p->label, filter_names[f]);
            seen[m] = 1;
        }
    }
    return t_summary("t_params_def");
}
