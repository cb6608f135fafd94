/* Group events through the C ABI, under AddressSanitizer, UBSan and LeakSanitizer, with two
 * members in two processes (as group.c: the parent creates and invites, a forked child
 * joins with its own PEERGROUP_HOME and starts the library after the fork).
 *
 * Each registration signals an eventfd; the test polls it (with a generous upper bound: a
 * missing event fails, nothing asserts on timing), reads it, and drains with
 * PeerGroupGetEventData until PEER_S_NO_EVENT_DATA, freeing every event with PeerFreeData.
 *
 * Covered: refusals (pointers, counts, event types, descriptors that are not eventfds, bad
 * groups), forged/NULL/stale/wrong-kind HPEEREVENTs (E_INVALIDARG), STATUS_CHANGED on
 * connect, NEIGHBOR_CONNECTION connected and disconnected with the same connection and node
 * ids on both sides, PROPERTY_CHANGED after SetProperties, a status-only registration that
 * gets status changes only and, once unregistered, no more signals; closing the HGROUP ends
 * its registrations (queued events stay readable, then PEER_S_NO_EVENT_DATA); shutdown with
 * a registration open; RECORD_CHANGED for a record added by the other process and locally;
 * INCOMING_DATA from the other process's PeerGroupSendData on its neighbour connection;
 * MEMBER_CHANGED (JOINED and CONNECTED for the other member, DISCONNECTED when it closes). */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"

#include "procs.h"

/* Upper bound for an expected event: reaching it is a failure, not a measurement. */
#define EVENT_WAIT_MS 30000


/* The record type both members use. */
static const GUID NOTE = {0x0badcafe, 0x1234, 0x4321, {0x80, 1, 2, 3, 4, 5, 6, 7}};

/* An hour from now as a FILETIME (100 ns ticks since 1601). */
static FILETIME in_an_hour(void) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  unsigned long long ms = (unsigned long long)ts.tv_sec * 1000ULL + 3600ULL * 1000ULL;
  unsigned long long ticks = (ms + 11644473600000ULL) * 10000ULL;
  FILETIME ft = {(DWORD)ticks, (DWORD)(ticks >> 32)};
  return ft;
}

static void guid_hex(const GUID *g, char out[33]) {
  const unsigned char *b = (const unsigned char *)g;
  for (int i = 0; i < 16; i++) snprintf(out + 2 * i, 3, "%02x", b[i]);
}


/* Resets a (non-blocking) eventfd; returns its counter (0 if it was not signalled). */
static uint64_t reset(int fd) {
  uint64_t v = 0;
  if (read(fd, &v, sizeof v) != (ssize_t)sizeof v) return 0;
  return v;
}

/* MEMBER_CHANGED events of other members, by change type (they come as presence and member
 * data replicate, in no fixed place among the other events, so they are set aside here and
 * checked at the end). `g_self` is the local member, whose own changes are events too. */
static int g_member_changes[6];
static const WCHAR *g_self;

static void note_member_change(const PEER_GROUP_EVENT_DATA *d) {
  CHECK(d->memberChangeData.dwSize == sizeof(PEER_EVENT_MEMBER_CHANGE_DATA));
  CHECK(d->memberChangeData.pwzIdentity != NULL);
  int change = (int)d->memberChangeData.changeType;
  CHECK(change >= PEER_MEMBER_CONNECTED && change <= 5);
  char *who = narrow(d->memberChangeData.pwzIdentity);
  char *self = g_self ? narrow(g_self) : NULL;
  if (change >= 1 && change <= 5 && (!self || strcmp(who, self) != 0)) g_member_changes[change]++;
  free(who);
  free(self);
}

/* The next event of `h` other than a member change (those are noted): drains first, then
 * waits on `efd` (reading it before draining again). NULL, counted as a failure, when
 * nothing comes within EVENT_WAIT_MS. */
static PEER_GROUP_EVENT_DATA *next_event(HPEEREVENT h, int efd, const char *what) {
  for (;;) {
    PEER_GROUP_EVENT_DATA *d = NULL;
    HRESULT hr = PeerGroupGetEventData(h, &d);
    if (hr == S_OK && d != NULL && d->eventType == PEER_GROUP_EVENT_MEMBER_CHANGED) {
      note_member_change(d);
      PeerFreeData(d);
      continue;
    }
    if (hr == S_OK && d != NULL) return d;
    if (hr != PEER_S_NO_EVENT_DATA || d != NULL) {
      fprintf(stderr, "%s: PeerGroupGetEventData returned 0x%08X\n", what, (unsigned)hr);
      g_failed++;
      PeerFreeData(d);
      return NULL;
    }
    if (!readable(efd, EVENT_WAIT_MS)) {
      fprintf(stderr, "%s: no event within %d ms\n", what, EVENT_WAIT_MS);
      g_failed++;
      return NULL;
    }
    reset(efd);
  }
}

/* What a sequence of events showed. */
typedef struct {
  int connections; /* NEIGHBOR_CONNECTION events with `want_status` */
  PEER_EVENT_CONNECTION_CHANGE_DATA connection;
  DWORD last_status; /* 0xFFFFFFFF: no STATUS_CHANGED seen */
  int properties;
  int others; /* events of a kind not expected */
} seen_t;

static void see(seen_t *s, const PEER_GROUP_EVENT_DATA *d, PEER_CONNECTION_STATUS want_status) {
  switch (d->eventType) {
    case PEER_GROUP_EVENT_STATUS_CHANGED:
      s->last_status = (DWORD)d->dwStatus;
      break;
    case PEER_GROUP_EVENT_NEIGHBOR_CONNECTION:
      CHECK(d->connectionChangeData.dwSize == sizeof(PEER_EVENT_CONNECTION_CHANGE_DATA));
      CHECK(d->connectionChangeData.ullNextConnectionId == 0);
      CHECK(d->connectionChangeData.hrConnectionFailedReason == 0);
      if (d->connectionChangeData.status == want_status) {
        s->connections++;
        s->connection = d->connectionChangeData;
      } else {
        s->others++;
      }
      break;
    case PEER_GROUP_EVENT_PROPERTY_CHANGED:
      s->properties++;
      break;
    default:
      fprintf(stderr, "unexpected event type %d\n", (int)d->eventType);
      s->others++;
  }
}

/* Reads events until a `want_status` connection and then status `status` were seen. */
static seen_t until_connection_and_status(HPEEREVENT h, int efd, PEER_CONNECTION_STATUS want,
                                          DWORD status, const char *what) {
  seen_t s;
  memset(&s, 0, sizeof s);
  s.last_status = 0xFFFFFFFF;
  while (!(s.connections > 0 && s.last_status == status)) {
    PEER_GROUP_EVENT_DATA *d = next_event(h, efd, what);
    if (!d) break;
    see(&s, d, want);
    PeerFreeData(d);
  }
  return s;
}


/* ====================================================================================== */
/* The child: joins, registers, connects; reports the node it sees; closes when told.     */
/* ====================================================================================== */

static int child(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR bob = NULL, xml = NULL;
  HGROUP g = NULL;
  HPEEREVENT h = NULL;
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(efd > 0);

  setenv("PEERGROUP_HOME", home, 1);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"bob", u"Bob", 0, &bob), S_OK);
  CHECK_HR(PeerIdentityGetXML(bob, &xml), S_OK);
  send_wide(out, xml);

  char *invitation_a = recv_msg(in);
  CHECK(invitation_a != NULL);
  if (!invitation_a) goto done;
  WCHAR *invitation = widen(invitation_a);
  CHECK_HR(PeerGroupJoin(bob, invitation, NULL, &g), S_OK);

  PEER_GROUP_EVENT_REGISTRATION regs[2] = {
      {PEER_GROUP_EVENT_NEIGHBOR_CONNECTION, NULL},
      {PEER_GROUP_EVENT_STATUS_CHANGED, NULL},
  };
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 2, regs, &h), S_OK);

  PEER_ADDRESS addr = loopback_address(invitation_port(invitation));
  CHECK_HR(PeerGroupConnectByAddress(g, 1, &addr), S_OK);

  seen_t up = until_connection_and_status(h, efd, PEER_CONNECTED, BOTH, "bob: connect");
  CHECK(up.connections == 1 && up.last_status == BOTH && up.others == 0);
  CHECK(up.connection.ullNodeId != 0);
  {
    char msg[96];
    snprintf(msg, sizeof msg, "connected %llu", (unsigned long long)up.connection.ullNodeId);
    send_msg(out, msg);
  }

  char *m = recv_msg(in);
  if (m && strcmp(m, "add") == 0) {
    /* Bob adds a record: it replicates to Alice, who is told by a RECORD_CHANGED event. */
    BYTE data[] = "a note from bob";
    PEER_RECORD r;
    memset(&r, 0, sizeof r);
    r.dwSize = sizeof r;
    r.type = NOTE;
    r.ftExpiration = in_an_hour();
    r.data.cbData = sizeof data;
    r.data.pbData = data;
    GUID id;
    memset(&id, 0, sizeof id);
    CHECK_HR(PeerGroupAddRecord(g, &r, &id), S_OK);
    char hex[33], msg[64];
    guid_hex(&id, hex);
    snprintf(msg, sizeof msg, "added %s", hex);
    send_msg(out, msg);
    free(m);
    m = recv_msg(in);
  }
  if (m && strcmp(m, "data") == 0) {
    /* Bob sends data on his neighbour connection: Alice hears INCOMING_DATA. */
    HPEERENUM e = NULL;
    ULONG n = 1;
    PEER_CONNECTION_INFO **conns = NULL;
    CHECK_HR(PeerGroupEnumConnections(g, PEER_CONNECTION_NEIGHBOR, &e), S_OK);
    CHECK_HR(PeerGetNextItem(e, &n, (PVOID **)&conns), S_OK);
    CHECK(n == 1 && conns != NULL);
    if (n == 1 && conns) {
      CHECK_HR(PeerGroupSendData(g, conns[0]->ullConnectionId, &NOTE, 14, "data from bob"), S_OK);
    }
    PeerFreeData(conns);
    CHECK_HR(PeerEndEnumeration(e), S_OK);
    send_msg(out, "sent");
    free(m);
    m = recv_msg(in);
  }
  CHECK(m && strcmp(m, "close") == 0);
  free(m);
  /* Closing the HGROUP ends the registration: what was queued can still be read (the group
   * going offline), then there is no more; unregistering still works. */
  CHECK_HR(PeerGroupClose(g), S_OK);
  {
    PEER_GROUP_EVENT_DATA *d = NULL;
    HRESULT hr;
    int n = 0;
    while ((hr = PeerGroupGetEventData(h, &d)) == S_OK) {
      CHECK(d != NULL && d->eventType == PEER_GROUP_EVENT_STATUS_CHANGED);
      PeerFreeData(d);
      d = NULL;
      n++;
    }
    CHECK_HR(hr, PEER_S_NO_EVENT_DATA);
    CHECK(d == NULL);
    CHECK(n <= 2);
  }
  CHECK_HR(PeerGroupUnregisterEvent(h), S_OK);
  send_msg(out, "closed");
  free(invitation);
done:
  free(invitation_a);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  PeerFreeData(bob);
  PeerFreeData(xml);
  close(efd);
  {
    char result[64];
    snprintf(result, sizeof result, "%d %d", g_passed, g_failed);
    send_msg(out, result);
  }
  return summary("events-child");
}

/* ====================================================================================== */
/* The parent: creator, with two registrations.                                            */
/* ====================================================================================== */

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

static void refusals(HGROUP g, int efd) {
  HPEEREVENT h = NULL;
  PEER_GROUP_EVENT_DATA *d = (PEER_GROUP_EVENT_DATA *)(intptr_t)1;
  PEER_GROUP_EVENT_REGISTRATION status = {PEER_GROUP_EVENT_STATUS_CHANGED, NULL};
  PEER_GROUP_EVENT_REGISTRATION bad[2] = {{PEER_GROUP_EVENT_STATUS_CHANGED, NULL}, {7, NULL}};

  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 1, &status, NULL), E_POINTER);
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 0, &status, &h), E_INVALIDARG);
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 1, NULL, &h), E_INVALIDARG);
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 2, bad, &h), E_INVALIDARG);
  bad[1].eventType = 0;
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 2, bad, &h), E_INVALIDARG);
  CHECK_HR(PeerGroupRegisterEvent(g, NULL, 1, &status, &h), E_INVALIDARG);
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(-1), 1, &status, &h), E_INVALIDARG);
  {
    int p[2];
    CHECK(pipe(p) == 0);
    CHECK_HR(PeerGroupRegisterEvent(g, as_handle(p[1]), 1, &status, &h), E_INVALIDARG);
    close(p[0]);
    CHECK_HR(PeerGroupRegisterEvent(g, as_handle(p[0]), 1, &status, &h), E_INVALIDARG); /* closed */
    close(p[1]);
  }
  CHECK_HR(PeerGroupRegisterEvent((HGROUP)(intptr_t)0x4242, as_handle(efd), 1, &status, &h),
           PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupRegisterEvent(NULL, as_handle(efd), 1, &status, &h), PEER_E_INVALID_GROUP);
  CHECK(h == NULL);

  /* Forged, NULL and wrong-kind HPEEREVENTs. */
  CHECK_HR(PeerGroupGetEventData((HPEEREVENT)(intptr_t)0x12345, &d), E_INVALIDARG);
  CHECK(d == NULL); /* the out-pointer is cleared first */
  CHECK_HR(PeerGroupGetEventData(NULL, &d), E_INVALIDARG);
  CHECK_HR(PeerGroupGetEventData((HPEEREVENT)g, &d), E_INVALIDARG);
  CHECK_HR(PeerGroupGetEventData((HPEEREVENT)(intptr_t)0x12345, NULL), E_POINTER);
  CHECK_HR(PeerGroupUnregisterEvent((HPEEREVENT)(intptr_t)0xdeadbeef0001), E_INVALIDARG);
  CHECK_HR(PeerGroupUnregisterEvent(NULL), E_INVALIDARG);
  CHECK_HR(PeerGroupUnregisterEvent((HPEEREVENT)g), E_INVALIDARG);
}

static void parent(int in, int out) {
  PEER_VERSION_DATA v;
  PWSTR alice = NULL, invitation = NULL;
  HGROUP g = NULL;
  HPEEREVENT all = NULL, statuses = NULL;
  int efd_all = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  int efd_status = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(efd_all > 0 && efd_status > 0);

  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);
  PEER_GROUP_PROPERTIES props = club_properties(alice);
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);

  refusals(g, efd_all);

  /* Two registrations, made while offline: one for most kinds, one for status changes
   * only. */
  g_self = alice;
  PEER_GROUP_EVENT_REGISTRATION regs[6] = {
      {PEER_GROUP_EVENT_STATUS_CHANGED, NULL},
      {PEER_GROUP_EVENT_NEIGHBOR_CONNECTION, NULL},
      {PEER_GROUP_EVENT_PROPERTY_CHANGED, NULL},
      {PEER_GROUP_EVENT_RECORD_CHANGED, NULL},
      {PEER_GROUP_EVENT_INCOMING_DATA, NULL},
      {PEER_GROUP_EVENT_MEMBER_CHANGED, NULL},
  };
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd_all), 6, regs, &all), S_OK);
  PEER_GROUP_EVENT_REGISTRATION status_only = {PEER_GROUP_EVENT_STATUS_CHANGED, NULL};
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd_status), 1, &status_only, &statuses), S_OK);
  CHECK(all != NULL && statuses != NULL && all != statuses);
  {
    PEER_GROUP_EVENT_DATA *d = (PEER_GROUP_EVENT_DATA *)(intptr_t)1;
    CHECK_HR(PeerGroupGetEventData(all, &d), PEER_S_NO_EVENT_DATA);
    CHECK(d == NULL);
    CHECK(!readable(efd_all, 0));
  }

  /* Connect: the creator listens; both registrations hear it. */
  CHECK_HR(PeerGroupConnect(g), S_OK);
  {
    PEER_GROUP_EVENT_DATA *d = next_event(all, efd_all, "alice: listening");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_STATUS_CHANGED &&
          d->dwStatus == PEER_GROUP_STATUS_LISTENING);
    PeerFreeData(d);
    d = next_event(statuses, efd_status, "alice: listening (status only)");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_STATUS_CHANGED &&
          d->dwStatus == PEER_GROUP_STATUS_LISTENING);
    PeerFreeData(d);
  }

  /* Bob joins and connects: a neighbour connection, then both status bits. */
  char *xml_a = recv_msg(in);
  CHECK(xml_a != NULL);
  WCHAR *xml = widen(xml_a ? xml_a : "missing");
  CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 0, NULL, &invitation), S_OK);
  if (invitation) {
    send_wide(out, invitation);
  } else {
    send_msg(out, "none");
  }
  seen_t up = until_connection_and_status(all, efd_all, PEER_CONNECTED, BOTH, "alice: bob up");
  CHECK(up.connections == 1 && up.last_status == BOTH && up.others == 0);
  CHECK(up.connection.ullNodeId != 0);
  char *m = recv_msg(in);
  unsigned long long alice_node = 0;
  CHECK(m && sscanf(m, "connected %llu", &alice_node) == 1);
  free(m);
  CHECK(alice_node != 0 && alice_node != up.connection.ullNodeId);
  {
    PEER_GROUP_EVENT_DATA *d = next_event(statuses, efd_status, "alice: both (status only)");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_STATUS_CHANGED && d->dwStatus == BOTH);
    PeerFreeData(d);
  }

  /* A property change made here: PROPERTY_CHANGED, no payload; not for the status-only one. */
  {
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupGetProperties(g, &p), S_OK);
    if (p) {
      p->pwzComment = u"changed";
      CHECK_HR(PeerGroupSetProperties(g, p), S_OK);
    }
    PeerFreeData(p);
    PEER_GROUP_EVENT_DATA *d = next_event(all, efd_all, "alice: property");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_PROPERTY_CHANGED);
    PeerFreeData(d);
    PEER_GROUP_EVENT_DATA *none = NULL;
    CHECK_HR(PeerGroupGetEventData(statuses, &none), PEER_S_NO_EVENT_DATA);
  }

  /* Records replicate: Bob adds one; Alice hears RECORD_CHANGED (added, with its id and
   * type) and reads the same record. Then Alice adds one: a local change is an event too. */
  {
    send_msg(out, "add");
    char *added = recv_msg(in);
    char want[40] = "";
    CHECK(added && sscanf(added, "added %32s", want) == 1);
    free(added);
    PEER_GROUP_EVENT_DATA *d = next_event(all, efd_all, "alice: bob's record");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_RECORD_CHANGED);
    GUID id;
    memset(&id, 0, sizeof id);
    if (d && d->eventType == PEER_GROUP_EVENT_RECORD_CHANGED) {
      char got[33];
      guid_hex(&d->recordChangeData.recordId, got);
      CHECK(strcmp(got, want) == 0);
      CHECK(d->recordChangeData.changeType == PEER_RECORD_ADDED);
      CHECK(memcmp(&d->recordChangeData.recordType, &NOTE, sizeof(GUID)) == 0);
      id = d->recordChangeData.recordId;
    }
    PeerFreeData(d);
    PEER_RECORD *rec = NULL;
    CHECK_HR(PeerGroupGetRecord(g, &id, &rec), S_OK);
    CHECK(rec && rec->data.cbData == sizeof "a note from bob" &&
          memcmp(rec->data.pbData, "a note from bob", rec->data.cbData) == 0);
    PeerFreeData(rec);

    BYTE data[] = "alice's own";
    PEER_RECORD r;
    memset(&r, 0, sizeof r);
    r.dwSize = sizeof r;
    r.type = NOTE;
    r.ftExpiration = in_an_hour();
    r.data.cbData = sizeof data;
    r.data.pbData = data;
    GUID mine;
    CHECK_HR(PeerGroupAddRecord(g, &r, &mine), S_OK);
    d = next_event(all, efd_all, "alice: her own record");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_RECORD_CHANGED &&
          d->recordChangeData.changeType == PEER_RECORD_ADDED &&
          memcmp(&d->recordChangeData.recordId, &mine, sizeof(GUID)) == 0);
    PeerFreeData(d);
    PEER_GROUP_EVENT_DATA *none = NULL;
    CHECK_HR(PeerGroupGetEventData(statuses, &none), PEER_S_NO_EVENT_DATA);
  }

  /* Data from Bob on the neighbour connection: INCOMING_DATA with the connection Alice
   * knows him by, the type and the bytes (inside the event's block). */
  {
    send_msg(out, "data");
    char *sent = recv_msg(in);
    CHECK(sent && strcmp(sent, "sent") == 0);
    free(sent);
    PEER_GROUP_EVENT_DATA *d = next_event(all, efd_all, "alice: bob's data");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_INCOMING_DATA);
    if (d && d->eventType == PEER_GROUP_EVENT_INCOMING_DATA) {
      CHECK(d->incomingData.dwSize == sizeof(PEER_EVENT_INCOMING_DATA));
      CHECK(d->incomingData.ullConnectionId == up.connection.ullConnectionId);
      CHECK(memcmp(&d->incomingData.type, &NOTE, sizeof(GUID)) == 0);
      CHECK(d->incomingData.data.cbData == 14 &&
            memcmp(d->incomingData.data.pbData, "data from bob", 14) == 0);
    }
    PeerFreeData(d);
  }

  /* Unregistering the status-only registration: the handle is gone, and the status change
   * below signals nothing on its eventfd. */
  reset(efd_status);
  CHECK_HR(PeerGroupUnregisterEvent(statuses), S_OK);
  CHECK_HR(PeerGroupUnregisterEvent(statuses), E_INVALIDARG);
  {
    PEER_GROUP_EVENT_DATA *d = NULL;
    CHECK_HR(PeerGroupGetEventData(statuses, &d), E_INVALIDARG);
  }

  /* Bob closes: the same connection goes, and HAS_CONNECTIONS with it. */
  send_msg(out, "close");
  seen_t down = until_connection_and_status(all, efd_all, PEER_DISCONNECTED,
                                            PEER_GROUP_STATUS_LISTENING, "alice: bob down");
  CHECK(down.connections == 1 && down.others == 0);
  CHECK(down.last_status == PEER_GROUP_STATUS_LISTENING);
  CHECK(down.connection.ullConnectionId == up.connection.ullConnectionId);
  CHECK(down.connection.ullNodeId == up.connection.ullNodeId);
  /* Bob's member data and presence reached Alice while he was online (JOINED, CONNECTED);
   * his clean close deletes his presence: DISCONNECTED (waited for, bounded). */
  CHECK(g_member_changes[PEER_MEMBER_JOINED] >= 1);
  CHECK(g_member_changes[PEER_MEMBER_CONNECTED] >= 1);
  while (g_member_changes[PEER_MEMBER_DISCONNECTED] == 0) {
    if (!readable(efd_all, EVENT_WAIT_MS)) break;
    reset(efd_all);
    PEER_GROUP_EVENT_DATA *d = NULL;
    while (PeerGroupGetEventData(all, &d) == S_OK && d != NULL) {
      if (d->eventType == PEER_GROUP_EVENT_MEMBER_CHANGED) note_member_change(d);
      PeerFreeData(d);
      d = NULL;
    }
  }
  CHECK(g_member_changes[PEER_MEMBER_DISCONNECTED] >= 1);
  /* Delivery to every registration happens before any sees the event: this is final. */
  CHECK(!readable(efd_status, 0));
  m = recv_msg(in);
  CHECK(m && strcmp(m, "closed") == 0);
  free(m);

  /* Closing the HGROUP ends its registration: the last events (offline) stay readable. */
  CHECK_HR(PeerGroupClose(g), S_OK);
  {
    PEER_GROUP_EVENT_DATA *d = NULL;
    DWORD last = 0xFFFFFFFF;
    HRESULT hr;
    while ((hr = PeerGroupGetEventData(all, &d)) == S_OK) {
      if (d->eventType == PEER_GROUP_EVENT_STATUS_CHANGED) last = (DWORD)d->dwStatus;
      PeerFreeData(d);
      d = NULL;
    }
    CHECK_HR(hr, PEER_S_NO_EVENT_DATA);
    CHECK(last == 0);
  }
  CHECK_HR(PeerGroupUnregisterEvent(all), S_OK);
  {
    HPEEREVENT h = NULL;
    CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd_all), 1, &status_only, &h),
             PEER_E_INVALID_GROUP);
  }

  /* A registration still open at the last shutdown becomes invalid with everything else. */
  {
    HGROUP g2 = NULL;
    HPEEREVENT h = NULL;
    PEER_GROUP_EVENT_DATA *d = NULL;
    props = club_properties(alice);
    CHECK_HR(PeerGroupCreate(&props, &g2), S_OK);
    CHECK_HR(PeerGroupRegisterEvent(g2, as_handle(efd_all), 1, &status_only, &h), S_OK);
    CHECK_HR(PeerGroupConnect(g2), S_OK);
    d = next_event(h, efd_all, "alice: second group");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_STATUS_CHANGED);
    PeerFreeData(d);
    CHECK_HR(PeerGroupShutdown(), S_OK);
    CHECK_HR(PeerGroupGetEventData(h, &d), PEER_E_NOT_INITIALIZED);
    CHECK_HR(PeerGroupUnregisterEvent(h), PEER_E_NOT_INITIALIZED);
    CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
    CHECK_HR(PeerGroupGetEventData(h, &d), E_INVALIDARG);
    CHECK_HR(PeerGroupUnregisterEvent(h), E_INVALIDARG);
    CHECK_HR(PeerGroupShutdown(), S_OK);
  }

  close(efd_all);
  close(efd_status);
  free(xml);
  free(xml_a);
  PeerFreeData(invitation);
  PeerFreeData(alice);
}

int main(void) {
  {
    PEER_GROUP_EVENT_DATA *d = NULL;
    CHECK_HR(PeerGroupGetEventData((HPEEREVENT)(intptr_t)0x1234, &d), PEER_E_NOT_INITIALIZED);
    CHECK_HR(PeerGroupUnregisterEvent((HPEEREVENT)(intptr_t)0x1234), PEER_E_NOT_INITIALIZED);
  }

  return run_pair("events", child, parent);
}
