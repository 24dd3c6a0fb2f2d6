/* model_detect.c - what is this file?  Tells SD single files and TAESD files from the many
 * other things people download as .safetensors (SDXL, SD3, Flux, LoRAs, ...) so that an
 * unsupported file gets a message naming what it is, and after loading decides the family
 * (SD1/SD2, inpainting) from the canonical tensors and checks each component is complete. */
#include "internal/model_load.h"

#include <string.h>

/* ---- classifying a standalone file ------------------------------------------------------- */

static bool starts(const char *s, const char *prefix)
{
    return !strncmp(s, prefix, strlen(prefix));
}

static bool any_starts(const sd_st_file *f, const char *prefix)
{
    for (size_t i = 0; i < f->n; i++)
        if (starts(f->entries[i].name, prefix))
            return true;
    return false;
}

static bool any_contains(const sd_st_file *f, const char *needle)
{
    for (size_t i = 0; i < f->n; i++)
        if (strstr(f->entries[i].name, needle))
            return true;
    return false;
}

/* Shape [.., c, ..] of an entry's dim 1, or -1. */
static int64_t dim1(const sd_st_file *f, const char *name)
{
    const sd_st_entry *e = sd_st_find(f, name);
    return e && e->usable && e->t.ndim >= 2 ? e->t.shape[1] : -1;
}

/* taesd.py Sequential files: every name starts with a layer index. */
static bool all_indexed(const sd_st_file *f)
{
    for (size_t i = 0; i < f->n; i++)
        if (f->entries[i].name[0] < '0' || f->entries[i].name[0] > '9')
            return false;
    return f->n > 0;
}

/* Recognised but unsupported kinds: {test prefix or substring, what to call it}. */
typedef struct other_kind {
    const char *pattern;
    bool substring;
    const char *what;
} other_kind;

static const other_kind others[] = {
    /* adapters first: they carry UNet/text-encoder names too */
    {"lora_up.", true, "a LoRA (low-rank adapter), not a full model"},
    {"lora_down.", true, "a LoRA (low-rank adapter), not a full model"},
    {".lora_A.", true, "a LoRA (low-rank adapter), not a full model"},
    {".lora_B.", true, "a LoRA (low-rank adapter), not a full model"},
    {"hada_w1_a", true, "a LyCORIS/LoHa adapter, not a full model"},
    {"lokr_w1", true, "a LyCORIS/LoKr adapter, not a full model"},
    {"control_model.", false, "a ControlNet"},
    {"input_hint_block.", true, "a ControlNet"},
    {"controlnet_cond_embedding.", false, "a ControlNet (diffusers)"},
    {"motion_modules.", true, "an AnimateDiff motion module"},
    {"conditioner.embedders.", false, "an SDXL checkpoint (conditioner.embedders.*)"},
    {"model.diffusion_model.label_emb.", false,
     "an SDXL-style class-conditioned UNet (label_emb; SDXL or SD unCLIP)"},
    {"add_embedding.linear_1.", false, "an SDXL UNet (diffusers add_embedding)"},
    {"model.diffusion_model.joint_blocks.", false, "an SD3 checkpoint (MMDiT joint_blocks)"},
    {"joint_blocks.", false, "an SD3 MMDiT (joint_blocks)"},
    {"double_blocks.", false, "a Flux checkpoint (double_blocks)"},
    {"model.diffusion_model.double_blocks.", false, "a Flux checkpoint (double_blocks)"},
    {"context_embedder.", false, "an SD3/Flux transformer (diffusers context_embedder)"},
    {"clip_txt_mapper.", false, "a Stable Cascade stage"},
    {"effnet_mapper.", false, "a Stable Cascade stage"},
    {".time_stack.", true, "a Stable Video Diffusion checkpoint"},
    {"emb_params", false, "a textual-inversion embedding"},
    {"string_to_param.", false, "a textual-inversion embedding"},
};

sd_status sd_model_reject_others(const sd_st_file *f, const char *what, sd_error *err)
{
    for (size_t k = 0; k < SD_ARRAY_LEN(others); k++) {
        bool hit = others[k].substring ? any_contains(f, others[k].pattern)
                                       : any_starts(f, others[k].pattern);
        if (hit)
            return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: %s: not supported", what,
                           others[k].what);
    }
    return SD_OK;
}

sd_status sd_model_classify(const sd_st_file *f, const char *what, sd_layout *out,
                            sd_error *err)
{
    sd_status st = sd_model_reject_others(f, what, err);
    if (st != SD_OK)
        return st;
    if (any_starts(f, "model.diffusion_model.") || any_starts(f, "first_stage_model.") ||
        any_starts(f, "cond_stage_model.transformer.") ||
        any_starts(f, "cond_stage_model.model.")) {
        *out = SD_LAYOUT_LDM;
        return SD_OK;
    }
    if (any_starts(f, "encoder.layers.") || any_starts(f, "decoder.layers.")) {
        *out = SD_LAYOUT_TAESD_DIFFUSERS;
        return SD_OK;
    }
    if (all_indexed(f)) {
        /* the encoder's first conv takes RGB; the decoder's (index 1) takes 4 latents */
        if (dim1(f, "0.weight") == 3) {
            *out = SD_LAYOUT_TAESD_ENCODER;
            return SD_OK;
        }
        if (!sd_st_find(f, "0.weight") && dim1(f, "1.weight") == 4) {
            *out = SD_LAYOUT_TAESD_DECODER;
            return SD_OK;
        }
    }
    const char *lone = NULL;
    if (any_starts(f, "encoder.down.") || any_starts(f, "decoder.up."))
        lone = "a standalone VAE (original naming)";
    else if (any_starts(f, "encoder.down_blocks.") || any_starts(f, "decoder.up_blocks."))
        lone = "a standalone VAE (diffusers naming); load the whole diffusers folder";
    else if (any_starts(f, "down_blocks.") && any_starts(f, "conv_in."))
        lone = "a standalone diffusers UNet; load the whole diffusers folder";
    else if (any_starts(f, "text_model.encoder.layers."))
        lone = "a standalone CLIP text encoder; load the whole diffusers folder";
    else if (any_starts(f, "clip_l") || any_starts(f, "clip_g"))
        lone = "a textual-inversion embedding";
    if (lone)
        return sd_fail(err, SD_ERR_UNSUPPORTED, "%s: %s: not supported", what, lone);
    if (f->n == 0)
        return sd_fail(err, SD_ERR_FORMAT, "%s: not a Stable Diffusion checkpoint (no tensors)",
                       what);
    return sd_fail(err, SD_ERR_FORMAT,
                   "%s: not a Stable Diffusion checkpoint (%zu tensors, first: %.80s)", what,
                   f->n, f->entries[0].name);
}

/* ---- family and completeness ------------------------------------------------------------- */

static bool has_prefix(const sd_model *m, const char *prefix)
{
    size_t n = strlen(prefix);
    for (size_t i = 0; i < m->n; i++)
        if (!strncmp(m->tensors[i].name, prefix, n))
            return true;
    return false;
}

/* Each name of `need` (after `prefix`) must be present. */
static sd_status require(const sd_model *m, const char *what, const char *component,
                         const char *prefix, const char *const *need, size_t n, sd_error *err)
{
    for (size_t i = 0; i < n; i++)
        if (!sd_model_tensorf(m, "%s%s", prefix, need[i]))
            return sd_fail(err, SD_ERR_FORMAT, "%s: %s is missing tensor %s%s", what, component,
                           prefix, need[i]);
    return SD_OK;
}

static const char *const unet_need[] = {
    "input_blocks.0.0.weight", "time_embed.0.weight", "time_embed.2.weight", "out.0.weight",
    "out.2.weight",
};
static const char *const vae_need[] = {
    "encoder.conv_in.weight", "encoder.conv_out.weight", "quant_conv.weight",
    "post_quant_conv.weight", "decoder.conv_in.weight", "decoder.conv_out.weight",
};
static const char *const text_need[] = {
    "embeddings.token_embedding.weight", "embeddings.position_embedding.weight",
    "encoder.layers.0.self_attn.q_proj.weight", "final_layer_norm.weight",
};
static const char *const taesd_enc_need[] = {"layers.0.weight", "layers.14.weight"};
static const char *const taesd_dec_need[] = {"layers.0.weight", "layers.18.weight"};

static const char *in_channels_hint(int64_t c)
{
    switch (c) {
    case 5: return " (an SD 2 depth model?)";
    case 7: return " (the SD x4 upscaler?)";
    case 8: return " (an InstructPix2Pix model?)";
    default: return "";
    }
}

sd_status sd_model_detect_family(sd_model *m, const char *what, sd_error *err)
{
    sd_model_info *in = &m->info;
    in->has_unet = has_prefix(m, "model.diffusion_model.");
    in->has_vae = has_prefix(m, "first_stage_model.");
    in->has_text_encoder = has_prefix(m, "text_model.");
    in->has_taesd_encoder = has_prefix(m, "taesd.encoder.");
    in->has_taesd_decoder = has_prefix(m, "taesd.decoder.");
    sd_status st;
    if (in->has_taesd_encoder || in->has_taesd_decoder) {
        if (in->has_unet || in->has_vae || in->has_text_encoder)
            return sd_fail(err, SD_ERR_FORMAT, "%s: TAESD mixed with other components", what);
        in->family = SD_FAMILY_TAESD;
        if (in->has_taesd_encoder &&
            (st = require(m, what, "TAESD encoder", "taesd.encoder.", taesd_enc_need,
                          SD_ARRAY_LEN(taesd_enc_need), err)) != SD_OK)
            return st;
        if (in->has_taesd_decoder &&
            (st = require(m, what, "TAESD decoder", "taesd.decoder.", taesd_dec_need,
                          SD_ARRAY_LEN(taesd_dec_need), err)) != SD_OK)
            return st;
        return SD_OK;
    }
    if (!in->has_unet) {
        const char *fam = !in->has_text_encoder ? "Stable Diffusion" : m->openclip ? "SD2" : "SD1";
        return sd_fail(err, SD_ERR_FORMAT, "%s: %s checkpoint without a UNet (%s%s)", what, fam,
                       in->has_text_encoder ? "has a text encoder" : "no text encoder",
                       in->has_vae ? ", a VAE" : "");
    }
    if ((st = require(m, what, "UNet", "model.diffusion_model.", unet_need,
                      SD_ARRAY_LEN(unet_need), err)) != SD_OK)
        return st;
    if (in->has_vae && (st = require(m, what, "VAE", "first_stage_model.", vae_need,
                                     SD_ARRAY_LEN(vae_need), err)) != SD_OK)
        return st;
    if (in->has_text_encoder && (st = require(m, what, "text encoder", "text_model.", text_need,
                                              SD_ARRAY_LEN(text_need), err)) != SD_OK)
        return st;

    const sd_tensor *conv_in = sd_model_tensor(m, "model.diffusion_model.input_blocks.0.0.weight");
    if (conv_in->ndim != 4)
        return sd_fail(err, SD_ERR_FORMAT, "%s: UNet conv_in weight has %d dims, not 4", what,
                       conv_in->ndim);
    int64_t c = conv_in->shape[1];
    if (c != 4 && c != 9)
        return sd_fail(err, SD_ERR_UNSUPPORTED,
                       "%s: UNet with %lld input channels%s: not supported (4 or 9 expected)",
                       what, (long long)c, in_channels_hint(c));
    in->unet_in_channels = (int)c;
    /* SD 2.x UNets project into attention with linear layers, SD 1.x with 1x1 convolutions */
    const sd_tensor *proj =
        sd_model_tensor(m, "model.diffusion_model.middle_block.1.proj_in.weight");
    bool sd2 = m->openclip || (proj && proj->ndim == 2);
    if (sd2)
        in->family = c == 9 ? SD_FAMILY_SD2_INPAINT : SD_FAMILY_SD2;
    else
        in->family = c == 9 ? SD_FAMILY_SD1_INPAINT : SD_FAMILY_SD1;
    return SD_OK;
}
