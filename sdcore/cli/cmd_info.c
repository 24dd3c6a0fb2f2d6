/* cli/cmd_info.c - `sd info MODEL`: load a model and print what was detected (family, weight
 * dtype, prediction type, parameters per component, tensor count) and the kernel variant in
 * use.  A corrupt or unsupported model is one line on stderr and exit status 1. */
#include "cli/cli.h"

#include <stdio.h>

static const char *prediction_name(sd_prediction p)
{
    switch (p) {
    case SD_PREDICT_EPSILON: return "epsilon";
    case SD_PREDICT_V: return "v_prediction";
    case SD_PREDICT_UNKNOWN: break;
    }
    return "not stated (family default)";
}

static int run(int argc, char **argv)
{
    if (argc != 2)
        return sd_cli_fail("info", "usage: sd info MODEL");
    sd_error err = {0};
    sd_model *m = NULL;
    if (sd_model_load(NULL, argv[1], &m, &err) != SD_OK)
        return sd_cli_fail_err("info", &err);
    sd_model_info in;
    sd_model_get_info(m, &in);
    printf("model:       %s\n", argv[1]);
    printf("family:      %s\n", sd_family_name(in.family));
    printf("dtype:       %s\n", sd_dtype_name(in.dtype));
    if (in.family != SD_FAMILY_TAESD)
        printf("prediction:  %s\n", prediction_name(in.prediction));
    if (in.has_unet)
        printf("unet:        %lld parameters, %d input channels\n", (long long)in.params_unet,
               in.unet_in_channels);
    if (in.has_vae)
        printf("vae:         %lld parameters, scaling factor %g\n", (long long)in.params_vae,
               in.vae_scaling_factor);
    if (in.has_text_encoder)
        printf("text:        %lld parameters\n", (long long)in.params_text);
    if (in.has_taesd_encoder || in.has_taesd_decoder)
        printf("taesd:       %lld parameters (%s%s%s)\n", (long long)in.params_taesd,
               in.has_taesd_encoder ? "encoder" : "",
               in.has_taesd_encoder && in.has_taesd_decoder ? " + " : "",
               in.has_taesd_decoder ? "decoder" : "");
    if (in.family != SD_FAMILY_TAESD) {
        if (!in.has_vae)
            printf("missing:     VAE\n");
        if (!in.has_text_encoder)
            printf("missing:     text encoder\n");
    }
    printf("tensors:     %lld\n", (long long)in.n_tensors);
    printf("kernels:     %s\n", sd_kernel_variant());
    sd_model_free(m);
    return 0;
}

const sd_cli_cmd sd_cli_cmd_info = {
    "info", "MODEL", "load a model and print its family, dtype and parameter counts", run};
