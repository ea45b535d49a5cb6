/* Swin-Mamba layer on one (R, Q, 24) image: cyclic shift, 16x16 windows of 256 row-major
 * tokens, LayerNorm, Mamba, windows back, shift undone (no residual: the authors' quirk).
 *
 * The shift and the window partition are one permutation of the pixels, applied while
 * gathering a window's tokens and undone while scattering them, so nothing is rolled.
 *
 * A window's output depends on its 256 tokens alone, and the background of a scan gives
 * many windows with bitwise the same tokens (inside the background, and along each of its
 * borders with the image's edges). The forward remembers the last 8 distinct windows it
 * computed, compares each gathered window with them and copies the output where one
 * matches: the same numbers, without the LayerNorm and the Mamba. */
#include "model.h"
#include "../core/vmath.h"

#include <string.h>

enum { C = LPM_C, W = LPM_WIN, T = LPM_WIN * LPM_WIN, SEEN = 8 };

typedef struct {
    float *tok;     /* (256, 24) the window's input tokens */
    float *ln;      /* (256, 24) LayerNorm output = Mamba input */
    float *mean;    /* (256) */
    float *rstd;    /* (256) */
    float *g;       /* (256, 24) Mamba output / its gradient, then the gradient at tok */
    float *dln;     /* (256, 24) gradient at the LayerNorm output */
    float *mamba;   /* lpm_mamba_scratch_floats(256) */
    float *seen;    /* (SEEN + 1, 2, 256, 24) the forward's remembered windows, and one
                       spare pair that the next window is gathered into */
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
    PIECE(seen, (size_t)(SEEN + 1) * 2 * T * C);
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

/* A window's tokens from the image, and back (a token is one AVX-512 vector and a half
 * where baseline x86-64 moves six). */
static void gather(float *tok, const float *img, const int64_t *pix) {
    for (int t = 0; t < T; t++) memcpy(tok + t * C, img + pix[t] * C, C * sizeof(float));
}

static void scatter(float *img, const float *tok, const int64_t *pix) {
    for (int t = 0; t < T; t++) memcpy(img + pix[t] * C, tok + t * C, C * sizeof(float));
}

/* The forward's remembered windows: slot i holds tokens tok[i] (256, 24) then their output
 * at tok[i] + T C, filled in slot order, then the least recently used is replaced. Each
 * window is gathered into the spare pair; a window not seen before swaps it with the slot it
 * replaces, so no tokens are copied. */
typedef struct {
    float *tok[SEEN], *spare;
    int n;                /* slots filled */
    int64_t used[SEEN];   /* the window index of each slot's last use */
} seen_windows;

/* The slot holding these tokens, or -1. A window that differs usually does so in its first
 * token, so a miss costs little. */
static int seen_find(const seen_windows *s, const float *tok) {
    for (int i = 0; i < s->n; i++)
        if (!memcmp(s->tok[i], tok, sizeof(float) * T * C)) return i;
    return -1;
}

static int seen_free_slot(const seen_windows *s) {
    if (s->n < SEEN) return s->n;
    int lru = 0;
    for (int i = 1; i < SEEN; i++)
        if (s->used[i] < s->used[lru]) lru = i;
    return lru;
}

void lpm_swin_mamba_forward(float *out, const float *in, const lpm_mamba_params *p, int R,
                            int Q, int shift, float *scratch) {
    swin_buf b = {0};
    carve(&b, scratch);
    lpm_mamba_prepare(p, b.mamba);
    int64_t pix[T];
    seen_windows seen = {.spare = b.seen, .n = 0};
    for (int i = 0; i < SEEN; i++) seen.tok[i] = b.seen + (size_t)2 * (i + 1) * T * C;
    int64_t index = 0;
    for (int wr = 0; wr < R / W; wr++)
        for (int wq = 0; wq < Q / W; wq++, index++) {
            window_pixels(pix, wr, wq, R, Q, shift);
            gather(seen.spare, in, pix);
            int i = seen_find(&seen, seen.spare);
            if (i < 0) {
                i = seen_free_slot(&seen);
                float *tok = seen.spare;
                seen.spare = seen.tok[i], seen.tok[i] = tok;
                lpm_layernorm_forward(b.ln, NULL, NULL, tok, p->norm_w, p->norm_b, T, C);
                lpm_mamba_forward(tok + T * C, b.ln, p, T, b.mamba);
                if (seen.n < SEEN) seen.n++;
            }
            seen.used[i] = index;
            scatter(out, seen.tok[i] + T * C, pix);
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
