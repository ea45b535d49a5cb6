/* Element-wise max of the three branches, torch.maximum(torch.maximum(P1, P2), P3), and
 * the share of the gradient each branch gets. Kept as bits: bit k set where branch k
 * equals the max (order-independent, so branches may be merged in any order). */
#ifndef LPM_MAX3_H
#define LPM_MAX3_H

/* Merge branch k's value v into the running max *m and its winner bits *bits (the first
 * branch merged sets *m = v, *bits = 1 << k instead). Selects, no branches, so a loop over
 * channels vectorises. */
static inline void lpm_max3_merge(float *m, unsigned char *bits, float v, int k) {
    const unsigned char bk = (unsigned char)(1u << k);
    const int gt = v > *m, eq = v == *m;
    *bits = (unsigned char)(gt ? bk : eq ? *bits | bk : *bits);
    *m = gt ? v : *m;
}

/* PyTorch's maximum backward halves the gradient on an exact tie, at each of the two
 * nested maxima: all three equal gives P3 1/2, P1 and P2 1/4 each. */
static inline float lpm_max3_share(unsigned bits, int k) {
    int inner = (bits & 3u) != 0; /* max(P1, P2) equals the max */
    int outer_p3 = (bits & 4u) != 0;
    float inner_share = (bits & 3u) == 3u ? 0.5f : 1.0f;
    if (k == 2) return outer_p3 ? (inner ? 0.5f : 1.0f) : 0.0f;
    if (!(bits & (1u << k))) return 0.0f;
    return (outer_p3 ? 0.5f : 1.0f) * inner_share;
}

#endif
