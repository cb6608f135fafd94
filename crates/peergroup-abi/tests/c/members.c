/* Members through the C ABI, under AddressSanitizer, UBSan and LeakSanitizer, with two
 * members in two processes (as events.c: the parent creates and invites, a forked child
 * joins with its own PEERGROUP_HOME and starts the library after the fork).
 *
 * Covered: PeerGroupEnumMembers (the local member first; the other present with its node
 * id, its listen port and its credential information with every pointer filled; one item for
 * an identity; refusals), MEMBER_CHANGED events (JOINED and CONNECTED when Bob arrives,
 * DISCONNECTED when he closes, with the identity), PeerGroupIssueCredentials (refused to a
 * non-administrator; bad input refused; flags 0 give an invitation with the roles asked;
 * PEER_GROUP_STORE_CREDENTIALS promotes Bob to administrator, after which Bob's
 * PeerGroupSetProperties succeeds and reaches Alice). */
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

/* Upper bound for something expected to happen: reaching it is a failure. */
#define MEMBER_WAIT_MS 30000

/* Length of a wide string, in units. */
static size_t wcslen16(const WCHAR *w) {
  size_t n = 0;
  while (w[n]) n++;
  return n;
}

/* 1 when two wide strings are equal. */
static int wsame(const WCHAR *a, const WCHAR *b) {
  return a && b && wcslen16(a) == wcslen16(b) && memcmp(a, b, wcslen16(a) * sizeof(WCHAR)) == 0;
}

/* Reads MEMBER_CHANGED events until one is (`change`, `who`); 1 when it came. */
static int wait_member_event(HPEEREVENT h, int efd, PEER_MEMBER_CHANGE_TYPE change,
                             PCWSTR who) {
  for (;;) {
    PEER_GROUP_EVENT_DATA *d = NULL;
    HRESULT hr = PeerGroupGetEventData(h, &d);
    if (hr == S_OK && d) {
      int match = d->eventType == PEER_GROUP_EVENT_MEMBER_CHANGED &&
                  d->memberChangeData.dwSize == sizeof(PEER_EVENT_MEMBER_CHANGE_DATA) &&
                  d->memberChangeData.changeType == change &&
                  wsame(d->memberChangeData.pwzIdentity, who);
      PeerFreeData(d);
      if (match) return 1;
      continue;
    }
    if (hr != PEER_S_NO_EVENT_DATA) return 0;
    if (!readable(efd, MEMBER_WAIT_MS)) return 0;
    uint64_t v;
    if (read(efd, &v, sizeof v) < 0) return 0;
  }
}

/* The members PeerGroupEnumMembers lists, as one array (free with PeerFreeData); NULL and
 * *count 0 on failure. */
static PEER_MEMBER **members(HGROUP g, DWORD flags, PCWSTR identity, ULONG *count) {
  HPEERENUM e = NULL;
  PEER_MEMBER **items = NULL;
  *count = 0;
  if (PeerGroupEnumMembers(g, flags, identity, &e) != S_OK) return NULL;
  ULONG n = 0;
  CHECK_HR(PeerGetItemCount(e, &n), S_OK);
  *count = n;
  CHECK_HR(PeerGetNextItem(e, count, (PVOID **)&items), S_OK);
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return items;
}

/* Polls until `flags` members number `want` (bounded); returns the last count. */
static ULONG wait_count(HGROUP g, DWORD flags, ULONG want) {
  ULONG n = 0;
  for (int waited = 0; waited <= MEMBER_WAIT_MS; waited += 50) {
    PEER_MEMBER **items = members(g, flags, NULL, &n);
    PeerFreeData(items);
    if (n == want) break;
    sleep_ms(50);
  }
  return n;
}

static int port_of(const PEER_ADDRESS *a) { return ntohs(a->sin6.sin6_port); }

/* ====================================================================================== */
/* The child: Bob joins, reports his port, is refused IssueCredentials, then (promoted)    */
/* sets the properties; closes when told.                                                 */
/* ====================================================================================== */

static int child(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR bob = NULL, xml = NULL;
  HGROUP g = NULL;

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
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(is_both(wait_status(g, is_both)));

  /* Bob's own entry names his listen port. */
  {
    ULONG n = 0;
    PEER_MEMBER **me = members(g, 0, bob, &n);
    CHECK(n == 1 && me && me[0]->cAddresses >= 1);
    char msg[64];
    snprintf(msg, sizeof msg, "port %d",
             (n == 1 && me[0]->cAddresses) ? port_of(me[0]->pAddresses) : 0);
    send_msg(out, msg);
    PeerFreeData(me);
  }

  /* A member is no administrator: IssueCredentials and SetProperties are refused. */
  {
    ULONG n = 0;
    PEER_MEMBER **all = members(g, 0, NULL, &n);
    CHECK(n >= 1);
    if (n >= 1) {
      CHECK_HR(PeerGroupIssueCredentials(g, all[0]->pwzIdentity, NULL,
                                         PEER_GROUP_STORE_CREDENTIALS, NULL),
               PEER_E_NOT_AUTHORIZED);
    }
    PeerFreeData(all);
  }

  char *m = recv_msg(in);
  if (m && strcmp(m, "promoted") == 0) {
    /* The new GMC reaches Bob through the database; once adopted, he may set properties. */
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupGetProperties(g, &p), S_OK);
    HRESULT hr = PEER_E_NOT_AUTHORIZED;
    if (p) {
      p->pwzComment = u"bob was here";
      for (int waited = 0; waited <= MEMBER_WAIT_MS; waited += 50) {
        hr = PeerGroupSetProperties(g, p);
        if (hr != PEER_E_NOT_AUTHORIZED) break;
        sleep_ms(50);
      }
    }
    CHECK_HR(hr, S_OK);
    PeerFreeData(p);
    send_msg(out, "set");
    free(m);
    m = recv_msg(in);
  }
  CHECK(m && strcmp(m, "close") == 0);
  free(m);
  CHECK_HR(PeerGroupClose(g), S_OK);
  send_msg(out, "closed");
  free(invitation);
done:
  free(invitation_a);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  PeerFreeData(bob);
  PeerFreeData(xml);
  {
    char result[64];
    snprintf(result, sizeof result, "%d %d", g_passed, g_failed);
    send_msg(out, result);
  }
  return summary("members-child");
}

/* ====================================================================================== */
/* The parent: Alice, the creator.                                                         */
/* ====================================================================================== */

static void check_credentials(const PEER_CREDENTIAL_INFO *c, const char *friendly,
                              PCWSTR issuer, const GUID *role) {
  CHECK(c != NULL);
  if (!c) return;
  CHECK(c->dwSize == sizeof(PEER_CREDENTIAL_INFO));
  CHECK(c->pwzFriendlyName && weq(c->pwzFriendlyName, friendly));
  CHECK(c->pwzIssuerPeerName && (issuer == NULL || wsame(c->pwzIssuerPeerName, issuer)));
  CHECK(c->pwzIssuerFriendlyName != NULL);
  CHECK(c->pPublicKey && c->pPublicKey->Algorithm.pszObjId &&
        strcmp(c->pPublicKey->Algorithm.pszObjId, "1.2.840.10045.2.1") == 0 &&
        c->pPublicKey->PublicKey.cbData == 65);
  CHECK(c->cRoles == 1 && c->pRoles && memcmp(c->pRoles, role, sizeof(GUID)) == 0);
  unsigned long long from = ((unsigned long long)c->ftValidityStart.dwHighDateTime << 32) |
                            c->ftValidityStart.dwLowDateTime;
  unsigned long long to = ((unsigned long long)c->ftValidityEnd.dwHighDateTime << 32) |
                          c->ftValidityEnd.dwLowDateTime;
  CHECK(from > 0 && from < to);
}

static void parent(int in, int out) {
  PEER_VERSION_DATA v;
  PWSTR alice = NULL, carol = NULL, invitation = NULL;
  HGROUP g = NULL;
  HPEEREVENT h = NULL;
  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  CHECK(efd > 0);

  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);
  CHECK_HR(PeerIdentityCreate(u"carol", u"Carol", 0, &carol), S_OK);
  PEER_GROUP_PROPERTIES props;
  memset(&props, 0, sizeof props);
  props.dwSize = sizeof props;
  props.pwzClassifier = u"club";
  props.pwzCreatorPeerName = alice;
  props.pwzFriendlyName = u"The Club";
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);
  PEER_GROUP_EVENT_REGISTRATION reg = {PEER_GROUP_EVENT_MEMBER_CHANGED, NULL};
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 1, &reg, &h), S_OK);
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(wait_member_event(h, efd, PEER_MEMBER_CONNECTED, alice));

  /* Refusals. */
  {
    HPEERENUM e = NULL;
    CHECK_HR(PeerGroupEnumMembers(g, 0, NULL, NULL), E_POINTER);
    CHECK_HR(PeerGroupEnumMembers(g, 0x10, NULL, &e), E_INVALIDARG);
    CHECK_HR(PeerGroupEnumMembers(g, 0, carol, &e), PEER_E_IDENTITY_NOT_FOUND);
    CHECK_HR(PeerGroupEnumMembers(g, 0, u"not a peer name", &e), PEER_E_INVALID_PEER_NAME);
    CHECK_HR(PeerGroupEnumMembers((HGROUP)(intptr_t)0x4242, 0, NULL, &e), PEER_E_INVALID_GROUP);
    CHECK(e == NULL);
    CHECK_HR(PeerGroupIssueCredentials(g, NULL, NULL, PEER_GROUP_STORE_CREDENTIALS, NULL),
             E_INVALIDARG);
    CHECK_HR(PeerGroupIssueCredentials(g, carol, NULL, 0, NULL), E_POINTER);
    CHECK_HR(PeerGroupIssueCredentials(g, carol, NULL, PEER_GROUP_STORE_CREDENTIALS, NULL),
             PEER_E_IDENTITY_NOT_FOUND);
    CHECK_HR(PeerGroupIssueCredentials(g, carol, NULL, 0x8, &invitation), E_INVALIDARG);
    CHECK(invitation == NULL);
  }

  /* Bob joins and connects. */
  char *xml_a = recv_msg(in);
  CHECK(xml_a != NULL);
  WCHAR *xml = widen(xml_a ? xml_a : "missing");
  CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 0, NULL, &invitation), S_OK);
  send_wide(out, invitation ? invitation : u"none");
  PeerFreeData(invitation);
  invitation = NULL;
  char *m = recv_msg(in);
  int bob_port = 0;
  CHECK(m && sscanf(m, "port %d", &bob_port) == 1 && bob_port > 0);
  free(m);

  /* Bob's identity, from the two-member list (Alice first). */
  CHECK(wait_count(g, PEER_MEMBER_PRESENT, 2) == 2);
  ULONG n = 0;
  PEER_MEMBER **all = members(g, 0, NULL, &n);
  CHECK(n == 2 && all);
  WCHAR *bob = NULL;
  if (n == 2 && all) {
    CHECK(wsame(all[0]->pwzIdentity, alice));
    CHECK(all[0]->dwSize == sizeof(PEER_MEMBER) && (all[0]->dwFlags & PEER_MEMBER_PRESENT));
    /* The creator's certificate is issued by the group itself. */
    check_credentials(all[0]->pCredentialInfo, "Alice", NULL, &PEER_GROUP_ROLE_ADMIN);
    size_t len = (wcslen16(all[1]->pwzIdentity) + 1) * sizeof(WCHAR);
    bob = malloc(len);
    memcpy(bob, all[1]->pwzIdentity, len);
  }
  PeerFreeData(all);
  if (!bob) goto end;
  CHECK(wait_member_event(h, efd, PEER_MEMBER_JOINED, bob));

  /* Bob alone: present, his node, his port, his credentials issued by Alice. */
  PEER_MEMBER **one = members(g, PEER_MEMBER_PRESENT, bob, &n);
  CHECK(n == 1 && one);
  if (n == 1 && one) {
    const PEER_MEMBER *b = one[0];
    CHECK(b->dwSize == sizeof(PEER_MEMBER));
    CHECK(b->dwFlags == PEER_MEMBER_PRESENT);
    CHECK(b->ullNodeId != 0);
    CHECK(b->pwzAttributes != NULL);
    CHECK(b->cAddresses >= 1 && b->pAddresses && b->pAddresses[0].dwSize == sizeof(PEER_ADDRESS));
    CHECK(b->cAddresses >= 1 && port_of(&b->pAddresses[0]) == bob_port);
    check_credentials(b->pCredentialInfo, "Bob", alice, &PEER_GROUP_ROLE_MEMBER);

    /* Flags 0: credentials as an invitation, with the roles asked, nothing published. */
    PEER_CREDENTIAL_INFO info = *b->pCredentialInfo;
    GUID inviting = PEER_GROUP_ROLE_INVITING_MEMBER;
    info.cRoles = 1;
    info.pRoles = &inviting;
    CHECK_HR(PeerGroupIssueCredentials(g, bob, &info, 0, &invitation), S_OK);
    PEER_INVITATION_INFO *parsed = NULL;
    if (invitation) CHECK_HR(PeerGroupParseInvitation(invitation, &parsed), S_OK);
    CHECK(parsed && parsed->cRoles == 1 &&
          memcmp(parsed->pRoles, &PEER_GROUP_ROLE_INVITING_MEMBER, sizeof(GUID)) == 0);
    PeerFreeData(parsed);
    PeerFreeData(invitation);
    invitation = NULL;

    /* A bad size or a key that is not Bob's is refused. */
    info.dwSize = 3;
    CHECK_HR(PeerGroupIssueCredentials(g, bob, &info, PEER_GROUP_STORE_CREDENTIALS, NULL),
             E_INVALIDARG);
    info.dwSize = sizeof info;
    CHECK(PeerGroupIssueCredentials(g, carol, &info, PEER_GROUP_STORE_CREDENTIALS, NULL) !=
          S_OK);

    /* Promotion, stored in the database: Bob becomes an administrator. */
    GUID admin = PEER_GROUP_ROLE_ADMIN;
    info.pRoles = &admin;
    CHECK_HR(PeerGroupIssueCredentials(g, bob, &info, PEER_GROUP_STORE_CREDENTIALS, NULL),
             S_OK);
  }
  PeerFreeData(one);
  send_msg(out, "promoted");
  m = recv_msg(in);
  CHECK(m && strcmp(m, "set") == 0);
  free(m);
  {
    int seen = 0;
    for (int waited = 0; waited <= MEMBER_WAIT_MS && !seen; waited += 50) {
      PEER_GROUP_PROPERTIES *p = NULL;
      if (PeerGroupGetProperties(g, &p) == S_OK && p && p->pwzComment &&
          weq(p->pwzComment, "bob was here")) {
        seen = 1;
      }
      PeerFreeData(p);
      if (!seen) sleep_ms(50);
    }
    CHECK(seen);
  }

  /* Bob closes: DISCONNECTED; he is still known, no longer present, with no addresses. */
  send_msg(out, "close");
  CHECK(wait_member_event(h, efd, PEER_MEMBER_DISCONNECTED, bob));
  m = recv_msg(in);
  CHECK(m && strcmp(m, "closed") == 0);
  free(m);
  CHECK(wait_count(g, PEER_MEMBER_PRESENT, 1) == 1);
  one = members(g, 0, bob, &n);
  CHECK(n == 1 && one && one[0]->dwFlags == 0 && one[0]->cAddresses == 0 &&
        one[0]->pAddresses == NULL && one[0]->pCredentialInfo != NULL);
  PeerFreeData(one);
  {
    HPEERENUM e = NULL;
    CHECK_HR(PeerGroupEnumMembers(g, PEER_MEMBER_PRESENT, bob, &e), PEER_E_IDENTITY_NOT_FOUND);
  }

end:
  free(bob);
  CHECK_HR(PeerGroupUnregisterEvent(h), S_OK);
  CHECK_HR(PeerGroupClose(g), S_OK);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  close(efd);
  free(xml);
  free(xml_a);
  PeerFreeData(alice);
  PeerFreeData(carol);
}

int main(void) { return run_pair("members", child, parent); }
