/* The authors' 92 tensors: names, shapes, their place in the flat parameter array, and
 * their fresh PyTorch-style initialisation. */
#include "model.h"

#include <math.h>
#include <stdio.h>
#include <string.h>

static lpm_tensor_info table[LPM_NUM_TENSORS];
static int table_ready;

static int add(int i, const char *name, int ndim, int64_t s0, int64_t s1, int64_t s2,
               int64_t s3, int64_t s4) {
    static char names[LPM_NUM_TENSORS][64];
    strncpy(names[i], name, sizeof names[i] - 1);
    lpm_tensor_info *t = &table[i];
    int64_t s[5] = {s0, s1, s2, s3, s4};
    t->name = names[i];
    t->ndim = ndim;
    t->numel = 1;
    for (int k = 0; k < 5; k++) {
        t->shape[k] = k < ndim ? s[k] : 0;
        if (k < ndim) t->numel *= (size_t)s[k];
    }
    t->offset = i == 0 ? 0 : table[i - 1].offset + table[i - 1].numel;
    return i + 1;
}

static void build_table(void) {
    char name[64];
    int i = 0;
    i = add(i, "Conv_in.weight", 5, 8, 2, 3, 3, 3);
    i = add(i, "Conv_in.bias", 1, 8, 0, 0, 0, 0);
    for (int k = 1; k <= 3; k++)
        for (int l = 0; l < 2; l++) {
            snprintf(name, sizeof name, "Conv_P%d.layers.%d.conv.weight", k, l);
            i = add(i, name, 4, 8, 8 * (l + 1), 3, 3, 0);
            snprintf(name, sizeof name, "Conv_P%d.layers.%d.conv.bias", k, l);
            i = add(i, name, 1, 8, 0, 0, 0, 0);
        }
    static const struct { const char *suffix; int ndim; int64_t s0, s1, s2; } mamba[] = {
        {"norm.weight", 1, 24, 0, 0},         {"norm.bias", 1, 24, 0, 0},
        {"mamba.A_log", 2, 24, 8, 0},         {"mamba.D", 1, 24, 0, 0},
        {"mamba.in_proj.weight", 2, 48, 24, 0}, {"mamba.conv1d.weight", 3, 24, 1, 4},
        {"mamba.conv1d.bias", 1, 24, 0, 0},   {"mamba.x_proj.weight", 2, 18, 24, 0},
        {"mamba.dt_proj.weight", 2, 24, 2, 0}, {"mamba.dt_proj.bias", 1, 24, 0, 0},
        {"mamba.out_proj.weight", 2, 24, 24, 0},
    };
    for (int k = 1; k <= 3; k++)
        for (int l = 0; l < 2; l++)
            for (size_t m = 0; m < sizeof mamba / sizeof mamba[0]; m++) {
                snprintf(name, sizeof name, "Mamba_P%d.layers.%d.%s", k, l, mamba[m].suffix);
                i = add(i, name, mamba[m].ndim, mamba[m].s0, mamba[m].s1, mamba[m].s2, 0, 0);
            }
    const char *heads[2] = {"cfc", "cfc_mask"};
    const char *mats[4] = {"ff1", "ff2", "time_a", "time_b"};
    for (int h = 0; h < 2; h++) {
        for (int m = 0; m < 4; m++) {
            snprintf(name, sizeof name, "%s.%s.weight", heads[h], mats[m]);
            i = add(i, name, 5, 24, 24, 1, 1, 1);
        }
        snprintf(name, sizeof name, "%s.fc.weight", heads[h]);
        i = add(i, name, 5, h + 1, 24, 1, 1, 1);
        snprintf(name, sizeof name, "%s.fc.bias", heads[h]);
        i = add(i, name, 1, h + 1, 0, 0, 0, 0);
    }
    table_ready = 1;
}

const lpm_tensor_info *lpm_tensor_table(void) {
    /* Built once; the first call happens before any threads start (weights alloc/load). */
    if (!table_ready) build_table();
    return table;
}

int lpm_tensor_index(const char *name) {
    const lpm_tensor_info *t = lpm_tensor_table();
    for (int i = 0; i < LPM_NUM_TENSORS; i++)
        if (strcmp(t[i].name, name) == 0) return i;
    return -1;
}

void lpm_params_bind(lpm_params *p, float *flat) {
    const lpm_tensor_info *t = lpm_tensor_table();
    int i = 0;
#define NEXT() (flat + t[i++].offset)
    p->conv_in_w = NEXT();
    p->conv_in_b = NEXT();
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < 2; l++) {
            p->dense[k].w[l] = NEXT();
            p->dense[k].b[l] = NEXT();
        }
    for (int k = 0; k < 3; k++)
        for (int l = 0; l < 2; l++) {
            lpm_mamba_params *m = &p->mamba[k][l];
            m->norm_w = NEXT();
            m->norm_b = NEXT();
            m->A_log = NEXT();
            m->D = NEXT();
            m->in_proj = NEXT();
            m->conv_w = NEXT();
            m->conv_b = NEXT();
            m->x_proj = NEXT();
            m->dt_proj_w = NEXT();
            m->dt_proj_b = NEXT();
            m->out_proj = NEXT();
        }
    lpm_cfc_params *heads[2] = {&p->cfc, &p->cfc_mask};
    for (int h = 0; h < 2; h++) {
        heads[h]->ff1 = NEXT();
        heads[h]->ff2 = NEXT();
        heads[h]->time_a = NEXT();
        heads[h]->time_b = NEXT();
        heads[h]->fc_w = NEXT();
        heads[h]->fc_b = NEXT();
        heads[h]->nout = h + 1;
    }
#undef NEXT
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* PyTorch's fan_in of a Conv/Linear weight: shape[1] * kernel volume. */
static size_t fan_in(const lpm_tensor_info *t) { return t->numel / (size_t)t->shape[0]; }

static void fill_uniform(float *p, size_t n, double bound, lpm_rng *rng) {
    for (size_t i = 0; i < n; i++) p[i] = (float)((2.0 * lpm_rng_uniform(rng) - 1.0) * bound);
}

lpm_status lpm_weights_init(lpm_weights *w, uint64_t seed) {
    if (!w->data) return lpm_fail(LPM_ERR_INTERNAL, "weights are not allocated");
    const lpm_tensor_info *tab = lpm_tensor_table();
    lpm_rng rng;
    lpm_rng_seed(&rng, seed);
    /* Mamba sizes (docs/lpmnet.md section 1). */
    const int dt_rank = 2;
    const double dt_min = 0.001, dt_max = 0.1, dt_floor = 1e-4;
    for (int i = 0; i < LPM_NUM_TENSORS; i++) {
        const lpm_tensor_info *t = &tab[i];
        float *p = w->data + t->offset;
        if (ends_with(t->name, "mamba.A_log")) {
            /* A_log = log(repeat(arange(1, N+1), d_inner)) */
            for (int64_t c = 0; c < t->shape[0]; c++)
                for (int64_t n = 0; n < t->shape[1]; n++)
                    p[c * t->shape[1] + n] = (float)log((double)(n + 1));
        } else if (ends_with(t->name, "mamba.D")) {
            for (size_t k = 0; k < t->numel; k++) p[k] = 1.0f;
        } else if (ends_with(t->name, "dt_proj.weight")) {
            /* nn.init.uniform_(dt_proj.weight, -dt_rank**-0.5, dt_rank**-0.5) */
            fill_uniform(p, t->numel, pow(dt_rank, -0.5), &rng);
        } else if (ends_with(t->name, "dt_proj.bias")) {
            for (size_t k = 0; k < t->numel; k++) {
                /* dt = exp(rand * (log(dt_max) - log(dt_min)) + log(dt_min)).clamp(min=dt_init_floor) */
                double dt = exp(lpm_rng_uniform(&rng) * (log(dt_max) - log(dt_min)) + log(dt_min));
                if (dt < dt_floor) dt = dt_floor;
                /* inv_dt = dt + log(-expm1(-dt)) */
                p[k] = (float)(dt + log(-expm1(-dt)));
            }
        } else if (ends_with(t->name, "norm.weight")) {
            for (size_t k = 0; k < t->numel; k++) p[k] = 1.0f;
        } else if (ends_with(t->name, "norm.bias")) {
            memset(p, 0, t->numel * sizeof *p);
        } else if (ends_with(t->name, ".weight") && t->ndim >= 2) {
            /* kaiming_uniform_(a=sqrt(5)) reduces to uniform(+-1/sqrt(fan_in)) */
            fill_uniform(p, t->numel, 1.0 / sqrt((double)fan_in(t)), &rng);
        } else if (ends_with(t->name, ".bias")) {
            /* the bias bound comes from the fan_in of the weight beside it */
            char wname[128];
            size_t stem = strlen(t->name) - strlen("bias");
            snprintf(wname, sizeof wname, "%.*sweight", (int)stem, t->name);
            int wi = lpm_tensor_index(wname);
            if (wi < 0 || tab[wi].ndim < 2)
                return lpm_fail(LPM_ERR_INTERNAL, "init: no weight for bias '%s'", t->name);
            fill_uniform(p, t->numel, 1.0 / sqrt((double)fan_in(&tab[wi])), &rng);
        } else {
            return lpm_fail(LPM_ERR_INTERNAL, "init: no rule for tensor '%s'", t->name);
        }
    }
    return LPM_OK;
}
