/* A tiny test harness shared by the C tests: CHECK_HR compares exact HRESULTs, CHECK a
 * condition; the summary line is "<name>: N passed, N failed" and the exit code is non-zero
 * when anything failed. Wide-string helpers convert between char16_t and ASCII. */
#ifndef PEERGROUP_TEST_HARNESS_H
#define PEERGROUP_TEST_HARNESS_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "p2p.h"

static int g_passed, g_failed;

#define CHECK(cond)                                                                  \
  do {                                                                               \
    if (cond) {                                                                      \
      g_passed++;                                                                    \
    } else {                                                                         \
      g_failed++;                                                                    \
      fprintf(stderr, "%s:%d: CHECK failed: %s\n", __FILE__, __LINE__, #cond);      \
    }                                                                                \
  } while (0)

#define CHECK_HR(expr, expected)                                                     \
  do {                                                                               \
    HRESULT hr_ = (expr);                                                            \
    HRESULT want_ = (HRESULT)(expected);                                             \
    if (hr_ == want_) {                                                              \
      g_passed++;                                                                    \
    } else {                                                                         \
      g_failed++;                                                                    \
      fprintf(stderr, "%s:%d: %s returned 0x%08X, expected 0x%08X (%s)\n", __FILE__, \
              __LINE__, #expr, (unsigned)hr_, (unsigned)want_, #expected);           \
    }                                                                                \
  } while (0)

static inline int summary(const char *name) {
  printf("%s: %d passed, %d failed\n", name, g_passed, g_failed);
  return g_failed == 0 ? 0 : 1;
}

/* ASCII copy of a wide string (non-ASCII becomes '?'); free with free(). */
static inline char *narrow(const WCHAR *w) {
  size_t n = 0;
  while (w[n]) n++;
  char *s = malloc(n + 1);
  for (size_t i = 0; i < n; i++) s[i] = w[i] < 128 ? (char)w[i] : '?';
  s[n] = 0;
  return s;
}

/* Wide copy of an ASCII string; free with free(). */
static inline WCHAR *widen(const char *s) {
  size_t n = strlen(s);
  WCHAR *w = malloc((n + 1) * sizeof(WCHAR));
  for (size_t i = 0; i <= n; i++) w[i] = (WCHAR)(unsigned char)s[i];
  return w;
}

static inline int weq(const WCHAR *w, const char *s) {
  if (!w) return 0;
  char *n = narrow(w);
  int eq = strcmp(n, s) == 0;
  free(n);
  return eq;
}

#endif
