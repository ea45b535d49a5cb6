/* safetensors: u64 little-endian header length N, N bytes of JSON
 *   {"__metadata__": {str: str}, name: {"dtype", "shape", "data_offsets": [begin, end]}, ...}
 * then the raw little-endian tensor bytes (offsets relative to the end of the header).
 * Every size comes from an untrusted file, so each one is bounds- and overflow-checked. */
#include "io.h"

#include <errno.h>
#include <string.h>
#include <sys/stat.h>

/* The reference implementation refuses headers above 100 MB; so do we. */
#define ST_MAX_HEADER (100u * 1000u * 1000u)

typedef struct {
    char *name;
    char dtype[8];
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    float *data;
} st_tensor;

struct lpm_st_file {
    int n;
    st_tensor *t;
    int n_meta;
    char **meta;   /* key, value, key, value, ... */
};

void lpm_st_close(lpm_st_file *f) {
    if (!f) return;
    for (int i = 0; i < f->n; i++) {
        free(f->t[i].name);
        free(f->t[i].data);
    }
    free(f->t);
    for (int i = 0; i < 2 * f->n_meta; i++) free(f->meta[i]);
    free(f->meta);
    free(f);
}

const char *lpm_st_meta(const lpm_st_file *f, const char *key) {
    for (int i = 0; i < f->n_meta; i++)
        if (strcmp(f->meta[2 * i], key) == 0) return f->meta[2 * i + 1];
    return NULL;
}

int lpm_st_count(const lpm_st_file *f) { return f->n; }
const char *lpm_st_name(const lpm_st_file *f, int i) { return f->t[i].name; }
const char *lpm_st_dtype(const lpm_st_file *f, int i) { return f->t[i].dtype; }

const float *lpm_st_find(const lpm_st_file *f, const char *name, int *ndim,
                         int64_t shape[LPM_ST_MAXDIM]) {
    for (int i = 0; i < f->n; i++) {
        if (strcmp(f->t[i].name, name) != 0) continue;
        if (ndim) *ndim = f->t[i].ndim;
        if (shape) memcpy(shape, f->t[i].shape, sizeof f->t[i].shape);
        return f->t[i].data;
    }
    return NULL;
}

/* ------------------------------------------------------------ JSON header */

typedef struct {
    const char *path;
    const char *start, *s, *end;  /* the header text and the parse position */
} json;

static lpm_status jfail(const json *j, const char *what) {
    return lpm_fail(LPM_ERR_INPUT, "%s: bad safetensors header: %s at byte %ld", j->path, what,
                    8 + (long)(j->s - j->start));
}

static void skip_ws(json *j) {
    while (j->s < j->end && (*j->s == ' ' || *j->s == '\t' || *j->s == '\n' || *j->s == '\r'))
        j->s++;
}

/* Consume c (after whitespace) or fail. */
static int expect(json *j, char c) {
    skip_ws(j);
    if (j->s < j->end && *j->s == c) {
        j->s++;
        return 1;
    }
    return 0;
}

static int hexval(char c) {
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(json *j, unsigned *u) {
    if (j->end - j->s < 4) return 0;
    *u = 0;
    for (int k = 0; k < 4; k++) {
        int h = hexval(j->s[k]);
        if (h < 0) return 0;
        *u = *u * 16 + (unsigned)h;
    }
    j->s += 4;
    return 1;
}

/* A JSON string into a new NUL-terminated UTF-8 buffer (*out, owned by the caller). */
static lpm_status parse_string(json *j, char **out) {
    *out = NULL;
    if (!expect(j, '"')) return jfail(j, "expected a string");
    /* The decoded string is never longer than the encoded one. */
    const char *q = j->s;
    while (q < j->end && *q != '"') q += (*q == '\\' && q + 1 < j->end) ? 2 : 1;
    if (q >= j->end) return jfail(j, "unterminated string");
    char *buf = lpm_malloc((size_t)(q - j->s) + 1, 1);
    if (!buf) return LPM_ERR_INTERNAL;
    size_t n = 0;
    while (*j->s != '"') {
        unsigned char c = (unsigned char)*j->s++;
        if (c < 0x20) {
            free(buf);
            return jfail(j, "control character in string");
        }
        if (c != '\\') {
            buf[n++] = (char)c;
            continue;
        }
        char e = *j->s++;
        unsigned u;
        switch (e) {
        case '"': buf[n++] = '"'; break;
        case '\\': buf[n++] = '\\'; break;
        case '/': buf[n++] = '/'; break;
        case 'b': buf[n++] = '\b'; break;
        case 'f': buf[n++] = '\f'; break;
        case 'n': buf[n++] = '\n'; break;
        case 'r': buf[n++] = '\r'; break;
        case 't': buf[n++] = '\t'; break;
        case 'u':
            if (!read_hex4(j, &u)) {
                free(buf);
                return jfail(j, "bad \\u escape");
            }
            if (u >= 0xd800 && u < 0xdc00) {
                unsigned lo;
                if (j->end - j->s < 6 || j->s[0] != '\\' || j->s[1] != 'u' ||
                    (j->s += 2, !read_hex4(j, &lo)) || lo < 0xdc00 || lo >= 0xe000) {
                    free(buf);
                    return jfail(j, "unpaired surrogate in \\u escape");
                }
                u = 0x10000 + ((u - 0xd800) << 10) + (lo - 0xdc00);
            } else if (u >= 0xdc00 && u < 0xe000) {
                free(buf);
                return jfail(j, "unpaired surrogate in \\u escape");
            }
            if (u == 0) {
                free(buf);
                return jfail(j, "NUL character in string");
            }
            /* UTF-8: at most 4 bytes, never more than the 6+ characters consumed. */
            if (u < 0x80) {
                buf[n++] = (char)u;
            } else if (u < 0x800) {
                buf[n++] = (char)(0xc0 | (u >> 6));
                buf[n++] = (char)(0x80 | (u & 0x3f));
            } else if (u < 0x10000) {
                buf[n++] = (char)(0xe0 | (u >> 12));
                buf[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
                buf[n++] = (char)(0x80 | (u & 0x3f));
            } else {
                buf[n++] = (char)(0xf0 | (u >> 18));
                buf[n++] = (char)(0x80 | ((u >> 12) & 0x3f));
                buf[n++] = (char)(0x80 | ((u >> 6) & 0x3f));
                buf[n++] = (char)(0x80 | (u & 0x3f));
            }
            break;
        default:
            free(buf);
            return jfail(j, "bad escape in string");
        }
    }
    j->s++;  /* closing quote */
    buf[n] = '\0';
    *out = buf;
    return LPM_OK;
}

/* A non-negative integer that fits int64 (safetensors sizes and offsets). */
static lpm_status parse_uint(json *j, const char *what, const char *tensor, int64_t *v) {
    skip_ws(j);
    if (j->s < j->end && *j->s == '-')
        return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': negative value in %s", j->path, tensor,
                        what);
    if (j->s >= j->end || *j->s < '0' || *j->s > '9')
        return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': %s must hold non-negative integers",
                        j->path, tensor, what);
    int64_t x = 0;
    while (j->s < j->end && *j->s >= '0' && *j->s <= '9') {
        int d = *j->s++ - '0';
        if (x > (INT64_MAX - d) / 10)
            return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': %s value too large", j->path, tensor,
                            what);
        x = x * 10 + d;
    }
    if (j->s < j->end && (*j->s == '.' || *j->s == 'e' || *j->s == 'E'))
        return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': %s must hold integers", j->path, tensor,
                        what);
    *v = x;
    return LPM_OK;
}

/* [n, n, ...] with at most maxn entries. */
static lpm_status parse_uint_array(json *j, const char *what, const char *tensor, int64_t *v,
                                   int maxn, int *count) {
    *count = 0;
    if (!expect(j, '['))
        return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': %s is not an array", j->path, tensor, what);
    if (expect(j, ']')) return LPM_OK;
    for (;;) {
        if (*count >= maxn)
            return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': %s has more than %d entries", j->path,
                            tensor, what, maxn);
        lpm_status s = parse_uint(j, what, tensor, &v[*count]);
        if (s) return s;
        (*count)++;
        if (expect(j, ']')) return LPM_OK;
        if (!expect(j, ',')) return jfail(j, "expected ',' or ']'");
    }
}

typedef struct {
    char *name;
    char dtype[8];
    int ndim;
    int64_t shape[LPM_ST_MAXDIM];
    int64_t begin, end;
} st_entry;

typedef struct {
    int n;
    char **kv;
} st_meta;

static void free_meta(st_meta *m) {
    for (int i = 0; i < 2 * m->n; i++) free(m->kv[i]);
    free(m->kv);
    m->n = 0, m->kv = NULL;
}

static lpm_status parse_metadata(json *j, st_meta *m) {
    int cap = 0;
    if (!expect(j, '{')) return jfail(j, "__metadata__ is not an object");
    if (expect(j, '}')) return LPM_OK;
    for (;;) {
        char *k = NULL, *v = NULL;
        lpm_status s = parse_string(j, &k);
        if (s) return s;
        if (!expect(j, ':')) {
            free(k);
            return jfail(j, "expected ':'");
        }
        skip_ws(j);
        if (j->s >= j->end || *j->s != '"') {
            free(k);
            return jfail(j, "__metadata__ values must be strings");
        }
        s = parse_string(j, &v);
        if (s) {
            free(k);
            return s;
        }
        if (m->n == cap) {
            /* doubling: a 100 MB header of tiny pairs must not take quadratic time */
            int ncap = cap ? 2 * cap : 16;
            char **grown = realloc(m->kv, sizeof(char *) * 2 * (size_t)ncap);
            if (!grown) {
                free(k), free(v);
                return lpm_fail(LPM_ERR_INTERNAL, "%s: out of memory reading __metadata__", j->path);
            }
            m->kv = grown;
            cap = ncap;
        }
        m->kv[2 * m->n] = k, m->kv[2 * m->n + 1] = v;
        m->n++;
        if (expect(j, '}')) return LPM_OK;
        if (!expect(j, ',')) return jfail(j, "expected ',' or '}'");
    }
}

static lpm_status parse_entry(json *j, st_entry *e) {
    int have_dtype = 0, have_shape = 0, have_offsets = 0;
    if (!expect(j, '{'))
        return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': entry is not an object", j->path, e->name);
    if (!expect(j, '}')) {
        for (;;) {
            char *key = NULL;
            lpm_status s = parse_string(j, &key);
            if (s) return s;
            if (!expect(j, ':')) {
                free(key);
                return jfail(j, "expected ':'");
            }
            if (strcmp(key, "dtype") == 0 && !have_dtype) {
                char *dt = NULL;
                s = parse_string(j, &dt);
                if (!s && strlen(dt) >= sizeof e->dtype) {
                    s = lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': dtype %.20s not supported",
                                 j->path, e->name, dt);
                } else if (!s) {
                    strcpy(e->dtype, dt);
                }
                free(dt);
                have_dtype = 1;
            } else if (strcmp(key, "shape") == 0 && !have_shape) {
                s = parse_uint_array(j, "shape", e->name, e->shape, LPM_ST_MAXDIM, &e->ndim);
                have_shape = 1;
            } else if (strcmp(key, "data_offsets") == 0 && !have_offsets) {
                int64_t off[2] = {0, 0};
                int n = 0;
                s = parse_uint_array(j, "data_offsets", e->name, off, 2, &n);
                if (!s && n != 2)
                    s = lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': data_offsets needs 2 values",
                                 j->path, e->name);
                e->begin = off[0];
                e->end = off[1];
                have_offsets = 1;
            } else {
                s = lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': unexpected or repeated key '%s'",
                             j->path, e->name, key);
            }
            free(key);
            if (s) return s;
            if (expect(j, '}')) break;
            if (!expect(j, ',')) return jfail(j, "expected ',' or '}'");
        }
    }
    if (!have_dtype || !have_shape || !have_offsets)
        return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': missing %s", j->path, e->name,
                        !have_dtype ? "dtype" : !have_shape ? "shape" : "data_offsets");
    return LPM_OK;
}

static void free_entries(st_entry *e, int n) {
    for (int i = 0; i < n; i++) free(e[i].name);
    free(e);
}

/* The header object -> entries (tensor order as in the file). */
static lpm_status parse_header(json *j, st_entry **out, int *count, st_meta *meta) {
    int n = 0, cap = 0;
    st_entry *e = NULL;
    lpm_status s = LPM_OK;
    int have_meta = 0;
    *out = NULL;
    *count = 0;
    if (!expect(j, '{')) return jfail(j, "header is not a JSON object");
    if (!expect(j, '}')) {
        for (;;) {
            char *name = NULL;
            if ((s = parse_string(j, &name))) break;
            if (!expect(j, ':')) {
                free(name);
                s = jfail(j, "expected ':'");
                break;
            }
            if (strcmp(name, "__metadata__") == 0) {
                free(name);
                if (have_meta) {
                    s = jfail(j, "repeated __metadata__");
                    break;
                }
                have_meta = 1;
                if ((s = parse_metadata(j, meta))) break;
            } else {
                if (n == cap) {
                    int ncap = cap ? cap * 2 : 64;
                    st_entry *ne = lpm_malloc((size_t)ncap, sizeof *ne);
                    if (!ne) {
                        free(name);
                        s = LPM_ERR_INTERNAL;
                        break;
                    }
                    if (n) memcpy(ne, e, (size_t)n * sizeof *e);
                    free(e);
                    e = ne;
                    cap = ncap;
                }
                memset(&e[n], 0, sizeof e[n]);
                e[n].name = name;
                n++;
                if ((s = parse_entry(j, &e[n - 1]))) break;
            }
            if (expect(j, '}')) break;
            if (!expect(j, ',')) {
                s = jfail(j, "expected ',' or '}'");
                break;
            }
        }
    }
    if (!s) {
        skip_ws(j);
        /* The format pads the header with spaces; anything else is not ours. */
        if (j->s != j->end) s = jfail(j, "trailing characters after the header object");
    }
    if (s) {
        free_entries(e, n);
        return s;
    }
    *out = e;
    *count = n;
    return LPM_OK;
}

/* ------------------------------------------------------------ conversion */

static float f16_to_f32(uint16_t h) {
    uint32_t sign = (uint32_t)(h & 0x8000) << 16;
    uint32_t exp = (h >> 10) & 0x1f, mant = h & 0x3ff;
    uint32_t bits;
    if (exp == 0) {
        /* zero or subnormal: mant * 2^-24, exact in float32 */
        float v = (float)mant * 0x1p-24f;
        memcpy(&bits, &v, 4);
        bits |= sign;
    } else if (exp == 31) {
        bits = sign | 0x7f800000u | (mant << 13);  /* inf, or NaN keeping its payload */
    } else {
        bits = sign | ((exp + 112) << 23) | (mant << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

static float bits_to_f32(uint32_t bits) {
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

typedef enum { ST_F32, ST_F16, ST_BF16 } st_dtype;

/* src may lie inside dst's own bytes at or after dst (read_tensor widens in place): each
 * value is read before its float is stored. */
static void convert(const unsigned char *src, float *dst, size_t n, st_dtype dt) {
    for (size_t i = 0; i < n; i++) {
        if (dt == ST_F32) {
            const unsigned char *b = src + 4 * i;
            dst[i] = bits_to_f32((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                 (uint32_t)b[3] << 24);
        } else {
            uint16_t h = (uint16_t)(src[2 * i] | src[2 * i + 1] << 8);
            /* BF16 is the top half of a float32 */
            dst[i] = dt == ST_F16 ? f16_to_f32(h) : bits_to_f32((uint32_t)h << 16);
        }
    }
}

/* ------------------------------------------------------------ read */

/* Bytes per value of a supported dtype, 0 for the others. */
static int dtype_of(const char *name, st_dtype *dt) {
    if (strcmp(name, "F32") == 0) return *dt = ST_F32, 4;
    if (strcmp(name, "F16") == 0) return *dt = ST_F16, 2;
    if (strcmp(name, "BF16") == 0) return *dt = ST_BF16, 2;
    return 0;
}

/* qsort comparators over pointers to entries (C11 qsort has no context argument). */
static int by_name(const void *x, const void *y) {
    return strcmp((*(st_entry *const *)x)->name, (*(st_entry *const *)y)->name);
}

static int by_begin(const void *x, const void *y) {
    const st_entry *a = *(st_entry *const *)x, *b = *(st_entry *const *)y;
    if (a->begin != b->begin) return a->begin < b->begin ? -1 : 1;
    return a->end < b->end ? -1 : a->end > b->end;
}

static int by_key(const void *x, const void *y) {
    return strcmp(**(char **const *)x, **(char **const *)y);
}

/* One entry on its own: dtype supported, byte count = numel x dtype size without overflow,
 * data_offsets inside the data. *numel gets the element count. */
static lpm_status check_entry(const char *path, const st_entry *en, uint64_t body_size,
                              size_t *numel) {
    st_dtype dt;
    int bytes = dtype_of(en->dtype, &dt);
    if (!bytes)
        return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': dtype %s not supported (F32, F16, BF16)",
                        path, en->name, en->dtype);
    int ok = 1;
    size_t n = 1;
    for (int k = 0; k < en->ndim; k++) n = lpm_mul_size(n, (size_t)en->shape[k], &ok);
    size_t nbytes = lpm_mul_size(n, (size_t)bytes, &ok);
    /* float32 copies of every tensor are made: their size must fit a size_t too */
    lpm_mul_size(n, sizeof(float), &ok);
    if (!ok) return lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s': shape too large", path, en->name);
    if (en->begin > en->end || (uint64_t)en->end > body_size)
        return lpm_fail(LPM_ERR_INPUT,
                        "%s: tensor '%s': data_offsets [%lld, %lld] outside the data (%llu bytes)",
                        path, en->name, (long long)en->begin, (long long)en->end,
                        (unsigned long long)body_size);
    if ((uint64_t)(en->end - en->begin) != (uint64_t)nbytes)
        return lpm_fail(LPM_ERR_INPUT,
                        "%s: tensor '%s': data_offsets span %lld bytes but shape and dtype %s "
                        "need %zu", path, en->name, (long long)(en->end - en->begin), en->dtype,
                        nbytes);
    *numel = n;
    return LPM_OK;
}

/* The entries together: no name twice, no two tensors sharing data bytes (the format
 * gives each tensor its own range; shared bytes would let a small file declare any amount
 * of data, and readers disagree on what they mean), and the float32 copies within the
 * memory budget. Sorting keeps this O(n log n) for the millions of entries a 100 MB
 * header can hold. */
static lpm_status check_entries(const char *path, st_entry *e, const size_t *numel, int n,
                                uint64_t header_size) {
    if (n == 0) return LPM_OK;
    st_entry **p = lpm_malloc((size_t)n, sizeof *p);
    if (!p) return LPM_ERR_INTERNAL;
    for (int i = 0; i < n; i++) p[i] = &e[i];
    lpm_status s = LPM_OK;
    qsort(p, (size_t)n, sizeof *p, by_name);
    for (int i = 1; i < n && !s; i++)
        if (strcmp(p[i - 1]->name, p[i]->name) == 0)
            s = lpm_fail(LPM_ERR_INPUT, "%s: tensor '%s' appears twice", path, p[i]->name);
    if (!s) {
        qsort(p, (size_t)n, sizeof *p, by_begin);
        /* empty ranges hold no bytes and overlap nothing */
        const st_entry *reach = NULL;  /* of the non-empty ranges so far, the one ending last */
        for (int i = 0; i < n && !s; i++) {
            if (p[i]->begin == p[i]->end) continue;
            if (reach && p[i]->begin < reach->end)
                s = lpm_fail(LPM_ERR_INPUT,
                             "%s: tensors '%s' (data_offsets [%lld, %lld]) and '%s' ([%lld, %lld]) "
                             "overlap; each tensor needs its own bytes", path, reach->name,
                             (long long)reach->begin, (long long)reach->end, p[i]->name,
                             (long long)p[i]->begin, (long long)p[i]->end);
            if (!reach || p[i]->end > reach->end) reach = p[i];
        }
    }
    free(p);
    if (s) return s;
    /* The header stays in memory while the float32 arrays are made; each tensor also costs
     * its two records and two 64-byte aligned blocks (name, data) with their bookkeeping.
     * With no overlaps the sizes are bounded by twice the file's size, so the sum cannot
     * overflow. */
    uint64_t need = header_size, budget = lpm_max_memory();
    for (int i = 0; i < n; i++)
        need += (uint64_t)numel[i] * sizeof(float) + sizeof(st_entry) + sizeof(st_tensor) +
                strlen(e[i].name) + 1 + 2 * 128;
    if (need > budget)
        return lpm_fail(LPM_ERR_INPUT,
                        "%s: reading its %d tensors needs %llu bytes of memory, more than the "
                        "%llu allowed", path, n, (unsigned long long)need,
                        (unsigned long long)budget);
    return LPM_OK;
}

/* __metadata__ keys must be unique: readers that keep the first and readers that keep the
 * last value would otherwise see different files. */
static lpm_status check_meta(const char *path, const st_meta *m) {
    if (m->n < 2) return LPM_OK;
    char ***keys = lpm_malloc((size_t)m->n, sizeof *keys);
    if (!keys) return LPM_ERR_INTERNAL;
    for (int i = 0; i < m->n; i++) keys[i] = &m->kv[2 * i];
    qsort(keys, (size_t)m->n, sizeof *keys, by_key);
    lpm_status s = LPM_OK;
    for (int i = 1; i < m->n && !s; i++)
        if (strcmp(*keys[i - 1], *keys[i]) == 0)
            s = lpm_fail(LPM_ERR_INPUT, "%s: __metadata__ key '%s' appears twice", path, *keys[i]);
    free(keys);
    return s;
}

/* n bytes at offset off of the file into dst. */
static lpm_status read_at(FILE *fp, const char *path, uint64_t off, void *dst, size_t n) {
    if (n == 0) return LPM_OK;
    if (off > (uint64_t)INT64_MAX || fseeko(fp, (off_t)off, SEEK_SET) != 0 || fread(dst, 1, n, fp) != n)
        return lpm_fail(LPM_ERR_INPUT, "%s: read error at byte %llu%s", path,
                        (unsigned long long)off, ferror(fp) ? "" : " (file shrank?)");
    return LPM_OK;
}

/* Tensor en's bytes (stored at body + en->begin) into a new float32 array. The stored
 * bytes are read into the end of the array and widened in place from the front: element
 * i is read (from byte 4n - bytes*(n - i)) before float i overwrites bytes [4i, 4i + 4),
 * which never reach a stored element not yet read. */
static lpm_status read_tensor(FILE *fp, const char *path, uint64_t body, const st_entry *en,
                              size_t numel, float **out) {
    st_dtype dt = ST_F32;
    size_t bytes = (size_t)dtype_of(en->dtype, &dt);
    float *data = lpm_malloc(numel ? numel : 1, sizeof(float));
    if (!data) return LPM_ERR_INTERNAL;
    unsigned char *stored = (unsigned char *)data + (sizeof(float) - bytes) * numel;
    lpm_status s = read_at(fp, path, body + (uint64_t)en->begin, stored, bytes * numel);
    if (s) {
        free(data);
        return s;
    }
    convert(stored, data, numel, dt);
    *out = data;
    return LPM_OK;
}

lpm_status lpm_st_read(const char *path, lpm_st_file **out) {
    *out = NULL;
    /* A FIFO would block fopen forever; folders and devices are no weights either. */
    lpm_status s = lpm_check_input_file(path);
    if (s) return s;
    FILE *fp = fopen(path, "rb");
    if (!fp) return lpm_fail(LPM_ERR_INPUT, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fileno(fp), &st) != 0 || !S_ISREG(st.st_mode)) {
        fclose(fp);
        return lpm_fail(LPM_ERR_INPUT, "%s: not a regular file", path);
    }
    const uint64_t size = (uint64_t)st.st_size;
    unsigned char len8[8];
    if (size < 8) s = lpm_fail(LPM_ERR_INPUT, "%s: too short for a safetensors file (%llu bytes)",
                               path, (unsigned long long)size);
    if (s || (s = read_at(fp, path, 0, len8, 8))) {
        fclose(fp);
        return s;
    }
    uint64_t hlen = 0;
    for (int k = 7; k >= 0; k--) hlen = hlen << 8 | len8[k];
    if (hlen > size - 8) {
        fclose(fp);
        return lpm_fail(LPM_ERR_INPUT,
                        "%s: header length %llu runs past the end of the file (%llu bytes); "
                        "not a safetensors file or truncated", path, (unsigned long long)hlen,
                        (unsigned long long)size);
    }
    if (hlen > ST_MAX_HEADER) {
        fclose(fp);
        return lpm_fail(LPM_ERR_INPUT, "%s: header of %llu bytes is too large", path,
                        (unsigned long long)hlen);
    }
    /* Only the header is read whole; tensor bytes go straight into their float arrays. */
    char *header = lpm_malloc((size_t)hlen + 1, 1);
    if (!header) {
        fclose(fp);
        return LPM_ERR_INTERNAL;
    }
    st_entry *e = NULL;
    int n = 0;
    st_meta meta = {0};
    s = read_at(fp, path, 8, header, (size_t)hlen);
    json j = {path, header, header, header + hlen};
    if (!s) s = parse_header(&j, &e, &n, &meta);
    const uint64_t body = 8 + hlen, body_size = size - body;
    /* Every entry and the set of them are checked before anything is allocated for them. */
    size_t *numel = NULL;
    if (!s && n > 0 && !(numel = lpm_malloc((size_t)n, sizeof *numel))) s = LPM_ERR_INTERNAL;
    for (int i = 0; i < n && !s; i++) s = check_entry(path, &e[i], body_size, &numel[i]);
    if (!s) s = check_entries(path, e, numel, n, hlen);
    if (!s) s = check_meta(path, &meta);
    free(header);

    lpm_st_file *f = NULL;
    if (!s && !(f = lpm_calloc(1, sizeof *f))) s = LPM_ERR_INTERNAL;
    if (!s) {
        f->n_meta = meta.n, f->meta = meta.kv;
        meta = (st_meta){0};
    }
    if (!s && n > 0 && !(f->t = lpm_calloc((size_t)n, sizeof *f->t))) s = LPM_ERR_INTERNAL;
    for (int i = 0; i < n && !s; i++) {
        st_entry *en = &e[i];
        st_tensor *t = &f->t[i];
        if ((s = read_tensor(fp, path, body, en, numel[i], &t->data))) break;
        t->name = en->name;
        en->name = NULL;
        memcpy(t->dtype, en->dtype, sizeof t->dtype);
        t->ndim = en->ndim;
        memcpy(t->shape, en->shape, sizeof t->shape);
        f->n = i + 1;
    }
    fclose(fp);
    free(numel);
    free_meta(&meta);
    free_entries(e, n);
    if (s) {
        lpm_st_close(f);
        return s;
    }
    *out = f;
    return LPM_OK;
}

/* ------------------------------------------------------------ write */

typedef struct {
    char *s;
    size_t n, cap;
    int oom;
} strbuf;

static void sb_put(strbuf *b, const char *s, size_t n) {
    if (b->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->n + n + 1) cap *= 2;
        char *ns = lpm_malloc(cap, 1);
        if (!ns) {
            b->oom = 1;
            return;
        }
        if (b->n) memcpy(ns, b->s, b->n);
        free(b->s);
        b->s = ns;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = '\0';
}

static void sb_str(strbuf *b, const char *s) { sb_put(b, s, strlen(s)); }

static void sb_json_string(strbuf *b, const char *s) {
    sb_put(b, "\"", 1);
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        if (c == '"' || c == '\\') {
            esc[0] = '\\';
            esc[1] = (char)c;
            sb_put(b, esc, 2);
        } else if (c < 0x20) {
            snprintf(esc, sizeof esc, "\\u%04x", c);
            sb_put(b, esc, 6);
        } else {
            sb_put(b, s, 1);
        }
    }
    sb_put(b, "\"", 1);
}

static void sb_int(strbuf *b, long long v) {
    char num[32];
    snprintf(num, sizeof num, "%lld", v);
    sb_str(b, num);
}

lpm_status lpm_st_write(const char *path, const lpm_st_tensor *tensors, int n,
                        const char *const *meta_kv, int n_meta) {
    if (n < 0 || n_meta < 0 || (n_meta > 0 && !meta_kv))
        return lpm_fail(LPM_ERR_INTERNAL, "%s: bad tensor or metadata count", path);
    strbuf h = {0};
    sb_str(&h, "{");
    if (n_meta > 0) {
        sb_str(&h, "\"__metadata__\":{");
        for (int i = 0; i < n_meta; i++) {
            if (i) sb_str(&h, ",");
            sb_json_string(&h, meta_kv[2 * i]);
            sb_str(&h, ":");
            sb_json_string(&h, meta_kv[2 * i + 1]);
        }
        sb_str(&h, "}");
    }
    uint64_t pos = 0;
    for (int i = 0; i < n; i++) {
        const lpm_st_tensor *t = &tensors[i];
        if (!t->name || !*t->name || strcmp(t->name, "__metadata__") == 0 || t->ndim < 0 ||
            t->ndim > LPM_ST_MAXDIM) {
            free(h.s);
            return lpm_fail(LPM_ERR_INTERNAL, "%s: tensor %d: bad name or ndim", path, i);
        }
        for (int k = 0; k < i; k++)
            if (strcmp(tensors[k].name, t->name) == 0) {
                free(h.s);
                return lpm_fail(LPM_ERR_INTERNAL, "%s: tensor '%s' given twice", path, t->name);
            }
        int ok = 1;
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) {
            if (t->shape[k] < 0) ok = 0;
            numel = lpm_mul_size(numel, (size_t)t->shape[k], &ok);
        }
        size_t nbytes = lpm_mul_size(numel, 4, &ok);
        if (!ok || (numel && !t->data)) {
            free(h.s);
            return lpm_fail(LPM_ERR_INTERNAL, "%s: tensor '%s': bad shape or data", path, t->name);
        }
        if (n_meta > 0 || i > 0) sb_str(&h, ",");
        sb_json_string(&h, t->name);
        sb_str(&h, ":{\"dtype\":\"F32\",\"shape\":[");
        for (int k = 0; k < t->ndim; k++) {
            if (k) sb_str(&h, ",");
            sb_int(&h, (long long)t->shape[k]);
        }
        sb_str(&h, "],\"data_offsets\":[");
        sb_int(&h, (long long)pos);
        sb_str(&h, ",");
        pos += nbytes;
        sb_int(&h, (long long)pos);
        sb_str(&h, "]}");
    }
    sb_str(&h, "}");
    /* Pad with spaces so the data starts 8-byte aligned, as the reference library does. */
    while (!h.oom && h.n % 8) sb_str(&h, " ");
    if (h.oom) {
        free(h.s);
        return LPM_ERR_INTERNAL;
    }

    lpm_atomic_file f;
    lpm_status s = lpm_atomic_open(&f, path);
    if (s) {
        free(h.s);
        return s;
    }
    unsigned char len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (unsigned char)((uint64_t)h.n >> (8 * k));
    int ok = fwrite(len8, 1, 8, f.fp) == 8 && fwrite(h.s, 1, h.n, f.fp) == h.n;
    free(h.s);
    /* Little-endian bytes regardless of the host, through a small buffer. */
    unsigned char chunk[4096];
    for (int i = 0; i < n && ok; i++) {
        const lpm_st_tensor *t = &tensors[i];
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->shape[k];
        for (size_t at = 0; at < numel && ok;) {
            size_t m = numel - at < sizeof chunk / 4 ? numel - at : sizeof chunk / 4;
            for (size_t q = 0; q < m; q++) {
                uint32_t bits;
                memcpy(&bits, &t->data[at + q], 4);
                for (int k = 0; k < 4; k++) chunk[4 * q + k] = (unsigned char)(bits >> (8 * k));
            }
            ok = fwrite(chunk, 4, m, f.fp) == m;
            at += m;
        }
    }
    if (!ok) {
        int err = errno;
        lpm_atomic_abort(&f);
        return lpm_fail(LPM_ERR_INTERNAL, "%s: write failed: %s", path, strerror(err));
    }
    return lpm_atomic_commit(&f);
}
