/* The kernel sets' symbol names. The kernel sources (conv.c, dense.c, layernorm.c, mamba.c,
 * window.c, cfc.c, network.c) are compiled once per instruction set (cmake/kernels.cmake)
 * with -DLPM_KERNEL_SUFFIX=<set>; this header, included by model.h, then renames every
 * function they export to name_<set> (lpm_dense_forward -> lpm_dense_forward_avx2), so the
 * sets link side by side and a set's calls to its own layers stay inside the set.
 * dispatch.c holds the unsuffixed names: each calls the table chosen at start (kernels.h).
 * A function added to model.h's layer API must be added here and to the table. */
#ifndef LPM_KERNEL_NAMES_H
#define LPM_KERNEL_NAMES_H

#ifdef LPM_KERNEL_SUFFIX
#define LPM_KSYM_PASTE(name, suffix) name##_##suffix
#define LPM_KSYM_EXPAND(name, suffix) LPM_KSYM_PASTE(name, suffix)
/* (a macro naming itself inside its own expansion is left alone, so each name below
 * expands once) */
#define LPM_KSYM(name) LPM_KSYM_EXPAND(name, LPM_KERNEL_SUFFIX)

#define lpm_conv_in_forward LPM_KSYM(lpm_conv_in_forward)
#define lpm_conv_in_backward LPM_KSYM(lpm_conv_in_backward)
#define lpm_dense_forward LPM_KSYM(lpm_dense_forward)
#define lpm_dense_backward LPM_KSYM(lpm_dense_backward)
#define lpm_layernorm_forward LPM_KSYM(lpm_layernorm_forward)
#define lpm_layernorm_backward LPM_KSYM(lpm_layernorm_backward)
#define lpm_mamba_scratch_floats LPM_KSYM(lpm_mamba_scratch_floats)
#define lpm_mamba_prepare LPM_KSYM(lpm_mamba_prepare)
#define lpm_mamba_forward LPM_KSYM(lpm_mamba_forward)
#define lpm_mamba_backward LPM_KSYM(lpm_mamba_backward)
#define lpm_swin_scratch_floats LPM_KSYM(lpm_swin_scratch_floats)
#define lpm_swin_mamba_forward LPM_KSYM(lpm_swin_mamba_forward)
#define lpm_swin_mamba_backward LPM_KSYM(lpm_swin_mamba_backward)
#define lpm_cfc_forward LPM_KSYM(lpm_cfc_forward)
#define lpm_cfc_backward LPM_KSYM(lpm_cfc_backward)
#define lpm_net_create LPM_KSYM(lpm_net_create)
#define lpm_net_free LPM_KSYM(lpm_net_free)
#define lpm_net_forward LPM_KSYM(lpm_net_forward)
#define lpm_net_backward LPM_KSYM(lpm_net_backward)
#define lpm_recon_masks LPM_KSYM(lpm_recon_masks)
#endif

#endif
