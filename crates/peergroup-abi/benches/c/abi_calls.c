/* `cargo xtask bench direct` (abi part): the per-call cost of the C ABI, built with -O2
 * against the release static library. Prints figures; asserts none (a failing call aborts
 * the run, since its figure would mean nothing).
 *
 * - PeerGroupGetStatus on a connected group (handle lookup, status read, out-pointer write);
 * - PeerGroupGetEventData on a registration with nothing queued (PEER_S_NO_EVENT_DATA). */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>
#include "p2p.h"

static double now_ns(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec * 1e9 + (double)ts.tv_nsec;
}

#define MUST(expr, want)                                                          \
  do {                                                                            \
    HRESULT hr_ = (expr);                                                         \
    if (hr_ != (want)) {                                                          \
      fprintf(stderr, "%s returned 0x%08X\n", #expr, (unsigned)hr_);              \
      exit(1);                                                                    \
    }                                                                             \
  } while (0)

int main(void) {
  long n = 2000000;
  const char *env = getenv("BENCH_ABI_CALLS");
  if (env) n = atol(env);
  PEER_VERSION_DATA v;
  PWSTR me = NULL;
  HGROUP g = NULL;
  HPEEREVENT h = NULL;
  setenv("PEERGROUP_LISTEN", "127.0.0.1:0", 1);
  MUST(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  MUST(PeerIdentityCreate(u"bench", u"Bench", 0, &me), S_OK);
  PEER_GROUP_PROPERTIES p;
  memset(&p, 0, sizeof p);
  p.dwSize = sizeof p;
  p.pwzClassifier = u"bench";
  p.pwzCreatorPeerName = me;
  p.pwzFriendlyName = u"Bench";
  p.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION;
  MUST(PeerGroupCreate(&p, &g), S_OK);
  MUST(PeerGroupConnect(g), S_OK);
  DWORD status = 0;
  for (int i = 0; i < 200 && !(status & PEER_GROUP_STATUS_LISTENING); i++) {
    MUST(PeerGroupGetStatus(g, &status), S_OK);
    usleep(10000);
  }
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  PEER_GROUP_EVENT_REGISTRATION reg = {PEER_GROUP_EVENT_RECORD_CHANGED, NULL};
  MUST(PeerGroupRegisterEvent(g, (HANDLE)(intptr_t)efd, 1, &reg, &h), S_OK);

  /* Warm up, then measure. */
  for (long i = 0; i < n / 10; i++) MUST(PeerGroupGetStatus(g, &status), S_OK);
  double t0 = now_ns();
  for (long i = 0; i < n; i++) MUST(PeerGroupGetStatus(g, &status), S_OK);
  double status_ns = (now_ns() - t0) / (double)n;

  PEER_GROUP_EVENT_DATA *d = NULL;
  for (long i = 0; i < n / 10; i++) MUST(PeerGroupGetEventData(h, &d), PEER_S_NO_EVENT_DATA);
  t0 = now_ns();
  for (long i = 0; i < n; i++) MUST(PeerGroupGetEventData(h, &d), PEER_S_NO_EVENT_DATA);
  double event_ns = (now_ns() - t0) / (double)n;

  printf("C ABI per call (%ld calls each, -O2, release library):\n", n);
  printf("PeerGroupGetStatus      %8.1f ns (target < 200 ns)\n", status_ns);
  printf("PeerGroupGetEventData   %8.1f ns (empty queue)\n", event_ns);
  MUST(PeerGroupUnregisterEvent(h), S_OK);
  MUST(PeerGroupClose(g), S_OK);
  MUST(PeerGroupShutdown(), S_OK);
  PeerFreeData(me);
  close(efd);
  return 0;
}
