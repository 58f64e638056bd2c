/* Freestanding wasm32 build of the codec kernels: malloc/calloc/free over a bump arena (../codec-kernels-wasm.c). */
#ifndef AT1_WASM_STDLIB_H
#define AT1_WASM_STDLIB_H
#include <stddef.h>
void* malloc(size_t n);
void* calloc(size_t n, size_t size);
void free(void* p);
#endif
