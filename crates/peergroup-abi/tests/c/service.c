/* Groups through peergroupd, the per-user service, seen from C: issue #6's scenario with real
 * processes, under AddressSanitizer, UBSan and LeakSanitizer.
 *
 * The parent starts its own peergroupd ($PEERGROUP_DAEMON) on a socket under its
 * PEERGROUP_HOME, serving a "service home". A remote member runs in its own process with the
 * library in-process (PEERGROUP_SERVICE=off, its own home): it creates the group, listens and
 * invites the service's identity. Client processes A, B and C use the service only
 * (PEERGROUP_SERVICE=required, PEERGROUP_SERVICE_SOCKET, PEERGROUP_HOME=the service home):
 *
 * - A creates the service's identity (a file in the service home), joins through the service
 *   and connects to the remote by address; B opens the same group and connects: the remote
 *   sees exactly one neighbour connection, from the service's identity.
 * - A closes its handle: B's group stays up and the remote keeps its connection.
 * - B is killed with SIGKILL: its handle was the last, so the service closes the group and
 *   the remote gets a NEIGHBOR_CONNECTION PEER_DISCONNECTED event within 2 s of the kill.
 * - C opens the group and PeerGroupConnect: the service reconnects (to the invitation's
 *   address); the remote sees one neighbour connection again.
 * - Every process but B exits through exit() after PeerGroupShutdown (LeakSanitizer checks
 *   it) and reports its counts; SIGTERM stops the daemon, which exits 0 and removes its socket.
 *
 * Each process sets its own environment before PeerGroupStartup, so the program behaves the
 * same whatever service variables it inherits. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

#include "procs.h"

/* The bound for the remote to observe the group closed after the kill. */
#define CLOSED_BOUND_MS 2000
/* Upper bound for an expected event: reaching it is a failure, not a measurement. */
#define EVENT_WAIT_MS 20000
/* How long the remote watches for a disconnect that must not come. */
#define QUIET_MS 700

/* Set by main before any fork: what the client processes need. */
static char g_socket[4096];

static long long now_ms(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (long long)ts.tv_sec * 1000LL + ts.tv_nsec / 1000000L;
}

/* A forked child counts its own checks only (the parent's so far are the parent's). */
static void own_counts(void) { g_passed = g_failed = 0; }

static void send_counts(int out) {
  char result[64];
  snprintf(result, sizeof result, "%d %d", g_passed, g_failed);
  send_msg(out, result);
}

/* Receives a message and checks it is `want`; 1 when it was. */
static int expect(int in, const char *want, const char *who) {
  char *m = recv_msg(in);
  int ok = m && strcmp(m, want) == 0;
  if (!ok) fprintf(stderr, "%s: expected \"%s\", got \"%s\"\n", who, want, m ? m : "(nothing)");
  CHECK(ok);
  free(m);
  return ok;
}

static int has_connections(DWORD s) { return (s & PEER_GROUP_STATUS_HAS_CONNECTIONS) != 0; }

/* ====================================================================================== */
/* The remote member: in-process library, creator of the group; watches its neighbours.   */
/* ====================================================================================== */

static int g_up, g_down; /* NEIGHBOR_CONNECTION events seen: connected, disconnected */

/* Reads the queued events of `h`; returns 1 once a `want` connection event was read (and
 * stops there), 0 when the queue is empty. */
static int drain(HPEEREVENT h, PEER_CONNECTION_STATUS want) {
  for (;;) {
    PEER_GROUP_EVENT_DATA *d = NULL;
    HRESULT hr = PeerGroupGetEventData(h, &d);
    if (hr == PEER_S_NO_EVENT_DATA) return 0;
    CHECK_HR(hr, S_OK);
    if (hr != S_OK || d == NULL) return 0;
    int hit = 0;
    if (d->eventType == PEER_GROUP_EVENT_NEIGHBOR_CONNECTION) {
      PEER_CONNECTION_STATUS st = d->connectionChangeData.status;
      if (st == PEER_CONNECTED) g_up++;
      if (st == PEER_DISCONNECTED) g_down++;
      hit = st == want;
    } else {
      fprintf(stderr, "remote: unexpected event type %d\n", (int)d->eventType);
      CHECK(0);
    }
    PeerFreeData(d);
    if (hit) return 1;
  }
}

/* Waits until a `want` connection event, or the monotonic deadline; returns the time it
 * was read (now_ms), or -1 when none came. */
static long long wait_connection_event(HPEEREVENT h, int efd, PEER_CONNECTION_STATUS want,
                                       long long deadline) {
  for (;;) {
    if (drain(h, want)) return now_ms();
    long long left = deadline - now_ms();
    if (left <= 0) return -1;
    if (readable(efd, (int)left)) {
      uint64_t v;
      if (read(efd, &v, sizeof v) < 0 && errno != EAGAIN) return -1;
    }
  }
}

/* The neighbour connections now; `peer` (if not NULL) gets the first one's peer id. */
static ULONG neighbours(HGROUP g, char **peer) {
  HPEERENUM e = NULL;
  ULONG n = 0xFFFF;
  CHECK_HR(PeerGroupEnumConnections(g, PEER_CONNECTION_NEIGHBOR, &e), S_OK);
  CHECK_HR(PeerGetItemCount(e, &n), S_OK);
  if (peer && n > 0) {
    ULONG one = 1;
    PEER_CONNECTION_INFO **items = NULL;
    CHECK_HR(PeerGetNextItem(e, &one, (PVOID **)&items), S_OK);
    if (one == 1 && items && items[0]->pwzPeerId) *peer = narrow(items[0]->pwzPeerId);
    PeerFreeData(items);
  }
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return n;
}

/* Waits (bounded) until the group has `n` neighbour connections; returns the last count
 * (0xFFFF when the enumeration failed). Polls without counting checks, so the counts do not
 * depend on timing. */
static ULONG wait_neighbours(HGROUP g, ULONG n) {
  ULONG seen = 0xFFFF;
  for (int waited = 0; waited <= WAIT_MS; waited += 50) {
    HPEERENUM e = NULL;
    seen = 0xFFFF;
    if (PeerGroupEnumConnections(g, PEER_CONNECTION_NEIGHBOR, &e) == S_OK) {
      if (PeerGetItemCount(e, &seen) != S_OK) seen = 0xFFFF;
      PeerEndEnumeration(e);
    }
    if (seen == n) break;
    sleep_ms(50);
  }
  return seen;
}

/* Checks that the one neighbour is the service's identity `svc`. */
static void check_neighbour_is(HGROUP g, const char *svc) {
  char *peer = NULL;
  CHECK(neighbours(g, &peer) == 1);
  CHECK(peer && svc && strcmp(peer, svc) == 0);
  free(peer);
}

static PEER_GROUP_PROPERTIES club_properties(PCWSTR creator) {
  PEER_GROUP_PROPERTIES p;
  memset(&p, 0, sizeof p);
  p.dwSize = sizeof p;
  p.pwzClassifier = u"club";
  p.pwzCreatorPeerName = (PWSTR)creator;
  p.pwzFriendlyName = u"The Club";
  p.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION;
  return p;
}

static int remote(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR me = NULL, invitation = NULL;
  HGROUP g = NULL;
  HPEEREVENT h = NULL;
  char *svc = NULL, *xml_a = NULL, *m = NULL;
  own_counts();
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(efd > 0);

  setenv("PEERGROUP_HOME", home, 1);
  setenv("PEERGROUP_SERVICE", "off", 1);
  unsetenv("PEERGROUP_SERVICE_SOCKET");
  setenv("PEERGROUP_LISTEN", "127.0.0.1:0", 1);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"remote", u"Remote", 0, &me), S_OK);
  PEER_GROUP_PROPERTIES props = club_properties(me);
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);
  PEER_GROUP_EVENT_REGISTRATION reg = {PEER_GROUP_EVENT_NEIGHBOR_CONNECTION, NULL};
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 1, &reg, &h), S_OK);
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(is_listening(wait_status(g, is_listening)));
  {
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupGetProperties(g, &p), S_OK);
    if (p && p->pwzGroupPeerName) {
      send_wide(out, p->pwzGroupPeerName);
    } else {
      send_msg(out, "none");
    }
    PeerFreeData(p);
  }

  /* Invite the service's identity. */
  svc = recv_msg(in);
  xml_a = recv_msg(in);
  CHECK(svc && xml_a);
  if (!svc || !xml_a) goto done;
  {
    WCHAR *xml = widen(xml_a);
    CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 0, NULL, &invitation), S_OK);
    free(xml);
  }
  if (invitation) {
    send_wide(out, invitation);
  } else {
    send_msg(out, "none");
  }

  /* A and B are connected: one neighbour, the service's identity, one CONNECTED event. */
  if (!expect(in, "both-open", "remote")) goto done;
  CHECK(wait_neighbours(g, 1) == 1);
  sleep_ms(QUIET_MS); /* a second connection, if there were one, has time to come */
  drain(h, 0);
  CHECK(g_up == 1 && g_down == 0);
  if (g_up != 1 || g_down != 0) fprintf(stderr, "remote: %d up, %d down\n", g_up, g_down);
  check_neighbour_is(g, svc);
  send_msg(out, "one");

  /* A closed: nothing changes here. */
  if (!expect(in, "a-closed", "remote")) goto done;
  CHECK(wait_connection_event(h, efd, PEER_DISCONNECTED, now_ms() + QUIET_MS) < 0);
  CHECK(g_down == 0);
  check_neighbour_is(g, svc);
  {
    DWORD status = 0;
    CHECK_HR(PeerGroupGetStatus(g, &status), S_OK);
    CHECK(status == BOTH);
  }
  send_msg(out, "still");

  /* B killed at `killed_at` (CLOCK_MONOTONIC, shared by the processes): the group closes. */
  m = recv_msg(in);
  long long killed_at = 0;
  CHECK(m && sscanf(m, "killed %lld", &killed_at) == 1);
  free(m);
  m = NULL;
  if (killed_at == 0) goto done;
  {
    long long seen = wait_connection_event(h, efd, PEER_DISCONNECTED, killed_at + EVENT_WAIT_MS);
    CHECK(seen >= 0);
    long long elapsed = seen >= 0 ? seen - killed_at : -1;
    CHECK(elapsed >= 0 && elapsed < CLOSED_BOUND_MS);
    if (elapsed < 0 || elapsed >= CLOSED_BOUND_MS)
      fprintf(stderr, "remote: the disconnect came %lld ms after the kill\n", elapsed);
    CHECK(g_down == 1);
    /* The neighbour list and the status follow the event (not always by the time it is
     * read: PeerGroupEnumConnections may still list the connection for a few ms). */
    long long lag_from = now_ms();
    CHECK(wait_neighbours(g, 0) == 0);
    CHECK(wait_status(g, no_connections) == PEER_GROUP_STATUS_LISTENING);
    long long lag = now_ms() - lag_from;
    if (lag > 0) fprintf(stderr, "remote: the connection was still listed %lld ms after the event\n", lag);
    char msg[64];
    snprintf(msg, sizeof msg, "closed %lld", elapsed);
    send_msg(out, msg);
  }

  /* C opened and connected: one neighbour again. */
  if (!expect(in, "c-open", "remote")) goto done;
  CHECK(wait_connection_event(h, efd, PEER_CONNECTED, now_ms() + EVENT_WAIT_MS) >= 0);
  CHECK(wait_neighbours(g, 1) == 1);
  check_neighbour_is(g, svc);
  CHECK(g_up == 2 && g_down == 1);
  {
    DWORD status = 0;
    CHECK(wait_status(g, is_both) == BOTH);
    CHECK_HR(PeerGroupGetStatus(g, &status), S_OK);
    CHECK(status == BOTH);
  }
  send_msg(out, "reconnected");

  expect(in, "exit", "remote");
done:
  if (h) CHECK_HR(PeerGroupUnregisterEvent(h), S_OK);
  if (g) CHECK_HR(PeerGroupClose(g), S_OK);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  free(svc);
  free(xml_a);
  PeerFreeData(invitation);
  PeerFreeData(me);
  close(efd);
  send_counts(out);
  return summary("service-remote");
}

/* ====================================================================================== */
/* The clients: the library through the service, for the service home.                    */
/* ====================================================================================== */

static void client_env(const char *home) {
  own_counts();
  setenv("PEERGROUP_HOME", home, 1);
  setenv("PEERGROUP_SERVICE", "required", 1);
  setenv("PEERGROUP_SERVICE_SOCKET", g_socket, 1);
  setenv("PEERGROUP_LISTEN", "127.0.0.1:0", 1);
}

/* A: creates the service's identity, joins through the service, connects by address. */
static int client_a(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR svc = NULL, xml = NULL;
  HGROUP g = NULL;
  char *invitation_a = NULL;

  client_env(home);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"svc", u"Service", 0, &svc), S_OK);
  CHECK_HR(PeerIdentityGetXML(svc, &xml), S_OK);
  if (!svc || !xml) goto done;
  send_wide(out, svc);
  send_wide(out, xml);

  invitation_a = recv_msg(in);
  CHECK(invitation_a != NULL);
  if (!invitation_a) goto done;
  {
    WCHAR *invitation = widen(invitation_a);
    CHECK_HR(PeerGroupJoin(svc, invitation, NULL, &g), S_OK);
    int port = invitation_port(invitation);
    free(invitation);
    CHECK(port > 0);
    PEER_ADDRESS addr = loopback_address(port);
    if (g) CHECK_HR(PeerGroupConnectByAddress(g, 1, &addr), S_OK);
  }
  if (!g) goto done;
  CHECK(has_connections(wait_status(g, has_connections)));
  send_msg(out, "connected");

  if (expect(in, "close", "A")) {
    CHECK_HR(PeerGroupClose(g), S_OK);
    DWORD status = 0;
    CHECK_HR(PeerGroupGetStatus(g, &status), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupClose(g), PEER_E_INVALID_GROUP);
    g = NULL;
    send_msg(out, "closed");
  }
  expect(in, "exit", "A");
done:
  if (g) CHECK_HR(PeerGroupClose(g), S_OK);
  free(invitation_a);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  PeerFreeData(svc);
  PeerFreeData(xml);
  send_counts(out);
  return summary("service-client-a");
}

/* The identity and group the parent passes to B and C. */
static char g_identity[256], g_group[256];

/* B: opens the group, connects; reports its counts before it is killed. */
/* Starts the library through the service and opens the parent's group (NULL on failure). */
static HGROUP open_shared(const char *home) {
  PEER_VERSION_DATA v;
  HGROUP g = NULL;

  client_env(home);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  WCHAR *identity = widen(g_identity), *group = widen(g_group);
  CHECK_HR(PeerGroupOpen(identity, group, NULL, &g), S_OK);
  free(identity);
  free(group);
  return g;
}

static int client_b(int in, int out, const char *home) {
  HGROUP g = open_shared(home);
  if (g) {
    CHECK_HR(PeerGroupConnect(g), S_OK);
    CHECK(has_connections(wait_status(g, has_connections)));
  }
  send_msg(out, "connected");
  if (expect(in, "status", "B") && g) {
    /* A has closed its handle: this one keeps the group up. */
    DWORD status = 0;
    CHECK_HR(PeerGroupGetStatus(g, &status), S_OK);
    CHECK(has_connections(status));
  }
  send_counts(out);
  /* Now the parent kills this process; should it not, leave cleanly. */
  char *m = recv_msg(in);
  free(m);
  if (g) PeerGroupClose(g);
  PeerGroupShutdown();
  return 3;
}

/* C: opens the group after B died and connects again (to the invitation's address). */
static int client_c(int in, int out, const char *home) {
  HGROUP g = open_shared(home);
  if (g) {
    DWORD status = 0xFF;
    CHECK_HR(PeerGroupGetStatus(g, &status), S_OK);
    CHECK(status == 0); /* the group closed with B: offline until connected */
    CHECK_HR(PeerGroupConnect(g), S_OK);
    CHECK(has_connections(wait_status(g, has_connections)));
  }
  send_msg(out, "connected");
  expect(in, "exit", "C");
  if (g) CHECK_HR(PeerGroupClose(g), S_OK);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  send_counts(out);
  return summary("service-client-c");
}

/* ====================================================================================== */
/* The parent: the daemon, the children, the sequence.                                     */
/* ====================================================================================== */

/* Adds a child's last message, its counts, to ours; then waits for it: it must exit 0, or
 * 1 when it counted failures. */
static void finish(child_t *c, const char *name) {
  if (c->pid < 0) return;
  char *result = recv_msg(c->in);
  int passed = 0, failed = 0;
  if (result && sscanf(result, "%d %d", &passed, &failed) == 2) {
    g_passed += passed;
    g_failed += failed;
  } else {
    fprintf(stderr, "%s: no result\n", name);
    g_failed++;
  }
  free(result);
  close(c->out);
  close(c->in);
  int wstatus = 0;
  int expected = failed > 0 ? 1 : 0;
  if (waitpid(c->pid, &wstatus, 0) != c->pid || !WIFEXITED(wstatus) ||
      WEXITSTATUS(wstatus) != expected) {
    fprintf(stderr, "%s: ended badly (status 0x%x)\n", name, wstatus);
    g_failed++;
  } else {
    g_passed++;
  }
  c->pid = -1;
}

/* Starts `daemon` on `socket` over `home` with stdout on a pipe; returns its pid once it
 * printed "listening <socket>" (-1 if it did not within 30 s). */
static pid_t start_daemon(const char *daemon, const char *socket, const char *home) {
  int p[2];
  if (pipe(p) != 0) return -1;
  fflush(stdout);
  fflush(stderr);
  pid_t pid = fork();
  if (pid < 0) return -1;
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(p[1], STDOUT_FILENO);
    close(p[0]);
    close(p[1]);
    unsetenv("PEERGROUP_SERVICE");
    unsetenv("PEERGROUP_SERVICE_SOCKET");
    if (!getenv("RUST_LOG")) setenv("RUST_LOG", "warn", 1);
    execl(daemon, daemon, "--socket", socket, "--home", home, "--listen", "127.0.0.1:0",
          (char *)NULL);
    perror("exec peergroupd");
    _exit(127);
  }
  close(p[1]);
  char line[4200];
  size_t len = 0;
  long long deadline = now_ms() + 30000;
  while (len < sizeof line - 1 && !memchr(line, '\n', len)) {
    long long left = deadline - now_ms();
    if (left <= 0 || !readable(p[0], (int)left)) break;
    ssize_t n = read(p[0], line + len, sizeof line - 1 - len);
    if (n <= 0) break;
    len += (size_t)n;
  }
  close(p[0]); /* it prints nothing more */
  line[len] = 0;
  char want[4200];
  snprintf(want, sizeof want, "listening %s\n", socket);
  int ok = strcmp(line, want) == 0;
  CHECK(ok);
  if (!ok) {
    fprintf(stderr, "peergroupd said \"%s\"\n", line);
    kill(pid, SIGKILL);
    waitpid(pid, NULL, 0);
    return -1;
  }
  return pid;
}

static int remove_entry(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  (void)flag;
  (void)ftw;
  return remove(path);
}

static void scenario(child_t *r, child_t *a) {
  /* The remote's group; the service's identity, invited. */
  char *group = recv_msg(r->in);
  char *svc = recv_msg(a->in);
  char *xml = recv_msg(a->in);
  CHECK(group && svc && xml);
  if (!group || !svc || !xml || strlen(group) >= sizeof g_group ||
      strlen(svc) >= sizeof g_identity) {
    free(group);
    free(svc);
    free(xml);
    return;
  }
  snprintf(g_group, sizeof g_group, "%s", group);
  snprintf(g_identity, sizeof g_identity, "%s", svc);
  send_msg(r->out, svc);
  send_msg(r->out, xml);
  free(group);
  free(svc);
  free(xml);
  char *invitation = recv_msg(r->in);
  CHECK(invitation != NULL);
  if (!invitation) return;
  send_msg(a->out, invitation);
  free(invitation);
  if (!expect(a->in, "connected", "parent (A)")) return;

  /* B opens the same group in another process and connects. */
  child_t b = start_child(client_b, "svc");
  CHECK(b.pid > 0);
  if (b.pid < 0) return;
  int b_ok = expect(b.in, "connected", "parent (B)");
  if (b_ok) {
    send_msg(r->out, "both-open");
    b_ok = expect(r->in, "one", "parent (remote)");
  }

  /* A closes; B and the remote still have the connection. */
  if (b_ok) {
    send_msg(a->out, "close");
    b_ok = expect(a->in, "closed", "parent (A)");
  }
  if (b_ok) {
    send_msg(b.out, "status");
    char *counts = recv_msg(b.in);
    int passed = 0, failed = 0;
    CHECK(counts && sscanf(counts, "%d %d", &passed, &failed) == 2);
    g_passed += passed;
    g_failed += failed;
    free(counts);
    send_msg(r->out, "a-closed");
    b_ok = expect(r->in, "still", "parent (remote)");
  }

  /* B dies. */
  long long killed_at = now_ms();
  CHECK(kill(b.pid, SIGKILL) == 0);
  {
    int wstatus = 0;
    CHECK(waitpid(b.pid, &wstatus, 0) == b.pid && WIFSIGNALED(wstatus) &&
          WTERMSIG(wstatus) == SIGKILL);
    close(b.in);
    close(b.out);
  }
  if (!b_ok) return;
  {
    char msg[64];
    snprintf(msg, sizeof msg, "killed %lld", killed_at);
    send_msg(r->out, msg);
    char *m = recv_msg(r->in);
    long long elapsed = -1;
    CHECK(m && sscanf(m, "closed %lld", &elapsed) == 1);
    free(m);
    if (elapsed < 0) return;
    printf("service: the remote saw the group closed %lld ms after SIGKILL\n", elapsed);
  }

  /* C opens the group again and reconnects. */
  child_t c = start_child(client_c, "svc");
  CHECK(c.pid > 0);
  if (c.pid < 0) return;
  if (expect(c.in, "connected", "parent (C)")) {
    send_msg(r->out, "c-open");
    expect(r->in, "reconnected", "parent (remote)");
  }
  send_msg(c.out, "exit");
  finish(&c, "client C");
}

int main(void) {
  const char *base = getenv("PEERGROUP_HOME");
  const char *daemon = getenv("PEERGROUP_DAEMON");
  if (!base || !daemon) {
    fprintf(stderr, "service: needs PEERGROUP_HOME and PEERGROUP_DAEMON (peergroupd)\n");
    return 2;
  }
  /* Everything under one directory of our own: the homes (start_child's children live
   * under $PEERGROUP_HOME, so it points there) and the daemon's socket. */
  char root[1024];
  snprintf(root, sizeof root, "%s/service-XXXXXX", base);
  if (!mkdtemp(root)) {
    perror("mkdtemp");
    return 2;
  }
  setenv("PEERGROUP_HOME", root, 1);
  char svc_home[1100], run_dir[1100];
  snprintf(svc_home, sizeof svc_home, "%s/svc", root);
  snprintf(run_dir, sizeof run_dir, "%s/run", root);
  snprintf(g_socket, sizeof g_socket, "%s/peergroupd.sock", run_dir);
  CHECK(mkdir(svc_home, 0700) == 0 && mkdir(run_dir, 0700) == 0);

  pid_t d = start_daemon(daemon, g_socket, svc_home);
  if (d > 0) {
    child_t r = start_child(remote, "remote");
    child_t a = start_child(client_a, "svc");
    CHECK(r.pid > 0 && a.pid > 0);
    if (r.pid > 0 && a.pid > 0) scenario(&r, &a);
    if (a.pid > 0) send_msg(a.out, "exit");
    if (r.pid > 0) send_msg(r.out, "exit");
    finish(&a, "client A");
    finish(&r, "remote");

    /* SIGTERM stops the service cleanly; it removes its socket. */
    int wstatus = 0;
    long long term_at = now_ms();
    CHECK(kill(d, SIGTERM) == 0);
    CHECK(waitpid(d, &wstatus, 0) == d);
    printf("service: peergroupd stopped %lld ms after SIGTERM\n", now_ms() - term_at);
    CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
    if (!WIFEXITED(wstatus) || WEXITSTATUS(wstatus) != 0)
      fprintf(stderr, "peergroupd ended with status 0x%x\n", wstatus);
    CHECK(access(g_socket, F_OK) != 0);
  }
  nftw(root, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
  setenv("PEERGROUP_HOME", base, 1);
  return summary("service");
}
