/* Swin-Mamba layer on one (R, Q, 24) image: cyclic shift, 16x16 windows of 256 row-major
 * tokens, LayerNorm, Mamba, windows back, shift undone (no residual: the authors' quirk).
 *
 * The shift and the window partition are one permutation of the pixels, applied while
 * gathering a window's tokens and undone while scattering them, so nothing is rolled. */
#include "model.h"
#include "vmath.h"

#include <string.h>

enum { C = LPM_C, W = LPM_WIN, T = LPM_WIN * LPM_WIN };

typedef struct {
    float *tok;     /* (256, 24) the window's input tokens */
    float *ln;      /* (256, 24) LayerNorm output = Mamba input */
    float *mean;    /* (256) */
    float *rstd;    /* (256) */
    float *g;       /* (256, 24) Mamba output / its gradient, then the gradient at tok */
    float *dln;     /* (256, 24) gradient at the LayerNorm output */
    float *mamba;   /* lpm_mamba_scratch_floats(256) */
} swin_buf;

static size_t carve(swin_buf *b, float *base) {
    /* every piece is a multiple of 16 floats, so each starts 64-byte aligned */
    size_t at = 0;
#define PIECE(field, n)                 \
    do {                                \
        if (base) b->field = base + at; \
        at += (n);                      \
    } while (0)
    PIECE(tok, T * C);
    PIECE(ln, T * C);
    PIECE(mean, T);
    PIECE(rstd, T);
    PIECE(g, T * C);
    PIECE(dln, T * C);
    PIECE(mamba, lpm_mamba_scratch_floats(T));
#undef PIECE
    return at;
}

size_t lpm_swin_scratch_floats(void) { return carve(NULL, NULL); }

/* Offset (in pixels) of token t = 16 i + j of window (wr, wq), for each t. */
static void window_pixels(int64_t *pix, int wr, int wq, int R, int Q, int shift) {
    for (int i = 0; i < W; i++) {
        const int64_t r = (W * wr + i + shift) % R;
        for (int j = 0; j < W; j++) pix[i * W + j] = r * Q + (W * wq + j + shift) % Q;
    }
}

/* A window's tokens from the image, and back (cloned: a token is one AVX-512 vector and a
 * half where baseline x86-64 moves six). */
LPM_CLONES static void gather(float *tok, const float *img, const int64_t *pix) {
    for (int t = 0; t < T; t++) memcpy(tok + t * C, img + pix[t] * C, C * sizeof(float));
}

LPM_CLONES static void scatter(float *img, const float *tok, const int64_t *pix) {
    for (int t = 0; t < T; t++) memcpy(img + pix[t] * C, tok + t * C, C * sizeof(float));
}

void lpm_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p, int R,
                            int Q, int shift, float *scratch) {
    swin_buf b = {0};
    carve(&b, scratch);
    lpm_mamba_prepare(p, b.mamba);
    int64_t pix[T];
    for (int wr = 0; wr < R / W; wr++)
        for (int wq = 0; wq < Q / W; wq++) {
            window_pixels(pix, wr, wq, R, Q, shift);
            gather(b.tok, in, pix);
            lpm_layernorm_forward(b.ln, NULL, NULL, b.tok, p->norm_w, p->norm_b, T, C);
            lpm_mamba_forward(b.g, b.ln, p, T, b.mamba);
            scatter(out, b.g, pix);
        }
}

void lpm_swin_mamba_backward(float *din, lpm_mamba_params *grad, const float *dout,
                             const float *in, const lpm_mamba_params *p, int R, int Q,
                             int shift, float *scratch) {
    swin_buf b = {0};
    carve(&b, scratch);
    lpm_mamba_prepare(p, b.mamba);
    int64_t pix[T];
    for (int wr = 0; wr < R / W; wr++)
        for (int wq = 0; wq < Q / W; wq++) {
            window_pixels(pix, wr, wq, R, Q, shift);
            gather(b.tok, in, pix);
            lpm_layernorm_forward(b.ln, b.mean, b.rstd, b.tok, p->norm_w, p->norm_b, T, C);
            gather(b.g, dout, pix);
            memset(b.dln, 0, sizeof(float) * T * C);
            lpm_mamba_backward(b.dln, grad, b.g, b.ln, p, T, b.mamba);
            memset(b.g, 0, sizeof(float) * T * C);
            lpm_layernorm_backward(b.g, grad->norm_w, grad->norm_b, b.dln, b.tok, b.mean,
                                   b.rstd, p->norm_w, T, C);
            for (int t = 0; t < T; t++) {
                float *d = din + pix[t] * C;
                const float *g = b.g + t * C;
                for (int c = 0; c < C; c++) d[c] += g[c];
            }
        }
}
