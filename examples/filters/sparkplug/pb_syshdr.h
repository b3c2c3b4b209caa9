/*
 * The system header nanopb includes instead of <string.h> and friends
 * (PB_SYSTEM_HEADER), so that the Sparkplug filters build freestanding,
 * without a libc: the compiler's own stdint/stddef/stdbool/limits, and the
 * memcpy and memset that sdk/c/edged.h defines.
 */
#ifndef SPARKPLUG_PB_SYSHDR_H
#define SPARKPLUG_PB_SYSHDR_H

#include <stdint.h>
#include <stddef.h>
#include <stdbool.h>
#include <limits.h>

void *memcpy(void *restrict dst, const void *restrict src, size_t n);
void *memset(void *dst, int c, size_t n);

#endif
