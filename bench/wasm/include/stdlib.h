/* Freestanding wasm32 build of the codec kernels: malloc/free over a bump arena (../codec-kernels-wasm.c). */
#ifndef AT1_WASM_STDLIB_H
#define AT1_WASM_STDLIB_H
#include <stddef.h>
void* malloc(size_t n);
void free(void* p);
#endif
