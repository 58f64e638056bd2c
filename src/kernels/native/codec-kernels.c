/*
 * at1's codec kernels, compiled: the hot loops of the numeric codecs (rANS
 * decode and encode, delta tokenise / rebuild, exponent coding, byte planes,
 * contexts) as a Node-API addon. Each function is a 1:1 port of the plain-JS
 * reference in src/codec/ (named beside each one) and must give the same
 * bits, including on damaged input: where the JS reads past a typed array it
 * gets `undefined`, which its integer ops turn into 0, so the C reads 0 there
 * too; where the JS writes past one, nothing happens, so the C skips the
 * write. test/codec-kernels-native.test.ts checks every kernel against the
 * reference on random, adversarial and real fixture data.
 *
 * Every length comes from the typed arrays themselves (never from the
 * caller's numbers alone), so no input makes this code touch memory outside
 * the arrays it was given. Integer arithmetic is uint32 where the JS keeps
 * values in [0, 2^31) or uses >>> (proved in the comments of the JS), and
 * int32 where the JS uses | 0 or << / >>.
 *
 * Built by node-gyp during `npm ci` (binding.gyp at the repository root);
 * src/codec/kernels.ts loads it and falls back to the JS when it is absent.
 */
#define NAPI_VERSION 8
#include <node_api.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

/* ---------- argument helpers ---------- */

typedef struct {
  void* data;
  size_t length; /* elements */
} arr_t;

static napi_value throw_type(napi_env env, const char* msg) {
  napi_throw_type_error(env, "E_KERNEL_ARGS", msg);
  return NULL;
}

/* A typed array of the given type (or null/undefined when nullable: data NULL, length 0). */
static int get_arr(napi_env env, napi_value v, napi_typedarray_type want, int nullable, arr_t* out) {
  napi_valuetype vt;
  if (napi_typeof(env, v, &vt) != napi_ok) return 0;
  if (nullable && (vt == napi_null || vt == napi_undefined)) {
    out->data = NULL;
    out->length = 0;
    return 1;
  }
  bool is_ta = false;
  if (napi_is_typedarray(env, v, &is_ta) != napi_ok || !is_ta) return 0;
  napi_typedarray_type type;
  size_t length;
  void* data;
  if (napi_get_typedarray_info(env, v, &type, &length, &data, NULL, NULL) != napi_ok) return 0;
  if (type != want) return 0;
  out->data = data;
  out->length = length;
  return 1;
}

static int get_i64(napi_env env, napi_value v, int64_t* out) {
  double d;
  if (napi_get_value_double(env, v, &d) != napi_ok) return 0;
  if (!(d >= -9007199254740991.0 && d <= 9007199254740991.0) || d != (double)(int64_t)d) return 0;
  *out = (int64_t)d;
  return 1;
}

static napi_value num(napi_env env, double d) {
  napi_value r;
  napi_create_double(env, d, &r);
  return r;
}

#define ARGS(N)                                                             \
  size_t argc = N;                                                          \
  napi_value argv[N];                                                       \
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || argc < N) \
    return throw_type(env, "wrong argument count");
#define ARR(i, type, nullable, name)                                        \
  arr_t name;                                                               \
  if (!get_arr(env, argv[i], type, nullable, &name)) return throw_type(env, "argument " #i " (" #name ") has the wrong type");
#define INT(i, name)                                                        \
  int64_t name;                                                             \
  if (!get_i64(env, argv[i], &name)) return throw_type(env, "argument " #i " (" #name ") is not an integer");

/* ---------- token tables of delta-core.ts ---------- */

#define DIRECT 16
static uint8_t TOK16[65536];
static uint8_t NB[256];
static uint32_t BASE[256];
static uint32_t MASK[256];
static pthread_once_t tables_once = PTHREAD_ONCE_INIT;

static void init_tables(void) {
  for (uint32_t zz = 0; zz < 65536; zz++) {
    if (zz < DIRECT) TOK16[zz] = (uint8_t)zz;
    else {
      int b = 32 - __builtin_clz(zz);
      TOK16[zz] = (uint8_t)(DIRECT + ((b - 5) << 1) + ((zz >> (b - 2)) & 1));
    }
  }
  for (int t = 0; t < DIRECT + 2 * 28; t++) {
    if (t < DIRECT) BASE[t] = (uint32_t)t;
    else {
      int b = ((t - DIRECT) >> 1) + 5;
      int nb = b - 2;
      NB[t] = (uint8_t)nb;
      BASE[t] = (1u << (b - 1)) | ((uint32_t)(t & 1) << nb);
      MASK[t] = (1u << nb) - 1;
    }
  }
}

static inline uint64_t le64(uint64_t w) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap64(w);
#else
  return w;
#endif
}

static inline uint32_t clz32(uint32_t v) { return v == 0 ? 32 : (uint32_t)__builtin_clz(v); }

/* Zigzag of the ordered-integer difference x - p of two 16-bit floats (delta-core.ts tokenise16, zplanes.ts diffPlanes16). */
static inline uint32_t zigzag_diff16(int32_t xv, int32_t pv) {
  const int32_t a = xv ^ ((int32_t)((uint32_t)xv << 16) >> 31 & 0x7fff);
  const int32_t b = pv ^ ((int32_t)((uint32_t)pv << 16) >> 31 & 0x7fff);
  const int32_t d = (int32_t)(int16_t)(uint16_t)(a - b);
  return ((uint32_t)d << 1 ^ (uint32_t)(d >> 31)) & 0xffff;
}

/* The same for 32-bit floats (tokenise32, diffPlanes32). */
static inline uint32_t zigzag_diff32(uint32_t x, uint32_t p) {
  const int32_t xv = (int32_t)x, pv = (int32_t)p;
  const int32_t d = (int32_t)((uint32_t)(xv ^ ((xv >> 31) & 0x7fffffff)) - (uint32_t)(pv ^ ((pv >> 31) & 0x7fffffff)));
  return ((uint32_t)d << 1) ^ (uint32_t)(d >> 31);
}

/* ---------- rANS (rans.ts) ---------- */

#define RANS_L 32768u

/* A rANS decoder over one interleaved stream (rans.ts RansStream + ransDecodeTokens). */
typedef struct {
  const uint8_t* b; /* the payload */
  int64_t ps;       /* next word's byte position (may pass e: such words read as 0) */
  int64_t e;        /* end of the word area */
  uint32_t x[4];
  const int32_t* T; /* decode table: ((f-1) << 20) | ((slot - start) << 8) | token */
  size_t tlen;
  uint32_t mask;
  unsigned prec;
  const int32_t* B; /* table row base per raw context (groupOf << prec) */
  size_t blen;
  const uint16_t* c; /* context source, or NULL: row 0 throughout */
  unsigned shift;
  int fast; /* no lookup can leave its array: see rans_init */
} rans_t;

static void rans_init(rans_t* r, size_t n) {
  /*
   * The fast loops need no bounds checks when every row base plus the slot
   * mask is inside the table and every context value has a row; a stream
   * whose tables break that (only a damaged one could) takes the checked loop.
   * A context source with fewer rows than its 16-bit range (trajectory
   * contexts: 16 classes x 512) is checked by its largest value instead,
   * one pass over n values.
   */
  int fast = r->c == NULL ? (r->tlen > r->mask) : 1;
  if (fast && r->c && r->blen <= (size_t)(65535u >> r->shift)) {
    uint32_t top = 0;
    for (size_t i = 0; i < n; i++) top = r->c[i] > top ? r->c[i] : top;
    fast = (size_t)(top >> r->shift) < r->blen;
  }
  if (fast && r->c)
    for (size_t q = 0; q < r->blen && fast; q++)
      if (r->B[q] < 0 || (size_t)r->B[q] + r->mask >= r->tlen) fast = 0;
  r->fast = fast;
}

/* The table entry of element i with state j: 0 past an array, as `undefined | y` is y in the JS. */
static inline uint32_t rans_entry_checked(const rans_t* r, size_t i, uint32_t xj) {
  uint32_t row = 0;
  if (r->c) {
    size_t q = (size_t)(r->c[i] >> r->shift);
    row = q < r->blen ? (uint32_t)r->B[q] : 0u;
  }
  uint32_t ee = row | (xj & r->mask);
  return ee < r->tlen ? (uint32_t)r->T[ee] : 0u;
}

/*
 * One token, checked, in the JS's order (element i uses state i & 3). The
 * refill is branch-free: whether a state needs a word is data-dependent and
 * unpredictable, so the word is always read (0 past the end) and kept or not.
 */
static inline uint8_t rans_step_checked(rans_t* r, size_t i) {
  const unsigned j = (unsigned)(i & 3);
  const uint32_t d = rans_entry_checked(r, i, r->x[j]);
  const uint32_t nx = ((d >> 20) + 1) * (r->x[j] >> r->prec) + ((d >> 8) & 0xfff);
  const uint32_t w = r->ps < r->e ? (uint32_t)r->b[r->ps] | ((uint32_t)r->b[r->ps + 1] << 8) : 0u;
  const int need = nx < RANS_L;
  r->x[j] = need ? (nx << 16) | w : nx;
  r->ps += need ? 2 : 0;
  return (uint8_t)d;
}

/*
 * Four tokens i..i+3 (i a multiple of 4), unchecked: only when r->fast and
 * ps + 8 <= e. The four words the block may read lie at ps, ps+2, ps+4,
 * ps+6: one 64-bit load fetches them before the refill decisions are known,
 * and token k takes the word after the refills of the tokens before it in
 * the block (a prefix count) — the JS's sequential order, without the chain
 * through `ps` that made the four states wait for each other (3.8 -> 3.0
 * ns/token here, with the branch-free selects).
 */
#define RANS_BLOCK4(r, i, out0, out1, out2, out3)                                              \
  do {                                                                                          \
    const uint16_t* c_ = (r)->c;                                                                \
    uint32_t r0 = 0, r1 = 0, r2 = 0, r3 = 0;                                                    \
    if (c_) {                                                                                   \
      r0 = (uint32_t)(r)->B[c_[(i)] >> (r)->shift];                                             \
      r1 = (uint32_t)(r)->B[c_[(i) + 1] >> (r)->shift];                                         \
      r2 = (uint32_t)(r)->B[c_[(i) + 2] >> (r)->shift];                                         \
      r3 = (uint32_t)(r)->B[c_[(i) + 3] >> (r)->shift];                                         \
    }                                                                                           \
    const uint32_t d0 = (uint32_t)(r)->T[r0 | ((r)->x[0] & (r)->mask)];                         \
    const uint32_t d1 = (uint32_t)(r)->T[r1 | ((r)->x[1] & (r)->mask)];                         \
    const uint32_t d2 = (uint32_t)(r)->T[r2 | ((r)->x[2] & (r)->mask)];                         \
    const uint32_t d3 = (uint32_t)(r)->T[r3 | ((r)->x[3] & (r)->mask)];                         \
    out0 = (uint8_t)d0;                                                                         \
    out1 = (uint8_t)d1;                                                                         \
    out2 = (uint8_t)d2;                                                                         \
    out3 = (uint8_t)d3;                                                                         \
    const uint32_t nx0 = ((d0 >> 20) + 1) * ((r)->x[0] >> (r)->prec) + ((d0 >> 8) & 0xfff);     \
    const uint32_t nx1 = ((d1 >> 20) + 1) * ((r)->x[1] >> (r)->prec) + ((d1 >> 8) & 0xfff);     \
    const uint32_t nx2 = ((d2 >> 20) + 1) * ((r)->x[2] >> (r)->prec) + ((d2 >> 8) & 0xfff);     \
    const uint32_t nx3 = ((d3 >> 20) + 1) * ((r)->x[3] >> (r)->prec) + ((d3 >> 8) & 0xfff);     \
    const uint32_t n0 = nx0 < RANS_L, n1 = nx1 < RANS_L, n2 = nx2 < RANS_L, n3 = nx3 < RANS_L;   \
    uint64_t w4;                                                                                \
    memcpy(&w4, (r)->b + (r)->ps, 8);                                                           \
    w4 = le64(w4);                                                                              \
    const uint32_t c1 = n0, c2 = n0 + n1, c3 = c2 + n2;                                         \
    const uint32_t y0 = (nx0 << 16) | (uint32_t)(w4 & 0xffff);                                  \
    const uint32_t y1 = (nx1 << 16) | (uint32_t)((w4 >> (16 * c1)) & 0xffff);                   \
    const uint32_t y2 = (nx2 << 16) | (uint32_t)((w4 >> (16 * c2)) & 0xffff);                   \
    const uint32_t y3 = (nx3 << 16) | (uint32_t)((w4 >> (16 * c3)) & 0xffff);                   \
    (r)->x[0] = nx0 ^ ((nx0 ^ y0) & (0u - n0));                                                 \
    (r)->x[1] = nx1 ^ ((nx1 ^ y1) & (0u - n1));                                                 \
    (r)->x[2] = nx2 ^ ((nx2 ^ y2) & (0u - n2));                                                 \
    (r)->x[3] = nx3 ^ ((nx3 ^ y3) & (0u - n3));                                                 \
    (r)->ps += 2 * (int64_t)(c3 + n3);                                                          \
  } while (0)

/* Tokens i0..n-1 into rel[0..n-i0-1]. */
static void rans_decode_range(rans_t* r, size_t i0, size_t n, uint8_t* rel) {
  size_t i = i0;
  if (r->fast && (i & 3) == 0)
    for (; i + 4 <= n && r->ps + 8 <= r->e; i += 4) RANS_BLOCK4(r, i, rel[i - i0], rel[i - i0 + 1], rel[i - i0 + 2], rel[i - i0 + 3]);
  for (; i < n; i++) rel[i - i0] = rans_step_checked(r, i);
}

/* rans_t from the JS arguments shared by the decode entry points; 0 and a thrown error when they are out of range. */
static int rans_from_args(napi_env env, napi_value* argv, int64_t n, rans_t* r, int32_t** states) {
  arr_t buf, st, tab, base, src;
  int64_t pos, end, prec, shift;
  if (!get_arr(env, argv[0], napi_uint8_array, 0, &buf) || !get_i64(env, argv[1], &pos) || !get_i64(env, argv[2], &end) || !get_arr(env, argv[3], napi_int32_array, 0, &st) ||
      !get_arr(env, argv[4], napi_int32_array, 0, &tab) || !get_i64(env, argv[5], &prec) || !get_arr(env, argv[6], napi_int32_array, 0, &base) ||
      !get_arr(env, argv[7], napi_uint16_array, 1, &src) || !get_i64(env, argv[8], &shift)) {
    throw_type(env, "rANS arguments have the wrong type");
    return 0;
  }
  if (st.length < 4 || prec < 1 || prec > 12 || shift < 0 || shift > 15 || n < 0 || pos < 0 || end < pos || (size_t)end > buf.length || (src.data && src.length < (size_t)n)) {
    throw_type(env, "rANS arguments out of range");
    return 0;
  }
  int32_t* S = (int32_t*)st.data;
  *states = S;
  r->b = (const uint8_t*)buf.data;
  r->ps = pos;
  r->e = end;
  for (int j = 0; j < 4; j++) r->x[j] = (uint32_t)S[j];
  r->T = (const int32_t*)tab.data;
  r->tlen = tab.length;
  r->mask = (1u << prec) - 1;
  r->prec = (unsigned)prec;
  r->B = (const int32_t*)base.data;
  r->blen = base.length;
  r->c = (const uint16_t*)src.data;
  r->shift = (unsigned)shift;
  rans_init(r, (size_t)n);
  return 1;
}

static void rans_store(const rans_t* r, int32_t* S) {
  for (int j = 0; j < 4; j++) S[j] = (int32_t)r->x[j];
}

/*
 * ransEncode(tok Uint8Array, src Uint16Array|null, shift, n, fc Int32Array
 * (freq, start per (group, token)), rowOf Int32Array, prec, out Uint8Array of
 * at least 16 + 2 (n + 8) bytes) -> the stream's length in out, or -1 for a
 * token with frequency 0 (the JS would divide by zero; its encoder never
 * codes such a token). Elements run backwards, state i & 3, as the JS does;
 * words are laid out in decoding order after the four states.
 */
static napi_value rans_encode(napi_env env, napi_callback_info info) {
  ARGS(8);
  ARR(0, napi_uint8_array, 0, tokA);
  ARR(1, napi_uint16_array, 1, src);
  INT(2, shift);
  INT(3, n);
  ARR(4, napi_int32_array, 0, fcA);
  ARR(5, napi_int32_array, 0, rowA);
  INT(6, prec);
  ARR(7, napi_uint8_array, 0, outA);
  if (n < 0 || (size_t)n > tokA.length || (src.data && src.length < (size_t)n) || shift < 0 || shift > 15 || prec < 1 || prec > 15 || outA.length < 16 + 2 * ((size_t)n + 8))
    return throw_type(env, "rans_encode: arguments out of range");
  const uint8_t* tok = (const uint8_t*)tokA.data;
  const uint16_t* c = (const uint16_t*)src.data;
  const int32_t* fc = (const int32_t*)fcA.data;
  const size_t fclen = fcA.length;
  const int32_t* rowOf = (const int32_t*)rowA.data;
  const size_t rlen = rowA.length;
  uint8_t* out = (uint8_t*)outA.data;
  const size_t cap = outA.length;
  size_t wp = cap; /* words written backwards from the end */
  uint32_t x[4] = {RANS_L, RANS_L, RANS_L, RANS_L};
  const uint32_t sh = 1u << (31 - prec);
  const uint32_t M = 1u << prec;
  /*
   * Per (group, token) one 32-byte entry: the renormalisation bound
   * f * 2^(31-prec), the reciprocal and its shift, the bias, and M - f.
   * Division by the frequency is a multiplication by its reciprocal (ryg's
   * rans_byte.h, after Alverson): q = (x * rcp) >> 32 >> rshift is the exact
   * floor(x / f) for every x < 2^31, which the states always are; f = 1 uses
   * rcp = 2^32 - 1 and a bias of M - 1 (then q = x - 1). A token whose
   * frequency is 0 (the JS would divide by zero; its encoder never codes one)
   * has bound 0 and is refused.
   */
  typedef struct {
    uint32_t xmax, rcp, rshift, bias, cmpl, pad[3];
  } enc_t;
  const size_t entries = fclen / 2;
  enc_t* E = malloc((entries + 1) * sizeof(enc_t));
  if (!E) return throw_type(env, "rans_encode: out of memory");
  for (size_t q = 0; q < entries; q++) {
    const int32_t fi = fc[2 * q];
    enc_t* en = &E[q];
    memset(en, 0, sizeof *en);
    if (fi <= 0 || (uint32_t)fi > M) continue; /* xmax 0: refused if used */
    const uint32_t f = (uint32_t)fi, st = (uint32_t)fc[2 * q + 1];
    en->xmax = f * sh;
    en->cmpl = M - f;
    if (f < 2) {
      en->rcp = ~0u;
      en->rshift = 0;
      en->bias = st + M - 1;
    } else {
      uint32_t sh2 = 0;
      while (f > (1u << sh2)) sh2++;
      en->rcp = (uint32_t)(((1ull << (sh2 + 31)) + f - 1) / f);
      en->rshift = sh2 - 1;
      en->bias = st;
    }
  }
  /* Rows: checked once here when every context value has one, else per element. */
  int rowsChecked = c == NULL || rlen > (size_t)(65535u >> shift);
  if (rowsChecked && c)
    for (size_t q = 0; q < rlen; q++)
      if (rowOf[q] < 0 || (rowOf[q] & 1)) rowsChecked = 0;
  /*
   * Element i's entry, or a refusal (-1) for a token the table cannot code.
   * Elements run backwards as in the JS; the states stay in registers
   * (element i uses state i & 3), and the renormalisation is branch-free:
   * the word is always written below wp and kept (wp moves) only when needed.
   */
#define ENTRY(i, en)                                                                   \
  const enc_t* en;                                                                     \
  {                                                                                    \
    int64_t row_ = 0;                                                                  \
    if (c) {                                                                           \
      const size_t r_ = (size_t)(c[i] >> shift);                                       \
      row_ = rowsChecked ? rowOf[r_] : (r_ < rlen ? rowOf[r_] : 0);                    \
    }                                                                                  \
    const int64_t kv_ = row_ + 2 * (int64_t)tok[i];                                    \
    if (kv_ < 0 || (size_t)kv_ + 1 >= fclen || (kv_ & 1)) {                            \
      free(E);                                                                         \
      return num(env, -1);                                                             \
    }                                                                                  \
    en = &E[(size_t)kv_ >> 1];                                                         \
    if (en->xmax == 0) {                                                               \
      free(E);                                                                         \
      return num(env, -1);                                                             \
    }                                                                                  \
  }
#define PUT(xv, en)                                                                    \
  {                                                                                    \
    uint32_t v_ = xv;                                                                  \
    const uint32_t need_ = v_ >= en->xmax;                                             \
    out[wp - 2] = (uint8_t)v_;                                                         \
    out[wp - 1] = (uint8_t)(v_ >> 8);                                                  \
    wp -= 2 * (size_t)need_;                                                           \
    v_ = need_ ? v_ >> 16 : v_;                                                        \
    const uint32_t q_ = (uint32_t)(((uint64_t)v_ * en->rcp) >> 32) >> en->rshift;       \
    xv = v_ + en->bias + q_ * en->cmpl;                                                \
  }
  uint32_t x0 = RANS_L, x1 = RANS_L, x2 = RANS_L, x3 = RANS_L;
  const int64_t n4 = n & ~(int64_t)3;
  for (int64_t i = n - 1; i >= n4; i--) {
    ENTRY(i, e1)
    if ((i & 3) == 0) PUT(x0, e1) else if ((i & 3) == 1) PUT(x1, e1) else PUT(x2, e1)
  }
  for (int64_t i = n4 - 4; i >= 0; i -= 4) {
    ENTRY(i + 3, e3)
    ENTRY(i + 2, e2)
    ENTRY(i + 1, e1)
    ENTRY(i, e0)
    PUT(x3, e3)
    PUT(x2, e2)
    PUT(x1, e1)
    PUT(x0, e0)
  }
#undef ENTRY
#undef PUT
  free(E);
  x[0] = x0;
  x[1] = x1;
  x[2] = x2;
  x[3] = x3;
  const size_t nb = cap - wp;
  memmove(out + 16, out + wp, nb);
  for (int j = 0; j < 4; j++) {
    out[4 * j] = (uint8_t)x[j];
    out[4 * j + 1] = (uint8_t)(x[j] >> 8);
    out[4 * j + 2] = (uint8_t)(x[j] >> 16);
    out[4 * j + 3] = (uint8_t)(x[j] >> 24);
  }
  return num(env, (double)(16 + nb));
}

/* ---------- delta tokens (delta-core.ts) ---------- */

/* contexts16(p, pp, ctxShift, ctxStride, ctx out): n = ctx.length, p and pp at least n. */
static napi_value contexts16(napi_env env, napi_callback_info info) {
  ARGS(5);
  ARR(0, napi_uint16_array, 0, pA);
  ARR(1, napi_uint16_array, 0, ppA);
  INT(2, ctxShift);
  INT(3, ctxStride);
  ARR(4, napi_uint16_array, 0, ctxA);
  size_t n = ctxA.length;
  if (pA.length < n || ppA.length < n || ctxShift < 0 || ctxShift > 31) return throw_type(env, "contexts16: arguments out of range");
  const uint16_t* p = (const uint16_t*)pA.data;
  const uint16_t* pp = (const uint16_t*)ppA.data;
  uint16_t* ctx = (uint16_t*)ctxA.data;
  for (size_t i = 0; i < n; i++) {
    int32_t pv = p[i], qv = pp[i];
    int32_t tr = (int32_t)(int16_t)(uint16_t)((pv ^ (-(pv >> 15) & 0x7fff)) - (qv ^ (-(qv >> 15) & 0x7fff)));
    int64_t rc = pv >> ctxShift;
    if (tr != 0) {
      int32_t bl = 32 - (int32_t)clz32((uint32_t)(tr < 0 ? -tr : tr));
      rc += ((bl > 7 ? 7 : bl) + (tr < 0 ? 7 : 0)) * ctxStride;
    }
    ctx[i] = (uint16_t)rc;
  }
  return NULL;
}

/* contexts32(p, pp|null, ctxShift, ctxStride, ctx out) */
static napi_value contexts32(napi_env env, napi_callback_info info) {
  ARGS(5);
  ARR(0, napi_uint32_array, 0, pA);
  ARR(1, napi_uint32_array, 1, ppA);
  INT(2, ctxShift);
  INT(3, ctxStride);
  ARR(4, napi_uint16_array, 0, ctxA);
  size_t n = ctxA.length;
  if (pA.length < n || (ppA.data && ppA.length < n) || ctxShift < 0 || ctxShift > 31) return throw_type(env, "contexts32: arguments out of range");
  const uint32_t* p = (const uint32_t*)pA.data;
  const uint32_t* pp = (const uint32_t*)ppA.data;
  uint16_t* ctx = (uint16_t*)ctxA.data;
  for (size_t i = 0; i < n; i++) {
    uint32_t pv = p[i];
    int64_t rc = pv >> ctxShift;
    if (pp) {
      uint32_t qv = pp[i];
      int32_t spv = (int32_t)pv, sqv = (int32_t)qv;
      int32_t tr = (int32_t)((uint32_t)(spv ^ ((spv >> 31) & 0x7fffffff)) - (uint32_t)(sqv ^ ((sqv >> 31) & 0x7fffffff)));
      if (tr != 0) {
        uint32_t mag = tr < 0 ? (uint32_t)0 - (uint32_t)tr : (uint32_t)tr;
        int32_t bl = 32 - (int32_t)clz32(mag);
        rc += ((bl > 7 ? 7 : bl) + (tr < 0 ? 7 : 0)) * ctxStride;
      }
    }
    ctx[i] = (uint16_t)rc;
  }
  return NULL;
}

/*
 * tokenise16(x, p, ctx|null, ctxShift, S, tok out, hist out Uint32Array, buf out) -> bytes of
 * extra bits written to buf (buf at least (n * 14 >> 3) + 8 bytes).
 */
static napi_value tokenise16(napi_env env, napi_callback_info info) {
  ARGS(8);
  ARR(0, napi_uint16_array, 0, xA);
  ARR(1, napi_uint16_array, 0, pA);
  ARR(2, napi_uint16_array, 1, ctxA);
  INT(3, ctxShift);
  INT(4, S);
  ARR(5, napi_uint8_array, 0, tokA);
  ARR(6, napi_uint32_array, 0, histA);
  ARR(7, napi_uint8_array, 0, bufA);
  size_t n = xA.length;
  if (pA.length < n || tokA.length < n || (ctxA.data && ctxA.length < n) || ctxShift < 0 || ctxShift > 15 || S < 0 || bufA.length < ((n * 14) >> 3) + 8)
    return throw_type(env, "tokenise16: arguments out of range");
  pthread_once(&tables_once, init_tables);
  const uint16_t* x = (const uint16_t*)xA.data;
  const uint16_t* p = (const uint16_t*)pA.data;
  const uint16_t* c = ctxA.data ? (const uint16_t*)ctxA.data : p;
  const unsigned sh = ctxA.data ? 0 : (unsigned)ctxShift;
  uint8_t* tok = (uint8_t*)tokA.data;
  uint32_t* hist = (uint32_t*)histA.data;
  const size_t hlen = histA.length;
  uint8_t* buf = (uint8_t*)bufA.data;
  size_t bpos = 0;
  /*
   * Four elements at a time: their extra bits (at most 4 x 14) joined into
   * one value, then one step of the byte writer (its accumulator is the only
   * chain); and four histogram copies, so that runs of the same (context,
   * token) do not wait on each other's increments. The bytes written are the
   * JS writer's exactly: it too writes the pending bits as they complete.
   */
  uint64_t acc = 0;
  uint32_t nacc = 0;
  /* (a large table, e.g. trajectory contexts, keeps one copy: zeroing and summing four would cost more) */
  const size_t stride = hlen <= 65536 ? hlen : 0;
  uint32_t* h4 = calloc((stride ? 4 * hlen : hlen) + 1, sizeof(uint32_t));
  if (!h4) return throw_type(env, "tokenise16: out of memory");
  size_t i = 0;
#define TOKEN16(i, t, v, nb)                                                            \
  uint32_t t, v, nb;                                                                    \
  {                                                                                     \
    const uint32_t zz_ = zigzag_diff16(x[i], p[i]);                                     \
    t = TOK16[zz_];                                                                     \
    v = zz_ & MASK[t];                                                                  \
    nb = NB[t];                                                                         \
    tok[i] = (uint8_t)t;                                                                \
  }
#define HIST(i, t, copy)                                                                \
  {                                                                                     \
    const size_t h_ = (size_t)(c[i] >> sh) * (size_t)S + (t);                          \
    if (h_ < hlen) h4[(copy) * stride + h_]++;                                          \
  }
  for (; i + 4 <= n; i += 4) {
    TOKEN16(i, t0, v0, n0)
    TOKEN16(i + 1, t1, v1, n1)
    TOKEN16(i + 2, t2, v2, n2)
    TOKEN16(i + 3, t3, v3, n3)
    HIST(i, t0, 0)
    HIST(i + 1, t1, 1)
    HIST(i + 2, t2, 2)
    HIST(i + 3, t3, 3)
    const uint64_t v4 = (uint64_t)v0 | ((uint64_t)v1 << n0) | ((uint64_t)v2 << (n0 + n1)) | ((uint64_t)v3 << (n0 + n1 + n2));
    acc |= v4 << nacc;
    nacc += n0 + n1 + n2 + n3;
    uint64_t le = le64(acc);
    memcpy(buf + bpos, &le, 8);
    const uint32_t k = nacc >> 3;
    bpos += k;
    acc = k >= 8 ? 0 : acc >> (8 * k);
    nacc &= 7;
  }
  for (; i < n; i++) {
    TOKEN16(i, t, v, nb)
    HIST(i, t, 0)
    acc |= (uint64_t)v << nacc;
    nacc += nb;
    uint64_t le = le64(acc);
    memcpy(buf + bpos, &le, 8);
    const uint32_t k = nacc >> 3;
    bpos += k;
    acc = k >= 8 ? 0 : acc >> (8 * k);
    nacc &= 7;
  }
#undef TOKEN16
#undef HIST
  if (stride)
    for (size_t q = 0; q < hlen; q++) hist[q] += h4[q] + h4[hlen + q] + h4[2 * hlen + q] + h4[3 * hlen + q];
  else
    for (size_t q = 0; q < hlen; q++) hist[q] += h4[q];
  free(h4);
  if (nacc > 0) buf[bpos++] = (uint8_t)acc;
  return num(env, (double)bpos);
}

/*
 * The 32-bit window of delta-core.ts rebuild16 at byte k: the JS reads it
 * from a copy of `extra` padded with 4 zero bytes; here it is read in place
 * with the same zero padding.
 */
static inline uint32_t window32(const uint8_t* e, size_t elen, size_t k) {
  if (k + 4 <= elen) {
    uint32_t w;
    memcpy(&w, e + k, 4);
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    w = __builtin_bswap32(w);
#endif
    return w;
  }
  uint32_t w = 0;
  for (size_t j = 0; j < 4 && k + j < elen; j++) w |= (uint32_t)e[k + j] << (8 * j);
  return w;
}

/* The 16-bit ordered-integer step of rebuild16 and undiffPlanes16: prediction bits pv plus the zigzag-decoded delta dd (mod 2^16). */
static inline uint16_t add_ordered16(uint32_t pv, uint32_t dd) {
  uint32_t o = ((pv ^ 0x8000u ^ ((0u - (pv >> 15)) & 0x7fffu)) + dd) & 0xffff;
  return (uint16_t)(o ^ 0x8000u ^ (((o >> 15) - 1) & 0x7fffu));
}

/*
 * tokenise32(x, p, ctx, S, tok out, hist out, buf out) -> [bytes, acc, nbits]
 * written into the Float64Array `state` (argument 7): the ExtraBits writer's
 * position, pending bits and their count, for ExtraBits.finish in the JS.
 */
static napi_value tokenise32(napi_env env, napi_callback_info info) {
  ARGS(8);
  ARR(0, napi_uint32_array, 0, xA);
  ARR(1, napi_uint32_array, 0, pA);
  ARR(2, napi_uint16_array, 0, ctxA);
  INT(3, S);
  ARR(4, napi_uint8_array, 0, tokA);
  ARR(5, napi_uint32_array, 0, histA);
  ARR(6, napi_uint8_array, 0, bufA);
  ARR(7, napi_float64_array, 0, stA);
  size_t n = xA.length;
  if (pA.length < n || ctxA.length < n || tokA.length < n || S < 0 || stA.length < 3 || bufA.length < ((n * 30) >> 3) + 8)
    return throw_type(env, "tokenise32: arguments out of range");
  const uint32_t* x = (const uint32_t*)xA.data;
  const uint32_t* p = (const uint32_t*)pA.data;
  const uint16_t* ctx = (const uint16_t*)ctxA.data;
  uint8_t* tok = (uint8_t*)tokA.data;
  uint32_t* hist = (uint32_t*)histA.data;
  const size_t hlen = histA.length;
  uint8_t* buf = (uint8_t*)bufA.data;
  size_t bpos = 0;
  uint32_t acc = 0, nacc = 0;
  for (size_t i = 0; i < n; i++) {
    const uint32_t zz = zigzag_diff32(x[i], p[i]);
    uint32_t t;
    if (zz < DIRECT) t = zz;
    else {
      int b = 32 - (int)clz32(zz);
      int nb = b - 2;
      t = DIRECT + ((b - 5) << 1) + ((zz >> nb) & 1);
      uint32_t rest = zz & (uint32_t)((1ull << nb) - 1);
      int left = nb;
      while (left > 0) {
        int k = left > 16 ? 16 : left;
        acc |= (rest & ((1u << k) - 1)) << nacc;
        rest >>= k;
        left -= k;
        nacc += (uint32_t)k;
        while (nacc >= 8) {
          buf[bpos++] = (uint8_t)acc;
          acc >>= 8;
          nacc -= 8;
        }
      }
    }
    tok[i] = (uint8_t)t;
    size_t h = (size_t)ctx[i] * (size_t)S + t;
    if (h < hlen) hist[h]++;
  }
  double* st = (double*)stA.data;
  st[0] = (double)bpos;
  st[1] = (double)acc;
  st[2] = (double)nacc;
  return NULL;
}

/* Eight bytes at byte k, little-endian, zeros past the section's end. */
static inline uint64_t window64(const uint8_t* e, size_t elen, size_t k) {
  uint64_t w = 0;
  if (k + 8 <= elen) {
    memcpy(&w, e + k, 8);
    return le64(w);
  }
  for (size_t j = 0; j < 8 && k + j < elen; j++) w |= (uint64_t)e[k + j] << (8 * j);
  return w;
}

/*
 * The zigzag value of 32-bit token t, reading its extra bits at bit *bp.
 * The JS reads them in pieces of at most 16 bits through a byte accumulator,
 * OR-ing piece j in at shift 16j mod 32 (JS shift counts are mod 32): for
 * the alphabet's tokens (at most 30 bits) that is one contiguous read; a
 * token past the alphabet (a damaged table cannot make one, but any byte
 * must give the JS's bits) takes the piecewise path.
 */
static inline uint32_t zz32_read(uint32_t t, const uint8_t* e, size_t elen, size_t* bp) {
  if (t < DIRECT) return t;
  const int b = (int)((t - DIRECT) >> 1) + 5;
  const int nb = b - 2;
  uint32_t got = 0;
  if (nb <= 30) {
    got = (uint32_t)(window64(e, elen, *bp >> 3) >> (*bp & 7)) & ((1u << nb) - 1);
    *bp += (size_t)nb;
  } else {
    int shv = 0, left = nb;
    while (left > 0) {
      const int k = left > 16 ? 16 : left;
      const uint32_t bits = (uint32_t)(window64(e, elen, *bp >> 3) >> (*bp & 7)) & ((1u << k) - 1);
      got |= bits << (shv & 31);
      *bp += (size_t)k;
      shv += k;
      left -= k;
    }
  }
  return (1u << ((b - 1) & 31)) | ((t & 1) << (nb & 31)) | got;
}

/* The 32-bit ordered-integer step: prediction bits pv plus the zigzag delta zz (mod 2^32). */
static inline uint32_t add_ordered32(uint32_t pv, uint32_t zz) {
  const int32_t spv = (int32_t)pv;
  const uint32_t op = pv ^ 0x80000000u ^ (uint32_t)((spv >> 31) & 0x7fffffff);
  const int32_t o = (int32_t)(op + ((zz >> 1) ^ (0u - (zz & 1))));
  return (uint32_t)o ^ 0x80000000u ^ (uint32_t)((~o >> 31) & 0x7fffffff);
}

/* ---------- byte planes of the 'fast' level (zplanes.ts) ---------- */

/* diffPlanes16(x, p, hi out, lo out): n = x.length. */
static napi_value diff_planes16(napi_env env, napi_callback_info info) {
  ARGS(4);
  ARR(0, napi_uint16_array, 0, xA);
  ARR(1, napi_uint16_array, 0, pA);
  ARR(2, napi_uint8_array, 0, hiA);
  ARR(3, napi_uint8_array, 0, loA);
  size_t n = xA.length;
  if (pA.length < n || hiA.length < n || loA.length < n) return throw_type(env, "diffPlanes16: arguments out of range");
  const uint16_t* x = (const uint16_t*)xA.data;
  const uint16_t* p = (const uint16_t*)pA.data;
  uint8_t* hi = (uint8_t*)hiA.data;
  uint8_t* lo = (uint8_t*)loA.data;
  for (size_t i = 0; i < n; i++) {
    const uint32_t zz = zigzag_diff16(x[i], p[i]);
    hi[i] = (uint8_t)(zz >> 8);
    lo[i] = (uint8_t)zz;
  }
  return NULL;
}

/* undiffPlanes16(out, p, hi, lo): n = out.length. */
static napi_value undiff_planes16(napi_env env, napi_callback_info info) {
  ARGS(4);
  ARR(0, napi_uint16_array, 0, outA);
  ARR(1, napi_uint16_array, 0, pA);
  ARR(2, napi_uint8_array, 0, hiA);
  ARR(3, napi_uint8_array, 0, loA);
  size_t n = outA.length;
  if (pA.length < n || hiA.length < n || loA.length < n) return throw_type(env, "undiffPlanes16: arguments out of range");
  uint16_t* out = (uint16_t*)outA.data;
  const uint16_t* p = (const uint16_t*)pA.data;
  const uint8_t* hi = (const uint8_t*)hiA.data;
  const uint8_t* lo = (const uint8_t*)loA.data;
  for (size_t i = 0; i < n; i++) {
    const uint32_t zz = ((uint32_t)hi[i] << 8) | lo[i];
    out[i] = add_ordered16(p[i], (zz >> 1) ^ (0u - (zz & 1)));
  }
  return NULL;
}

/* diffPlanes32(x, p, b0, b1, b2, b3 out) */
static napi_value diff_planes32(napi_env env, napi_callback_info info) {
  ARGS(6);
  ARR(0, napi_uint32_array, 0, xA);
  ARR(1, napi_uint32_array, 0, pA);
  ARR(2, napi_uint8_array, 0, q0);
  ARR(3, napi_uint8_array, 0, q1);
  ARR(4, napi_uint8_array, 0, q2);
  ARR(5, napi_uint8_array, 0, q3);
  size_t n = xA.length;
  if (pA.length < n || q0.length < n || q1.length < n || q2.length < n || q3.length < n) return throw_type(env, "diffPlanes32: arguments out of range");
  const uint32_t* x = (const uint32_t*)xA.data;
  const uint32_t* p = (const uint32_t*)pA.data;
  uint8_t *b0 = q0.data, *b1 = q1.data, *b2 = q2.data, *b3 = q3.data;
  for (size_t i = 0; i < n; i++) {
    const uint32_t zz = zigzag_diff32(x[i], p[i]);
    b0[i] = (uint8_t)zz;
    b1[i] = (uint8_t)(zz >> 8);
    b2[i] = (uint8_t)(zz >> 16);
    b3[i] = (uint8_t)(zz >> 24);
  }
  return NULL;
}

/* undiffPlanes32(out, p, b0, b1, b2, b3) */
static napi_value undiff_planes32(napi_env env, napi_callback_info info) {
  ARGS(6);
  ARR(0, napi_uint32_array, 0, outA);
  ARR(1, napi_uint32_array, 0, pA);
  ARR(2, napi_uint8_array, 0, q0);
  ARR(3, napi_uint8_array, 0, q1);
  ARR(4, napi_uint8_array, 0, q2);
  ARR(5, napi_uint8_array, 0, q3);
  size_t n = outA.length;
  if (pA.length < n || q0.length < n || q1.length < n || q2.length < n || q3.length < n) return throw_type(env, "undiffPlanes32: arguments out of range");
  uint32_t* out = (uint32_t*)outA.data;
  const uint32_t* p = (const uint32_t*)pA.data;
  const uint8_t *b0 = q0.data, *b1 = q1.data, *b2 = q2.data, *b3 = q3.data;
  for (size_t i = 0; i < n; i++) {
    const uint32_t zz = b0[i] | ((uint32_t)b1[i] << 8) | ((uint32_t)b2[i] << 16) | ((uint32_t)b3[i] << 24);
    out[i] = add_ordered32(p[i], zz);
  }
  return NULL;
}

/* ---------- byte grouping (byte-planes.ts) and BitX's XOR (basic-codecs.ts) ---------- */

/* splitPlanes(src, p0, p1[, p2, p3]): plane k gets byte k of every 2- or 4-byte element; n = p0.length. */
static napi_value split_planes(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || (argc != 3 && argc != 5)) return throw_type(env, "splitPlanes: 2 or 4 planes");
  const size_t w = argc - 1;
  ARR(0, napi_uint8_array, 0, srcA);
  uint8_t* pl[4];
  size_t n = 0;
  for (size_t k = 0; k < w; k++) {
    arr_t a;
    if (!get_arr(env, argv[1 + k], napi_uint8_array, 0, &a)) return throw_type(env, "splitPlanes: planes must be Uint8Arrays");
    if (k == 0) n = a.length;
    if (a.length < n) return throw_type(env, "splitPlanes: arguments out of range");
    pl[k] = a.data;
  }
  if (srcA.length < n * w) return throw_type(env, "splitPlanes: arguments out of range");
  const uint8_t* src = srcA.data;
  if (w == 2)
    for (size_t i = 0; i < n; i++) {
      pl[0][i] = src[2 * i];
      pl[1][i] = src[2 * i + 1];
    }
  else
    for (size_t i = 0; i < n; i++) {
      pl[0][i] = src[4 * i];
      pl[1][i] = src[4 * i + 1];
      pl[2][i] = src[4 * i + 2];
      pl[3][i] = src[4 * i + 3];
    }
  return NULL;
}

/* joinPlanes(out, p0, p1[, p2, p3]): the inverse; n = p0.length. */
static napi_value join_planes(napi_env env, napi_callback_info info) {
  size_t argc = 5;
  napi_value argv[5];
  if (napi_get_cb_info(env, info, &argc, argv, NULL, NULL) != napi_ok || (argc != 3 && argc != 5)) return throw_type(env, "joinPlanes: 2 or 4 planes");
  const size_t w = argc - 1;
  ARR(0, napi_uint8_array, 0, outA);
  const uint8_t* pl[4];
  size_t n = 0;
  for (size_t k = 0; k < w; k++) {
    arr_t a;
    if (!get_arr(env, argv[1 + k], napi_uint8_array, 0, &a)) return throw_type(env, "joinPlanes: planes must be Uint8Arrays");
    if (k == 0) n = a.length;
    if (a.length < n) return throw_type(env, "joinPlanes: arguments out of range");
    pl[k] = a.data;
  }
  if (outA.length < n * w) return throw_type(env, "joinPlanes: arguments out of range");
  uint8_t* out = outA.data;
  if (w == 2)
    for (size_t i = 0; i < n; i++) {
      out[2 * i] = pl[0][i];
      out[2 * i + 1] = pl[1][i];
    }
  else
    for (size_t i = 0; i < n; i++) {
      out[4 * i] = pl[0][i];
      out[4 * i + 1] = pl[1][i];
      out[4 * i + 2] = pl[2][i];
      out[4 * i + 3] = pl[3][i];
    }
  return NULL;
}

/* xorBytes(a, b, out): out[i] = a[i] ^ b[i] for i < out.length (out may be a or b). */
static napi_value xor_bytes(napi_env env, napi_callback_info info) {
  ARGS(3);
  ARR(0, napi_uint8_array, 0, aA);
  ARR(1, napi_uint8_array, 0, bA);
  ARR(2, napi_uint8_array, 0, oA);
  const size_t n = oA.length;
  if (aA.length < n || bA.length < n) return throw_type(env, "xorBytes: arguments out of range");
  const uint8_t* a = aA.data;
  const uint8_t* b = bA.data;
  uint8_t* o = oA.data;
  for (size_t i = 0; i < n; i++) o[i] = a[i] ^ b[i];
  return NULL;
}

/* ---------- float conversions (float.ts predictionBits, format/dtype-convert.ts) ---------- */

/* f16ToF32 in dtype-convert.ts: exact, as bit patterns (NaN payloads kept). */
static inline uint32_t f16_to_f32(uint32_t h) {
  const uint32_t s = (h & 0x8000) << 16;
  const uint32_t e = (h >> 10) & 0x1f;
  const uint32_t m = h & 0x3ff;
  if (e == 0) {
    if (m == 0) return s;
    const uint32_t k = 31 - (uint32_t)__builtin_clz(m);
    return s | ((k + 103) << 23) | ((m - (1u << k)) << (23 - k));
  }
  if (e == 31) return s | 0x7f800000u | (m << 13);
  return s | ((e + 112) << 23) | (m << 13);
}

/* f32ToBf16 in float.ts: round to nearest even; NaN stays NaN (quiet). */
static inline uint32_t f32_to_bf16(uint32_t u) {
  if ((u & 0x7f800000u) == 0x7f800000u && (u & 0x7fffffu) != 0) return ((u >> 16) | 0x40) & 0xffff;
  return (uint32_t)((((uint64_t)u + 0x7fff + ((u >> 16) & 1)) >> 16) & 0xffff);
}

/* f32ToF16 in float.ts: round to nearest even, subnormals, overflow to infinity. */
static inline uint32_t f32_to_f16(uint32_t u) {
  const uint32_t s = (u >> 16) & 0x8000;
  const uint32_t e = (u >> 23) & 0xff;
  const uint32_t m = u & 0x7fffff;
  if (e == 0xff) return m == 0 ? s | 0x7c00 : s | 0x7e00 | (m >> 13);
  if (e >= 113) {
    if (e >= 143) return s | 0x7c00;
    uint32_t h = ((e - 112) << 10) | (m >> 13);
    const uint32_t rem = m & 0x1fff;
    if (rem > 0x1000 || (rem == 0x1000 && (h & 1) != 0)) h++;
    return s | h;
  }
  if (e < 102) return s;
  const uint32_t M = m | 0x800000;
  const uint32_t shift = 126 - e;
  uint32_t h = M >> shift;
  const uint32_t rem = M & ((1u << shift) - 1);
  const uint32_t half = 1u << (shift - 1);
  if (rem > half || (rem == half && (h & 1) != 0)) h++;
  return s | h;
}

/*
 * convertFloats(src, srcKind, out, outKind): kinds 0 BF16, 1 F16, 2 F32 (16-bit kinds in
 * Uint16Array, F32 in Uint32Array); n = out.length. Exact widening to float32, then an RNE
 * narrowing: float.ts predictionBits, element for element.
 */
static napi_value convert_floats(napi_env env, napi_callback_info info) {
  ARGS(4);
  INT(1, sk);
  INT(3, dk);
  if (sk < 0 || sk > 2 || dk < 0 || dk > 2) return throw_type(env, "convertFloats: unknown kind");
  arr_t src, dst;
  if (!get_arr(env, argv[0], sk == 2 ? napi_uint32_array : napi_uint16_array, 0, &src)) return throw_type(env, "convertFloats: src has the wrong type");
  if (!get_arr(env, argv[2], dk == 2 ? napi_uint32_array : napi_uint16_array, 0, &dst)) return throw_type(env, "convertFloats: out has the wrong type");
  const size_t n = dst.length;
  if (src.length < n) return throw_type(env, "convertFloats: arguments out of range");
  const uint16_t* s16 = src.data;
  const uint32_t* s32 = src.data;
  uint16_t* d16 = dst.data;
  uint32_t* d32 = dst.data;
  for (size_t i = 0; i < n; i++) {
    const uint32_t f = sk == 2 ? s32[i] : sk == 0 ? (uint32_t)s16[i] << 16 : f16_to_f32(s16[i]);
    if (dk == 2) d32[i] = f;
    else d16[i] = (uint16_t)(dk == 0 ? f32_to_bf16(f) : f32_to_f16(f));
  }
  return NULL;
}

/* ---------- standalone float codec (exp-codec.ts) ---------- */

/* The chunk's values as uint32, from a Uint16Array or a Uint32Array. */
typedef struct {
  const uint16_t* v16;
  const uint32_t* v32;
  size_t n;
} vals_t;

static int get_vals(napi_env env, napi_value v, vals_t* out) {
  arr_t a;
  out->v16 = NULL;
  out->v32 = NULL;
  if (get_arr(env, v, napi_uint16_array, 0, &a)) {
    out->v16 = a.data;
    out->n = a.length;
    return 1;
  }
  if (get_arr(env, v, napi_uint32_array, 0, &a)) {
    out->v32 = a.data;
    out->n = a.length;
    return 1;
  }
  return 0;
}
#define VAL(vs, i) ((vs).v16 ? (uint32_t)(vs).v16[i] : (vs).v32[i])

/* expScan(v, mant, emask, res Int32Array(3)): OR of the mantissa fields, min and max exponent. */
static napi_value exp_scan(napi_env env, napi_callback_info info) {
  ARGS(4);
  vals_t vs;
  if (!get_vals(env, argv[0], &vs)) return throw_type(env, "expScan: values must be a Uint16Array or Uint32Array");
  INT(1, mant);
  INT(2, emask);
  ARR(3, napi_int32_array, 0, resA);
  if (mant < 0 || mant > 31 || emask < 0 || resA.length < 3) return throw_type(env, "expScan: arguments out of range");
  const uint32_t mmask = (uint32_t)((1ull << mant) - 1);
  uint32_t orm = 0, emin = (uint32_t)emask, emax = 0;
  for (size_t i = 0; i < vs.n; i++) {
    uint32_t u = VAL(vs, i);
    orm |= u & mmask;
    uint32_t e = (u >> mant) & (uint32_t)emask;
    if (e < emin) emin = e;
    if (e > emax) emax = e;
  }
  int32_t* r = (int32_t*)resA.data;
  r[0] = (int32_t)orm;
  r[1] = (int32_t)emin;
  r[2] = (int32_t)emax;
  return NULL;
}

/* expHist(v, mant, emask, emin, t, k, low, hist): token histogram for one k. */
static napi_value exp_hist(napi_env env, napi_callback_info info) {
  ARGS(8);
  vals_t vs;
  if (!get_vals(env, argv[0], &vs)) return throw_type(env, "expHist: values must be a Uint16Array or Uint32Array");
  INT(1, mant);
  INT(2, emask);
  INT(3, emin);
  INT(4, t);
  INT(5, k);
  INT(6, low);
  ARR(7, napi_uint32_array, 0, histA);
  if (mant < 0 || mant > 31 || t < 0 || t > 31 || k < 0 || k > 8 || low < 0 || low > 31) return throw_type(env, "expHist: arguments out of range");
  const uint32_t mmask = (uint32_t)((1ull << mant) - 1);
  uint32_t* hist = (uint32_t*)histA.data;
  const size_t hlen = histA.length;
  /* four copies (elements i & 3), so that runs of one exponent do not wait on each other's increments */
  uint32_t* h4 = calloc(4 * hlen + 1, sizeof(uint32_t));
  if (!h4) return throw_type(env, "expHist: out of memory");
  for (size_t i = 0; i < vs.n; i++) {
    uint32_t u = VAL(vs, i);
    int64_t h = ((int64_t)(((u >> mant) & (uint32_t)emask)) - emin) * ((int64_t)1 << k) | (int64_t)(((u & mmask) >> t) >> low);
    if (h >= 0 && (size_t)h < hlen) h4[(i & 3) * hlen + (size_t)h]++;
  }
  for (size_t q = 0; q < hlen; q++) hist[q] += h4[q] + h4[hlen + q] + h4[2 * hlen + q] + h4[3 * hlen + q];
  free(h4);
  return NULL;
}

/* expPack(v, mant, emask, emin, t, k, low, signShift, tok out, buf out) -> bytes written to buf. */
static napi_value exp_pack(napi_env env, napi_callback_info info) {
  ARGS(10);
  vals_t vs;
  if (!get_vals(env, argv[0], &vs)) return throw_type(env, "expPack: values must be a Uint16Array or Uint32Array");
  INT(1, mant);
  INT(2, emask);
  INT(3, emin);
  INT(4, t);
  INT(5, k);
  INT(6, low);
  INT(7, signShift);
  ARR(8, napi_uint8_array, 0, tokA);
  ARR(9, napi_uint8_array, 0, bufA);
  size_t n = vs.n;
  const int64_t rawBits = 1 + low;
  if (mant < 0 || mant > 31 || t < 0 || t > 31 || k < 0 || k > 8 || low < 0 || low > 23 || signShift < 0 || signShift > 31 || tokA.length < n || bufA.length < (size_t)((n * rawBits) >> 3) + 8)
    return throw_type(env, "expPack: arguments out of range");
  const uint32_t mmask = (uint32_t)((1ull << mant) - 1);
  const uint32_t lowMask = (1u << low) - 1;
  uint8_t* tok = (uint8_t*)tokA.data;
  uint8_t* buf = (uint8_t*)bufA.data;
  size_t bpos = 0;
  uint64_t acc = 0;
  uint32_t nacc = 0;
  for (size_t i = 0; i < n; i++) {
    uint32_t u = VAL(vs, i);
    uint32_t m = (u & mmask) >> t;
    tok[i] = (uint8_t)(((((u >> mant) & (uint32_t)emask) - (uint32_t)emin) << k) | (m >> low));
    acc |= (uint64_t)((u >> signShift) | ((m & lowMask) << 1)) << nacc;
    nacc += (uint32_t)rawBits;
    while (nacc >= 8) {
      buf[bpos++] = (uint8_t)acc;
      acc >>= 8;
      nacc -= 8;
    }
  }
  if (nacc > 0) buf[bpos++] = (uint8_t)acc;
  return num(env, (double)bpos);
}

/* ---------- fused decoders: rANS tokens and what follows them, in one pass ---------- */

static inline uint32_t le32(uint32_t w) {
#if __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
  return __builtin_bswap32(w);
#else
  return w;
#endif
}

/*
 * delta16Decode(buf, pos, end, states Int32Array(5), tab, prec, base, src, shift, n, extra, p, out)
 * -> the rANS word position; states[0..3] the final states, states[4] rebuild16's status (0, 1, 2).
 * The same result as ransDecodeTokens then rebuild16 (delta-codec.ts decodePredicted), without
 * the token array: the rANS loop waits on its table lookups, and the extra-bit reads and the
 * value rebuild of the same tokens fill that wait. On a damaged payload (any nonzero status, or a
 * stream that does not finish cleanly) `out` holds unspecified values; the caller reports the error.
 */
static napi_value delta16_decode(napi_env env, napi_callback_info info) {
  ARGS(13);
  INT(9, n);
  ARR(10, napi_uint8_array, 0, eA);
  ARR(11, napi_uint16_array, 0, pA);
  ARR(12, napi_uint16_array, 0, outA);
  if (n < 0 || (size_t)n > outA.length || (size_t)n > pA.length) return throw_type(env, "delta16_decode: arguments out of range");
  rans_t r;
  int32_t* S;
  if (!rans_from_args(env, argv, n, &r, &S)) return NULL;
  arr_t st;
  get_arr(env, argv[3], napi_int32_array, 0, &st);
  if (st.length < 5) return throw_type(env, "delta16_decode: states needs 5 entries");
  pthread_once(&tables_once, init_tables);
  const uint8_t* e = (const uint8_t*)eA.data;
  const size_t elen = eA.length;
  const uint16_t* p = (const uint16_t*)pA.data;
  uint16_t* out = (uint16_t*)outA.data;
  const size_t N = (size_t)n;
  size_t i = 0, bp = 0;
  int status = 0;
#define EXTRACT16(t, k)                                                             \
  do {                                                                              \
    uint32_t w_;                                                                    \
    memcpy(&w_, e + (bp >> 3), 4);                                                  \
    w_ = le32(w_);                                                                  \
    const uint32_t zz_ = BASE[t] | ((w_ >> (bp & 7)) & MASK[t]);                    \
    bp += NB[t];                                                                    \
    out[k] = add_ordered16(p[k], (zz_ >> 1) ^ (0u - (zz_ & 1)));                    \
  } while (0)
  if (r.fast) {
    /* a copy whose address never leaves this function, so the compiler keeps its fields in registers */
    rans_t R = r;
    /* four tokens read at most 4 x 30 extra bits: 15 bytes, plus the 4-byte window */
    for (; i + 4 <= N && R.ps + 8 <= R.e && (bp >> 3) + 19 <= elen; i += 4) {
      uint8_t t0, t1, t2, t3;
      RANS_BLOCK4(&R, i, t0, t1, t2, t3);
      EXTRACT16(t0, i);
      EXTRACT16(t1, i + 1);
      EXTRACT16(t2, i + 2);
      EXTRACT16(t3, i + 3);
    }
    r = R;
  }
#undef EXTRACT16
  if (i < N) {
    /* the rest as the separate kernels do it: tokens, then the checked rebuild */
    uint8_t* tk = malloc(N - i);
    if (!tk) return throw_type(env, "delta16_decode: out of memory");
    rans_decode_range(&r, i, N, tk);
    for (size_t k = i; k < N; k++) {
      if ((bp >> 3) > elen) {
        status = 1;
        break;
      }
      const uint32_t t = tk[k - i];
      const uint32_t zz = BASE[t] | ((window32(e, elen, bp >> 3) >> (bp & 7)) & MASK[t]);
      bp += NB[t];
      out[k] = add_ordered16(p[k], (zz >> 1) ^ (0u - (zz & 1)));
    }
    free(tk);
  }
  if (status == 0 && ((bp + 7) >> 3) != elen) status = 2;
  rans_store(&r, S);
  S[4] = status;
  return num(env, (double)r.ps);
}

/*
 * delta32Decode(buf, pos, end, states Int32Array(5), tab, prec, base, ctx, 0, n, extra, p, out)
 * -> the rANS word position; states[4] rebuild32's status (0 or 2): ransDecodeTokens then rebuild32
 * (float32 chunks; the context array is always given), in one pass.
 */
static napi_value delta32_decode(napi_env env, napi_callback_info info) {
  ARGS(13);
  INT(9, n);
  ARR(10, napi_uint8_array, 0, eA);
  ARR(11, napi_uint32_array, 0, pA);
  ARR(12, napi_uint32_array, 0, outA);
  if (n < 0 || (size_t)n > outA.length || (size_t)n > pA.length) return throw_type(env, "delta32_decode: arguments out of range");
  rans_t r;
  int32_t* S;
  if (!rans_from_args(env, argv, n, &r, &S)) return NULL;
  arr_t st;
  get_arr(env, argv[3], napi_int32_array, 0, &st);
  if (st.length < 5) return throw_type(env, "delta32_decode: states needs 5 entries");
  const uint8_t* e = (const uint8_t*)eA.data;
  const size_t elen = eA.length;
  const uint32_t* p = (const uint32_t*)pA.data;
  uint32_t* out = (uint32_t*)outA.data;
  const size_t N = (size_t)n;
  size_t i = 0, bp = 0;
  if (r.fast) {
    rans_t R = r; /* kept in registers: see delta16_decode */
    for (; i + 4 <= N && R.ps + 8 <= R.e; i += 4) {
      uint8_t t0, t1, t2, t3;
      RANS_BLOCK4(&R, i, t0, t1, t2, t3);
      out[i] = add_ordered32(p[i], zz32_read(t0, e, elen, &bp));
      out[i + 1] = add_ordered32(p[i + 1], zz32_read(t1, e, elen, &bp));
      out[i + 2] = add_ordered32(p[i + 2], zz32_read(t2, e, elen, &bp));
      out[i + 3] = add_ordered32(p[i + 3], zz32_read(t3, e, elen, &bp));
    }
    r = R;
  }
  if (i < N) {
    uint8_t* tk = malloc(N - i);
    if (!tk) return throw_type(env, "delta32_decode: out of memory");
    rans_decode_range(&r, i, N, tk);
    for (size_t k = i; k < N; k++) out[k] = add_ordered32(p[k], zz32_read(tk[k - i], e, elen, &bp));
    free(tk);
  }
  rans_store(&r, S);
  S[4] = ((bp + 7) >> 3) != elen ? 2 : 0;
  return num(env, (double)r.ps);
}

/*
 * expDecode(buf, pos, end, states Int32Array(5), tab, prec, base, null, 0, n, extra, out (Uint16Array |
 * Uint32Array), mant, emin, t, k, low) -> the rANS word position; states[4] = 1 when the raw-bits
 * section's length does not match (exp-codec.ts decodeExp: ransDecodeTokens then the unpack loop).
 */
/* gcc's SLP vectoriser packs the four states' scalar chains into vector lanes and back here, which
   cost ~12% (3.5 vs 4.0 ns/element); the delta decoder gains from it, so only this one opts out. */
#if defined(__GNUC__) && !defined(__clang__)
__attribute__((optimize("no-tree-slp-vectorize")))
#endif
static napi_value exp_decode(napi_env env, napi_callback_info info) {
  ARGS(17);
  INT(9, n);
  ARR(10, napi_uint8_array, 0, eA);
  arr_t o16 = {0}, o32 = {0};
  size_t olen;
  if (get_arr(env, argv[11], napi_uint16_array, 0, &o16)) olen = o16.length;
  else if (get_arr(env, argv[11], napi_uint32_array, 0, &o32)) olen = o32.length;
  else return throw_type(env, "expDecode: out must be a Uint16Array or Uint32Array");
  INT(12, mant);
  INT(13, emin);
  INT(14, t);
  INT(15, k);
  INT(16, low);
  if (n < 0 || (size_t)n > olen || mant < 0 || mant > 31 || t < 0 || t > 31 || k < 0 || k > 8 || low < 0 || low > 23) return throw_type(env, "expDecode: arguments out of range");
  rans_t r;
  int32_t* S;
  if (!rans_from_args(env, argv, n, &r, &S)) return NULL;
  arr_t st;
  get_arr(env, argv[3], napi_int32_array, 0, &st);
  if (st.length < 5) return throw_type(env, "expDecode: states needs 5 entries");
  const uint32_t rawBits = 1 + (uint32_t)low;
  const uint32_t rbMask = (1u << rawBits) - 1;
  const uint32_t kMask = (1u << k) - 1;
  const unsigned signShift = o16.data ? 15 : 31;
  const uint8_t* e = (const uint8_t*)eA.data;
  const size_t elen = eA.length;
  uint16_t* out16 = o16.data;
  uint32_t* out32 = o32.data;
  const size_t N = (size_t)n;
  const uint32_t em = (uint32_t)emin, km = (uint32_t)k, lo = (uint32_t)low, tt = (uint32_t)t, mt = (uint32_t)mant;
  /*
   * The bits each token contributes, once per token value: with r = 0 the
   * JS's expression is HI[token], and the raw bits OR in beside it (a shift
   * distributes over OR), so the loop does one lookup instead of the
   * exponent and mantissa arithmetic.
   */
  uint32_t HI[256];
  for (uint32_t q = 0; q < 256; q++) HI[q] = (((q >> km) + em) << mt) | (((q & kMask) << lo) << tt);
#define UNPACK(tk, i, w)                                                                                           \
  do {                                                                                                             \
    const uint64_t bit_ = (uint64_t)(i) * rawBits;                                                                 \
    const uint32_t r_ = (uint32_t)((w) >> (bit_ & 7)) & rbMask;                                                    \
    const uint32_t v_ = HI[(tk)] | ((r_ & 1) << signShift) | ((r_ >> 1) << tt);                                \
    if (out16) out16[i] = (uint16_t)v_;                                                                            \
    else out32[i] = v_;                                                                                            \
  } while (0)
#define WINDOW_AT(i, w)                                           \
  uint64_t w;                                                     \
  do {                                                            \
    memcpy(&w, e + (((uint64_t)(i) * rawBits) >> 3), 8);         \
    w = le64(w);                                                  \
  } while (0)
  size_t i = 0;
  if (r.fast) {
    rans_t R = r; /* kept in registers: see delta16_decode */
    for (; i + 4 <= N && R.ps + 8 <= R.e && ((((uint64_t)i + 3) * rawBits) >> 3) + 8 <= elen; i += 4) {
      uint8_t t0, t1, t2, t3;
      RANS_BLOCK4(&R, i, t0, t1, t2, t3);
      WINDOW_AT(i, w0);
      UNPACK(t0, i, w0);
      WINDOW_AT(i + 1, w1);
      UNPACK(t1, i + 1, w1);
      WINDOW_AT(i + 2, w2);
      UNPACK(t2, i + 2, w2);
      WINDOW_AT(i + 3, w3);
      UNPACK(t3, i + 3, w3);
    }
    r = R;
  }
#undef WINDOW_AT
  if (i < N) {
    uint8_t* tk = malloc(N - i);
    if (!tk) return throw_type(env, "expDecode: out of memory");
    rans_decode_range(&r, i, N, tk);
    for (size_t q = i; q < N; q++) {
      const size_t at = (size_t)(((uint64_t)q * rawBits) >> 3);
      uint64_t w = 0;
      if (at + 8 <= elen) {
        memcpy(&w, e + at, 8);
        w = le64(w);
      } else
        for (size_t j = 0; j < 8 && at + j < elen; j++) w |= (uint64_t)e[at + j] << (8 * j);
      UNPACK(tk[q - i], q, w);
    }
    free(tk);
  }
#undef UNPACK
  rans_store(&r, S);
  S[4] = ((((uint64_t)N * rawBits) + 7) >> 3) != elen ? 1 : 0;
  return num(env, (double)r.ps);
}

/* ---------- module ---------- */

NAPI_MODULE_INIT() {
  pthread_once(&tables_once, init_tables);
  napi_property_descriptor props[] = {
      {"ransEncode", NULL, rans_encode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"contexts16", NULL, contexts16, NULL, NULL, NULL, napi_enumerable, NULL},
      {"contexts32", NULL, contexts32, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tokenise16", NULL, tokenise16, NULL, NULL, NULL, napi_enumerable, NULL},
      {"tokenise32", NULL, tokenise32, NULL, NULL, NULL, napi_enumerable, NULL},
      {"diffPlanes16", NULL, diff_planes16, NULL, NULL, NULL, napi_enumerable, NULL},
      {"undiffPlanes16", NULL, undiff_planes16, NULL, NULL, NULL, napi_enumerable, NULL},
      {"diffPlanes32", NULL, diff_planes32, NULL, NULL, NULL, napi_enumerable, NULL},
      {"undiffPlanes32", NULL, undiff_planes32, NULL, NULL, NULL, napi_enumerable, NULL},
      {"convertFloats", NULL, convert_floats, NULL, NULL, NULL, napi_enumerable, NULL},
      {"splitPlanes", NULL, split_planes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"joinPlanes", NULL, join_planes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"xorBytes", NULL, xor_bytes, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expScan", NULL, exp_scan, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expHist", NULL, exp_hist, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expPack", NULL, exp_pack, NULL, NULL, NULL, napi_enumerable, NULL},
      {"delta16Decode", NULL, delta16_decode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"delta32Decode", NULL, delta32_decode, NULL, NULL, NULL, napi_enumerable, NULL},
      {"expDecode", NULL, exp_decode, NULL, NULL, NULL, napi_enumerable, NULL},
  };
  napi_define_properties(env, exports, sizeof(props) / sizeof(props[0]), props);
  return exports;
}
