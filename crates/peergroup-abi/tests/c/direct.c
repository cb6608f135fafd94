/* Direct connections and data through the C ABI, under AddressSanitizer, UBSan and
 * LeakSanitizer, with two members in two processes (the parent creates and invites, a forked
 * child joins with its own PEERGROUP_HOME).
 *
 * Covered: refusals of PeerGroupOpenDirectConnection / CloseDirectConnection /
 * EnumConnections / SendData (NULLs, flags, self, unknown ids); a direct connection opened by
 * the parent, reported PEER_CONNECTED on both sides; PeerGroupEnumConnections with its
 * PEER_CONNECTION_INFO fields; 32 MiB in 64 KiB messages and one message of several frames
 * arriving whole and in order as INCOMING_DATA events (data freed with the event); data on
 * the neighbour connection; the child closing the direct connection, seen as
 * PEER_DISCONNECTED by the parent, after which sending on it is PEER_E_CONNECTION_NOT_FOUND. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"

#include "procs.h"

#define EVENT_WAIT_MS 30000
#define MSG_BYTES (64 * 1024)
#define MSG_COUNT 512 /* 32 MiB */
#define BIG_BYTES (3 * 1024 * 1024 + 7)

static const GUID FILE_PART = {0x5eedf11e, 0x0001, 0x4000, {0x80, 1, 2, 3, 4, 5, 6, 7}};
static const GUID CHAT = {0x5eedc4a7, 0x0002, 0x4000, {0x80, 1, 2, 3, 4, 5, 6, 8}};



static PEER_GROUP_EVENT_DATA *next_event(HPEEREVENT h, int efd, const char *what) {
  for (;;) {
    PEER_GROUP_EVENT_DATA *d = NULL;
    HRESULT hr = PeerGroupGetEventData(h, &d);
    if (hr == S_OK && d != NULL) return d;
    if (hr != PEER_S_NO_EVENT_DATA) {
      fprintf(stderr, "%s: PeerGroupGetEventData returned 0x%08X\n", what, (unsigned)hr);
      g_failed++;
      return NULL;
    }
    if (!readable(efd, EVENT_WAIT_MS)) {
      fprintf(stderr, "%s: no event within %d ms\n", what, EVENT_WAIT_MS);
      g_failed++;
      return NULL;
    }
    uint64_t v;
    if (read(efd, &v, sizeof v) < 0) { /* already reset by a racing read: fine */
    }
  }
}

/* The next DIRECT_CONNECTION event (others are counted as failures). */
static PEER_EVENT_CONNECTION_CHANGE_DATA next_direct(HPEEREVENT h, int efd, const char *what) {
  PEER_EVENT_CONNECTION_CHANGE_DATA c;
  memset(&c, 0, sizeof c);
  PEER_GROUP_EVENT_DATA *d = next_event(h, efd, what);
  if (!d) return c;
  CHECK(d->eventType == PEER_GROUP_EVENT_DIRECT_CONNECTION);
  if (d->eventType == PEER_GROUP_EVENT_DIRECT_CONNECTION) {
    CHECK(d->connectionChangeData.dwSize == sizeof(PEER_EVENT_CONNECTION_CHANGE_DATA));
    c = d->connectionChangeData;
  }
  PeerFreeData(d);
  return c;
}

/* Fills a message: its sequence number, then a byte that depends on it. */
static void fill(BYTE *buf, size_t len, uint32_t seq) {
  memset(buf, (int)((seq * 7 + 1) & 0xff), len);
  if (len >= 4) memcpy(buf, &seq, 4);
}

static int check_fill(const BYTE *buf, size_t len, uint32_t seq) {
  if (len < 4 || memcmp(buf, &seq, 4) != 0) return 0;
  for (size_t i = 4; i < len; i++)
    if (buf[i] != (BYTE)((seq * 7 + 1) & 0xff)) return 0;
  return 1;
}



/* Connections of `flags`: their count, and the first one copied to `*first` (its peer id
 * narrowed into `peer`). */
static ULONG enum_connections(HGROUP g, DWORD flags, PEER_CONNECTION_INFO *first, char *peer,
                              size_t peer_len) {
  HPEERENUM e = NULL;
  ULONG count = 0;
  CHECK_HR(PeerGroupEnumConnections(g, flags, &e), S_OK);
  CHECK_HR(PeerGetItemCount(e, &count), S_OK);
  ULONG n = count;
  PEER_CONNECTION_INFO **items = NULL;
  CHECK_HR(PeerGetNextItem(e, &n, (PVOID **)&items), S_OK);
  CHECK(n == count);
  if (n > 0 && items) {
    CHECK(items[0]->dwSize == sizeof(PEER_CONNECTION_INFO));
    *first = *items[0];
    char *p = narrow(items[0]->pwzPeerId);
    snprintf(peer, peer_len, "%s", p);
    free(p);
    first->pwzPeerId = NULL; /* freed with the items */
  }
  PeerFreeData(items);
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return count;
}

/* ====================================================================================== */
/* The child (Bob): joins, receives, answers, closes the direct connection when told.      */
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
  send_wide(out, bob);

  char *invitation_a = recv_msg(in);
  CHECK(invitation_a != NULL);
  if (!invitation_a) goto done;
  WCHAR *invitation = widen(invitation_a);
  CHECK_HR(PeerGroupJoin(bob, invitation, NULL, &g), S_OK);
  PEER_GROUP_EVENT_REGISTRATION regs[2] = {
      {PEER_GROUP_EVENT_DIRECT_CONNECTION, NULL},
      {PEER_GROUP_EVENT_INCOMING_DATA, NULL},
  };
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 2, regs, &h), S_OK);
  PEER_ADDRESS addr = loopback_address(invitation_port(invitation));
  CHECK_HR(PeerGroupConnectByAddress(g, 1, &addr), S_OK);
  CHECK(wait_status(g, is_both) == BOTH);
  send_msg(out, "connected");

  /* The parent opens a direct connection to us. */
  PEER_EVENT_CONNECTION_CHANGE_DATA up = next_direct(h, efd, "bob: direct up");
  CHECK(up.status == PEER_CONNECTED && up.ullConnectionId != 0 && up.ullNodeId != 0);
  ULONGLONG direct = up.ullConnectionId;

  /* Every message whole and in order on the direct connection, then the big one; the one on
   * the neighbour connection may come at any point (connections are not ordered together). */
  int in_order = 1, neighbour_seen = 0;
  uint32_t seq = 0;
  while (seq <= MSG_COUNT || !neighbour_seen) {
    PEER_GROUP_EVENT_DATA *d = next_event(h, efd, "bob: data");
    if (!d) {
      in_order = 0;
      break;
    }
    CHECK(d->eventType == PEER_GROUP_EVENT_INCOMING_DATA);
    const PEER_EVENT_INCOMING_DATA *m = &d->incomingData;
    CHECK(m->dwSize == sizeof(PEER_EVENT_INCOMING_DATA));
    if (m->ullConnectionId != direct) {
      /* On the neighbour connection: another id, the chat type. */
      CHECK(!neighbour_seen);
      neighbour_seen = 1;
      CHECK(memcmp(&m->type, &CHAT, sizeof(GUID)) == 0);
      CHECK(m->data.cbData == 5 && memcmp(m->data.pbData, "hello", 5) == 0);
    } else if (seq < MSG_COUNT) {
      if (memcmp(&m->type, &FILE_PART, sizeof(GUID)) != 0 || m->data.cbData != MSG_BYTES ||
          !check_fill(m->data.pbData, MSG_BYTES, seq))
        in_order = 0;
      seq++;
    } else {
      CHECK(seq == MSG_COUNT);
      CHECK(m->data.cbData == BIG_BYTES && check_fill(m->data.pbData, BIG_BYTES, 99999));
      seq++;
    }
    PeerFreeData(d);
  }
  CHECK(in_order);
  CHECK_HR(PeerGroupSendData(g, direct, &CHAT, 4, "pong"), S_OK);
  send_msg(out, in_order ? "received" : "damaged");

  char *m = recv_msg(in);
  CHECK(m && strcmp(m, "close direct") == 0);
  free(m);
  CHECK_HR(PeerGroupCloseDirectConnection(g, direct), S_OK);
  PEER_EVENT_CONNECTION_CHANGE_DATA down = next_direct(h, efd, "bob: direct down");
  CHECK(down.status == PEER_DISCONNECTED && down.ullConnectionId == direct);
  CHECK_HR(PeerGroupSendData(g, direct, &CHAT, 4, "late"), PEER_E_CONNECTION_NOT_FOUND);
  send_msg(out, "closed direct");

  m = recv_msg(in);
  CHECK(m && strcmp(m, "close") == 0);
  free(m);
  CHECK_HR(PeerGroupUnregisterEvent(h), S_OK);
  CHECK_HR(PeerGroupClose(g), S_OK);
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
  return summary("direct-child");
}

/* ====================================================================================== */
/* The parent (Alice): creator; opens the direct connection and sends.                     */
/* ====================================================================================== */

static void refusals(HGROUP g, PCWSTR self) {
  ULONGLONG id = 0;
  HPEERENUM e = NULL;
  PEER_ADDRESS bad = loopback_address(1);
  bad.dwSize = 3;
  CHECK_HR(PeerGroupOpenDirectConnection(g, NULL, NULL, &id), E_INVALIDARG);
  CHECK_HR(PeerGroupOpenDirectConnection(g, self, NULL, NULL), E_POINTER);
  CHECK_HR(PeerGroupOpenDirectConnection(g, u"not a peer name", NULL, &id), E_INVALIDARG);
  CHECK_HR(PeerGroupOpenDirectConnection(g, self, &bad, &id), E_INVALIDARG);
  CHECK_HR(PeerGroupOpenDirectConnection(g, self, NULL, &id), PEER_E_CONNECT_SELF);
  CHECK_HR(PeerGroupOpenDirectConnection((HGROUP)(intptr_t)0x4242, self, NULL, &id),
           PEER_E_INVALID_GROUP);
  CHECK(id == 0);
  CHECK_HR(PeerGroupCloseDirectConnection(g, 987654321), PEER_E_CONNECTION_NOT_FOUND);
  CHECK_HR(PeerGroupEnumConnections(g, 0, &e), E_INVALIDARG);
  CHECK_HR(PeerGroupEnumConnections(g, 4, &e), E_INVALIDARG);
  CHECK_HR(PeerGroupEnumConnections(g, PEER_CONNECTION_DIRECT, NULL), E_POINTER);
  CHECK(e == NULL);
  CHECK_HR(PeerGroupSendData(g, 987654321, &CHAT, 2, "hi"), PEER_E_CONNECTION_NOT_FOUND);
  CHECK_HR(PeerGroupSendData(g, 987654321, NULL, 2, "hi"), E_INVALIDARG);
  CHECK_HR(PeerGroupSendData(g, 987654321, &CHAT, 2, NULL), E_INVALIDARG);
}

static void parent(int in, int out) {
  PEER_VERSION_DATA v;
  PWSTR alice = NULL, invitation = NULL;
  HGROUP g = NULL;
  HPEEREVENT h = NULL;
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(efd > 0);

  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);
  PEER_GROUP_PROPERTIES p;
  memset(&p, 0, sizeof p);
  p.dwSize = sizeof p;
  p.pwzClassifier = u"direct";
  p.pwzCreatorPeerName = alice;
  p.pwzFriendlyName = u"Direct";
  p.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION;
  CHECK_HR(PeerGroupCreate(&p, &g), S_OK);
  /* Offline: nothing to enumerate, no direct connection possible. */
  {
    ULONGLONG id = 0;
    PEER_CONNECTION_INFO first;
    char peer[128];
    CHECK(enum_connections(g, PEER_CONNECTION_NEIGHBOR | PEER_CONNECTION_DIRECT, &first, peer,
                           sizeof peer) == 0);
    CHECK_HR(PeerGroupOpenDirectConnection(g, u"0123456789abcdef0123456789abcdef01234567.x",
                                           NULL, &id),
             PEER_E_GROUP_NOT_READY);
  }
  PEER_GROUP_EVENT_REGISTRATION regs[2] = {
      {PEER_GROUP_EVENT_DIRECT_CONNECTION, NULL},
      {PEER_GROUP_EVENT_INCOMING_DATA, NULL},
  };
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 2, regs, &h), S_OK);
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(wait_status(g, is_listening) & PEER_GROUP_STATUS_LISTENING);

  char *xml_a = recv_msg(in);
  char *bob_a = recv_msg(in);
  CHECK(xml_a != NULL && bob_a != NULL);
  if (!xml_a || !bob_a) return;
  WCHAR *xml = widen(xml_a);
  WCHAR *bob = widen(bob_a);
  CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 0, NULL, &invitation), S_OK);
  send_wide(out, invitation);
  char *m = recv_msg(in);
  CHECK(m && strcmp(m, "connected") == 0);
  free(m);
  CHECK(wait_status(g, is_both) == BOTH);
  refusals(g, alice);

  /* Open; the id is the one the event reports. */
  ULONGLONG direct = 0;
  CHECK_HR(PeerGroupOpenDirectConnection(g, bob, NULL, &direct), S_OK);
  CHECK(direct != 0);
  PEER_EVENT_CONNECTION_CHANGE_DATA up = next_direct(h, efd, "alice: direct up");
  CHECK(up.status == PEER_CONNECTED && up.ullConnectionId == direct && up.ullNodeId != 0);
  {
    PEER_CONNECTION_INFO c;
    char peer[128] = "";
    CHECK(enum_connections(g, PEER_CONNECTION_DIRECT, &c, peer, sizeof peer) == 1);
    CHECK(c.dwFlags == PEER_CONNECTION_DIRECT && c.ullConnectionId == direct);
    CHECK(c.ullNodeId == up.ullNodeId);
    CHECK(strcmp(peer, bob_a) == 0);
    CHECK(c.address.dwSize == sizeof(PEER_ADDRESS) && c.address.sin6.sin6_family == AF_INET6);
    CHECK(ntohs(c.address.sin6.sin6_port) != 0);
    CHECK(enum_connections(g, PEER_CONNECTION_NEIGHBOR | PEER_CONNECTION_DIRECT, &c, peer,
                           sizeof peer) == 2);
  }

  /* 32 MiB in order, one message of several frames, one on the neighbour connection. */
  BYTE *buf = malloc(BIG_BYTES);
  for (uint32_t seq = 0; seq < MSG_COUNT; seq++) {
    fill(buf, MSG_BYTES, seq);
    CHECK_HR(PeerGroupSendData(g, direct, &FILE_PART, MSG_BYTES, buf), S_OK);
  }
  fill(buf, BIG_BYTES, 99999);
  CHECK_HR(PeerGroupSendData(g, direct, &FILE_PART, BIG_BYTES, buf), S_OK);
  free(buf);
  {
    PEER_CONNECTION_INFO n;
    char peer[128] = "";
    CHECK(enum_connections(g, PEER_CONNECTION_NEIGHBOR, &n, peer, sizeof peer) == 1);
    CHECK(n.dwFlags == PEER_CONNECTION_NEIGHBOR && n.ullConnectionId != direct);
    CHECK(strcmp(peer, bob_a) == 0);
    CHECK_HR(PeerGroupSendData(g, n.ullConnectionId, &CHAT, 5, "hello"), S_OK);
  }
  m = recv_msg(in);
  CHECK(m && strcmp(m, "received") == 0);
  free(m);
  {
    PEER_GROUP_EVENT_DATA *d = next_event(h, efd, "alice: pong");
    CHECK(d && d->eventType == PEER_GROUP_EVENT_INCOMING_DATA);
    if (d && d->eventType == PEER_GROUP_EVENT_INCOMING_DATA) {
      CHECK(d->incomingData.ullConnectionId == direct);
      CHECK(memcmp(&d->incomingData.type, &CHAT, sizeof(GUID)) == 0);
      CHECK(d->incomingData.data.cbData == 4 &&
            memcmp(d->incomingData.data.pbData, "pong", 4) == 0);
    }
    PeerFreeData(d);
  }

  /* Bob closes it: we see it go, and it is gone. */
  send_msg(out, "close direct");
  PEER_EVENT_CONNECTION_CHANGE_DATA down = next_direct(h, efd, "alice: direct down");
  CHECK(down.status == PEER_DISCONNECTED && down.ullConnectionId == direct);
  CHECK_HR(PeerGroupSendData(g, direct, &CHAT, 4, "late"), PEER_E_CONNECTION_NOT_FOUND);
  CHECK_HR(PeerGroupCloseDirectConnection(g, direct), PEER_E_CONNECTION_NOT_FOUND);
  {
    PEER_CONNECTION_INFO c;
    char peer[128];
    CHECK(enum_connections(g, PEER_CONNECTION_DIRECT, &c, peer, sizeof peer) == 0);
  }
  m = recv_msg(in);
  CHECK(m && strcmp(m, "closed direct") == 0);
  free(m);
  send_msg(out, "close");

  CHECK_HR(PeerGroupUnregisterEvent(h), S_OK);
  CHECK_HR(PeerGroupClose(g), S_OK);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  close(efd);
  free(xml);
  free(bob);
  free(xml_a);
  free(bob_a);
  PeerFreeData(invitation);
  PeerFreeData(alice);
}

int main(void) { return run_pair("direct", child, parent); }
