/* The authors' 92 tensors: names, shapes, and their place in the flat parameter array. */
#include "model.h"

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
