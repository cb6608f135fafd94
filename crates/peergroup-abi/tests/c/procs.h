/* Helpers for C tests that run members in several processes: status polling with an upper
 * bound, and length-prefixed messages on pipes with a timeout. */
#ifndef PEERGROUP_TEST_PROCS_H
#define PEERGROUP_TEST_PROCS_H

#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
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

/* An eventfd (or any descriptor) as the HANDLE PeerGroupRegisterEvent takes. */
static inline HANDLE as_handle(int fd) { return (HANDLE)(intptr_t)fd; }

/* 1 when `fd` is readable within `ms` milliseconds. */
static inline int readable(int fd, int ms) {
  struct pollfd p = {fd, POLLIN, 0};
  int r;
  do {
    r = poll(&p, 1, ms);
  } while (r < 0 && errno == EINTR);
  return r > 0 && (p.revents & POLLIN);
}

/* The port of the first <ADDRESS>ip:port</ADDRESS> of an invitation, or 0. */
static inline int invitation_port(const WCHAR *invitation) {
  char *s = narrow(invitation);
  int port = 0;
  char *a = strstr(s, "<ADDRESS>");
  char *end = a ? strstr(a, "</ADDRESS>") : NULL;
  if (end) {
    *end = 0;
    char *colon = strrchr(a, ':');
    if (colon) port = atoi(colon + 1);
  }
  free(s);
  return port;
}

/* A PEER_ADDRESS for 127.0.0.1:port (v4-mapped, as Windows' IPv6-only PEER_ADDRESS needs). */
static inline PEER_ADDRESS loopback_address(int port) {
  PEER_ADDRESS addr;
  memset(&addr, 0, sizeof addr);
  addr.dwSize = sizeof(PEER_ADDRESS);
  addr.sin6.sin6_family = AF_INET6;
  addr.sin6.sin6_port = htons((uint16_t)port);
  addr.sin6.sin6_addr.s6_addr[10] = 0xff;
  addr.sin6.sin6_addr.s6_addr[11] = 0xff;
  addr.sin6.sin6_addr.s6_addr[12] = 127;
  addr.sin6.sin6_addr.s6_addr[15] = 1;
  return addr;
}

/* A forked child process and the pipe ends that talk to it. */
typedef struct {
  pid_t pid;
  int in;  /* reads what the child sends */
  int out; /* writes to the child */
} child_t;

/* Forks `child` with PEERGROUP_HOME $PEERGROUP_HOME/`home_name` (created; the child starts the
 * library after the fork) and PEERGROUP_LISTEN on loopback, joined to this process by two
 * pipes. The child exits with what `child` returns (sanitizers report through its exit);
 * it dies with this process. `pid` is -1 when the fork could not be made. */
static inline child_t start_child(int (*child)(int in, int out, const char *home),
                                  const char *home_name) {
  child_t c = {-1, -1, -1};
  const char *base = getenv("PEERGROUP_HOME");
  char home[4096];
  setenv("PEERGROUP_LISTEN", "127.0.0.1:0", 1);
  if (!base) {
    fprintf(stderr, "PEERGROUP_HOME is not set\n");
    return c;
  }
  snprintf(home, sizeof home, "%s/%s", base, home_name);
  mkdir(home, 0700);
  int to_child[2], to_parent[2];
  if (pipe(to_child) != 0 || pipe(to_parent) != 0) {
    perror("pipe");
    return c;
  }
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) {
    perror("fork");
    return c;
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive a parent killed by the timeout */
    close(to_child[1]);
    close(to_parent[0]);
    int rc = child(to_child[0], to_parent[1], home);
    close(to_child[0]);
    close(to_parent[1]);
    exit(rc);
  }
  close(to_child[0]);
  close(to_parent[1]);
  c.pid = pid;
  c.in = to_parent[0];
  c.out = to_child[1];
  return c;
}

/* Runs `parent` in this process and `child` in a forked one (start_child, home "joiner").
 * The child's last message must be its counts, "passed failed"; they are added to ours, and
 * its exit status must be 0, or 1 when it counted failures (a crash or a sanitizer report is
 * one more failure). Returns summary(name). */
static inline int run_pair(const char *name, int (*child)(int in, int out, const char *home),
                           void (*parent)(int in, int out)) {
  child_t c = start_child(child, "joiner");
  if (c.pid < 0) return 2;
  parent(c.in, c.out);
  char *result = recv_msg(c.in);
  int child_passed = 0, child_failed = 0;
  if (result && sscanf(result, "%d %d", &child_passed, &child_failed) == 2) {
    g_passed += child_passed;
    g_failed += child_failed;
  } else {
    fprintf(stderr, "%s: no result from the child\n", name);
    g_failed++;
  }
  free(result);
  close(c.out);
  close(c.in);
  int wstatus = 0;
  int expected = child_failed > 0 ? 1 : 0;
  if (waitpid(c.pid, &wstatus, 0) != c.pid || !WIFEXITED(wstatus) ||
      WEXITSTATUS(wstatus) != expected) {
    fprintf(stderr, "%s: the child ended badly (status 0x%x)\n", name, wstatus);
    g_failed++;
  } else {
    g_passed++;
  }
  return summary(name);
}

#endif
