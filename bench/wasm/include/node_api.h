/*
 * A stand-in for Node-API, just large enough to compile at1's codec kernels
 * (src/kernels/native/codec-kernels.c, unchanged) for wasm32. A napi_value is
 * an argument slot that the JS side fills in the module's memory: a typed
 * array (its element type, address and length), a number, or null. The
 * slots and the call dispatch live in ../codec-kernels-wasm.c.
 * Measurement only (bench/codec-kernels-bench.ts); not part of the product.
 */
#ifndef AT1_WASM_NODE_API_H
#define AT1_WASM_NODE_API_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { napi_ok = 0, napi_invalid_arg = 1, napi_number_expected = 6 } napi_status;
typedef enum { napi_undefined, napi_null, napi_boolean, napi_number, napi_string, napi_symbol, napi_object, napi_function, napi_external, napi_bigint } napi_valuetype;
typedef enum {
  napi_int8_array, napi_uint8_array, napi_uint8_clamped_array, napi_int16_array, napi_uint16_array,
  napi_int32_array, napi_uint32_array, napi_float32_array, napi_float64_array, napi_bigint64_array, napi_biguint64_array
} napi_typedarray_type;
typedef enum { napi_default = 0, napi_writable = 1, napi_enumerable = 2, napi_configurable = 4 } napi_property_attributes;

/* One argument as the JS side writes it (24 bytes; layout mirrored in codec-kernels-wasm.ts). */
typedef struct at1w_slot {
  int32_t kind; /* 0 null, 1 typed array, 2 number */
  int32_t type; /* napi_typedarray_type */
  uint32_t ptr;
  uint32_t len; /* elements */
  double num;
} at1w_slot;

typedef struct at1w_env* napi_env;
typedef struct at1w_slot* napi_value;
typedef struct at1w_call* napi_callback_info;
typedef napi_value (*napi_callback)(napi_env env, napi_callback_info info);
typedef struct {
  const char* utf8name;
  napi_value name;
  napi_callback method;
  napi_callback getter;
  napi_callback setter;
  napi_value value;
  napi_property_attributes attributes;
  void* data;
} napi_property_descriptor;

napi_status napi_typeof(napi_env env, napi_value v, napi_valuetype* out);
napi_status napi_is_typedarray(napi_env env, napi_value v, bool* out);
napi_status napi_get_typedarray_info(napi_env env, napi_value v, napi_typedarray_type* type, size_t* length, void** data, napi_value* ab, size_t* off);
napi_status napi_get_value_double(napi_env env, napi_value v, double* out);
napi_status napi_create_double(napi_env env, double d, napi_value* out);
napi_status napi_throw_type_error(napi_env env, const char* code, const char* msg);
napi_status napi_get_cb_info(napi_env env, napi_callback_info info, size_t* argc, napi_value* argv, napi_value* this_arg, void** data);
napi_status napi_define_properties(napi_env env, napi_value obj, size_t n, const napi_property_descriptor* props);

/* The module's init function becomes a plain function the wasm entry calls once. */
#define NAPI_MODULE_INIT() napi_value at1w_module_init(napi_env env, napi_value exports)
napi_value at1w_module_init(napi_env env, napi_value exports);
#endif
