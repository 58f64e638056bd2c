/*
 * WebAssembly build of at1's codec kernels, for measurement only
 * (bench/codec-kernels-bench.ts): the addon's source,
 * src/kernels/native/codec-kernels.c, compiled unchanged for wasm32 against
 * a stand-in Node-API (include/node_api.h) whose values are argument slots in
 * this module's memory. So the loops measured here are the very loops the
 * native addon runs, with the same argument checks.
 *
 * The JS side (codec-kernels-wasm.ts) reserves buffers with at1w_alloc,
 * copies a chunk's arrays in, fills the slots, calls at1w_call(kernel, argc)
 * and copies results out. Build: bench/wasm/build.ts (clang + lld).
 */
#include <stddef.h>
#include <stdint.h>

#define EXPORT(name) __attribute__((export_name(name)))

/* ---------- the little libc the kernels use ---------- */

void* memcpy(void* restrict d, const void* restrict s, size_t n) {
  __builtin_memcpy(d, s, n); /* memory.copy (-mbulk-memory) */
  return d;
}
void* memmove(void* d, const void* s, size_t n) {
  __builtin_memmove(d, s, n);
  return d;
}
void* memset(void* d, int c, size_t n) {
  __builtin_memset(d, c, n);
  return d;
}

/* A bump arena: buffers for the JS side, and the kernels' own malloc (rans_encode's reciprocal table), released after each call. */
extern unsigned char __heap_base;
static uintptr_t heap_top = 0;

static void* bump(size_t n) {
  if (!heap_top) heap_top = (uintptr_t)&__heap_base;
  uintptr_t p = (heap_top + 15) & ~(uintptr_t)15;
  uintptr_t end = p + n;
  uintptr_t have = __builtin_wasm_memory_size(0) * 65536u;
  if (end > have) {
    uintptr_t pages = (end - have + 65535u) / 65536u;
    if (__builtin_wasm_memory_grow(0, pages) == (size_t)-1) return NULL;
  }
  heap_top = end;
  return (void*)p;
}
void* malloc(size_t n) { return bump(n); }
void free(void* p) { (void)p; }

/* ---------- the Node-API stand-in ---------- */

#include "node_api.h"

struct at1w_call {
  size_t argc;
  at1w_slot* argv;
};

#define MAX_ARGS 16
#define MAX_FNS 32
static at1w_slot slots[MAX_ARGS];
static at1w_slot result;
static const char* error_msg;
static napi_property_descriptor fns[MAX_FNS];
static size_t nfns;

napi_status napi_typeof(napi_env env, napi_value v, napi_valuetype* out) {
  *out = v->kind == 0 ? napi_null : v->kind == 2 ? napi_number : napi_object;
  return napi_ok;
}
napi_status napi_is_typedarray(napi_env env, napi_value v, bool* out) {
  *out = v->kind == 1;
  return napi_ok;
}
napi_status napi_get_typedarray_info(napi_env env, napi_value v, napi_typedarray_type* type, size_t* length, void** data, napi_value* ab, size_t* off) {
  if (v->kind != 1) return napi_invalid_arg;
  if (type) *type = (napi_typedarray_type)v->type;
  if (length) *length = v->len;
  if (data) *data = (void*)(uintptr_t)v->ptr;
  return napi_ok;
}
napi_status napi_get_value_double(napi_env env, napi_value v, double* out) {
  if (v->kind != 2) return napi_number_expected;
  *out = v->num;
  return napi_ok;
}
napi_status napi_create_double(napi_env env, double d, napi_value* out) {
  result.kind = 2;
  result.num = d;
  *out = &result;
  return napi_ok;
}
napi_status napi_throw_type_error(napi_env env, const char* code, const char* msg) {
  error_msg = msg;
  return napi_ok;
}
napi_status napi_get_cb_info(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, napi_value* this_arg, void** data) {
  size_t want = *argc;
  for (size_t i = 0; i < want; i++) argv[i] = i < info->argc ? &info->argv[i] : &slots[MAX_ARGS - 1];
  *argc = info->argc;
  return napi_ok;
}
napi_status napi_define_properties(napi_env env, napi_value obj, size_t n, const napi_property_descriptor* props) {
  for (size_t i = 0; i < n && nfns < MAX_FNS; i++) fns[nfns++] = props[i];
  return napi_ok;
}

/* ---------- the kernels, unchanged ---------- */

#include "../../src/kernels/native/codec-kernels.c"

/* ---------- exports ---------- */

EXPORT("at1w_init") int32_t at1w_init(void) {
  if (!nfns) at1w_module_init(NULL, NULL);
  return (int32_t)nfns;
}
EXPORT("at1w_fn_name") const char* at1w_fn_name(int32_t i) { return i >= 0 && (size_t)i < nfns ? fns[i].utf8name : NULL; }
EXPORT("at1w_slots") at1w_slot* at1w_slots(void) { return slots; }
EXPORT("at1w_alloc") void* at1w_alloc(uint32_t n) { return bump(n); }
EXPORT("at1w_heap_top") uint32_t at1w_heap_top(void) { return (uint32_t)heap_top; }
EXPORT("at1w_reset") void at1w_reset(uint32_t top) { heap_top = top; }
EXPORT("at1w_error") const char* at1w_error(void) { return error_msg; }
EXPORT("at1w_result") double at1w_result(void) { return result.num; }

/* Run kernel i on the first argc slots: 0 (returned nothing), 1 (a number: at1w_result), -1 (threw: at1w_error). */
EXPORT("at1w_call") int32_t at1w_call(int32_t i, int32_t argc) {
  if (i < 0 || (size_t)i >= nfns || argc < 0 || argc >= MAX_ARGS) return -1;
  slots[MAX_ARGS - 1].kind = 0;
  struct at1w_call call = {(size_t)argc, slots};
  error_msg = NULL;
  uintptr_t top = heap_top; /* the kernels free what they malloc before returning */
  napi_value r = fns[i].method(NULL, &call);
  heap_top = top;
  if (error_msg) return -1;
  return r ? 1 : 0;
}
