/* Helpers for C tests that run members in several processes: status polling with an upper
 * bound, and length-prefixed messages on pipes with a timeout. */
#ifndef PEERGROUP_TEST_PROCS_H
#define PEERGROUP_TEST_PROCS_H

#include <errno.h>
#include <poll.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

#define BOTH (PEER_GROUP_STATUS_LISTENING | PEER_GROUP_STATUS_HAS_CONNECTIONS)
#define WAIT_MS 10000
#define PIPE_TIMEOUT_MS 60000

static inline void sleep_ms(long ms) {
  struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
  while (nanosleep(&ts, &ts) == -1 && errno == EINTR) {
  }
}

/* Polls the status every 50 ms, up to WAIT_MS, until `done(status)`; returns the last one. */
static inline DWORD wait_status(HGROUP g, int (*done)(DWORD)) {
  DWORD status = 0;
  for (int waited = 0; waited <= WAIT_MS; waited += 50) {
    if (PeerGroupGetStatus(g, &status) != S_OK) return 0xFFFFFFFF;
    if (done(status)) break;
    sleep_ms(50);
  }
  return status;
}
static inline int is_listening(DWORD s) { return (s & PEER_GROUP_STATUS_LISTENING) != 0; }
static inline int is_both(DWORD s) { return (s & BOTH) == BOTH; }
static inline int no_connections(DWORD s) { return (s & PEER_GROUP_STATUS_HAS_CONNECTIONS) == 0; }

/* ---- messages on pipes: a 4-byte length, then the bytes ---- */

static inline int write_all(int fd, const void *buf, size_t len) {
  const char *p = buf;
  while (len > 0) {
    ssize_t n = write(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1;
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static inline int read_all(int fd, void *buf, size_t len) {
  char *p = buf;
  while (len > 0) {
    struct pollfd pfd = {fd, POLLIN, 0};
    int r = poll(&pfd, 1, PIPE_TIMEOUT_MS);
    if (r < 0 && errno == EINTR) continue;
    if (r <= 0) return -1; /* timeout or error */
    ssize_t n = read(fd, p, len);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return -1; /* EOF: the other side is gone */
    p += n;
    len -= (size_t)n;
  }
  return 0;
}

static inline void send_msg(int fd, const char *s) {
  uint32_t len = (uint32_t)strlen(s);
  CHECK(write_all(fd, &len, sizeof len) == 0 && write_all(fd, s, len) == 0);
}

/* A received message (free with free()), or NULL on EOF or after PIPE_TIMEOUT_MS. */
static inline char *recv_msg(int fd) {
  uint32_t len = 0;
  if (read_all(fd, &len, sizeof len) != 0 || len > (1u << 20)) return NULL;
  char *s = malloc(len + 1);
  if (read_all(fd, s, len) != 0) {
    free(s);
    return NULL;
  }
  s[len] = 0;
  return s;
}

static inline void send_wide(int fd, const WCHAR *w) {
  char *s = narrow(w);
  send_msg(fd, s);
  free(s);
}

#endif
