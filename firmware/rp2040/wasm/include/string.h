/* The three <string.h> functions the core uses, for a build without libc: with -mbulk-memory
 * clang compiles calls to them as memory.fill / memory.copy instructions, so nothing links
 * against an implementation (the link fails if one is ever needed). */
#ifndef SA_WASM_STRING_H
#define SA_WASM_STRING_H

#include <stddef.h>

void *memset(void *dest, int c, size_t n);
void *memcpy(void *restrict dest, const void *restrict src, size_t n);
void *memmove(void *dest, const void *src, size_t n);

#endif
