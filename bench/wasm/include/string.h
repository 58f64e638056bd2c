/* Freestanding wasm32 build of the codec kernels: the few string.h calls they use (defined in ../codec-kernels-wasm.c). */
#ifndef AT1_WASM_STRING_H
#define AT1_WASM_STRING_H
#include <stddef.h>
void* memcpy(void* restrict d, const void* restrict s, size_t n);
void* memmove(void* d, const void* s, size_t n);
void* memset(void* d, int c, size_t n);
#endif
