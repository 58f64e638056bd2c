/* Freestanding wasm32 build of the codec kernels: one thread, so pthread_once is a flag. */
#ifndef AT1_WASM_PTHREAD_H
#define AT1_WASM_PTHREAD_H
typedef int pthread_once_t;
#define PTHREAD_ONCE_INIT 0
static inline int pthread_once(pthread_once_t* once, void (*fn)(void)) {
  if (!*once) {
    *once = 1;
    fn();
  }
  return 0;
}
#endif
