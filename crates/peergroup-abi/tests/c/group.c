/* Groups over QUIC through the C ABI, under AddressSanitizer and LeakSanitizer, with two
 * members in two processes: the parent creates a group and invites, a forked child joins.
 * One process holds one library instance (one PEERGROUP_HOME), so the child calls
 * PeerGroupStartup itself after the fork, with its own home; nothing of the library runs
 * in the parent when it forks. Identity XML, invitation and progress go through two pipes.
 *
 * Covered: create (properties round trip, refusals), status 0 before connect, connect to
 * LISTENING, invitations (created, parsed, refused), join, connect by address, both members
 * LISTENING|HAS_CONNECTIONS, a member's SetProperties/CreateInvitation refused, the close
 * cascade (a second handle keeps the group up; the last close drops the child's connection
 * and releases the UDP port), invalid and forged handles, delete, shutdown with groups
 * still open. The parent's summary counts the child's checks and its exit status. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

#include "procs.h"


static int guid_eq(const GUID *a, const GUID *b) { return memcmp(a, b, sizeof(GUID)) == 0; }

static ULONGLONG ticks(FILETIME ft) {
  return ((ULONGLONG)ft.dwHighDateTime << 32) | ft.dwLowDateTime;
}

static FILETIME filetime_from_unix(long long secs) {
  ULONGLONG t = (ULONGLONG)(secs + 11644473600LL) * 10000000ULL;
  FILETIME ft = {(DWORD)t, (DWORD)(t >> 32)};
  return ft;
}

/* Checks the fields every GMC invitation for `subject` from `issuer` has. */
static void check_invitation_info(const PEER_INVITATION_INFO *i, const char *group,
                                  const char *issuer, const char *subject) {
  CHECK(i->dwSize == sizeof(PEER_INVITATION_INFO));
  CHECK(i->dwFlags == 0);
  CHECK(weq(i->pwzGroupPeerName, group));
  CHECK(weq(i->pwzGroupFriendlyName, "The Club"));
  CHECK(weq(i->pwzIssuerPeerName, issuer));
  CHECK(weq(i->pwzIssuerFriendlyName, "Alice"));
  CHECK(weq(i->pwzSubjectPeerName, subject));
  CHECK(weq(i->pwzSubjectFriendlyName, "Bob"));
  CHECK(i->pwzCloudName != NULL);
  CHECK(i->dwScope == 0 && i->dwCloudFlags == 0);
  CHECK(ticks(i->ftValidityEnd) > ticks(i->ftValidityStart));
  CHECK(i->cRoles == 1 && i->pRoles != NULL && guid_eq(&i->pRoles[0], &PEER_GROUP_ROLE_MEMBER));
  CHECK(i->cClassifiers == 0 && i->ppwzClassifiers == NULL);
  CHECK(i->authScheme == PEER_GROUP_GMC_AUTHENTICATION);
  CHECK(i->pSubjectPublicKey != NULL);
  if (i->pSubjectPublicKey) {
    const CERT_PUBLIC_KEY_INFO *k = i->pSubjectPublicKey;
    CHECK(strcmp(k->Algorithm.pszObjId, "1.2.840.10045.2.1") == 0); /* id-ecPublicKey */
    CHECK(k->Algorithm.Parameters.cbData == 10 && k->Algorithm.Parameters.pbData[0] == 0x06);
    CHECK(k->PublicKey.cbData == 65 && k->PublicKey.pbData[0] == 0x04);
    CHECK(k->PublicKey.cUnusedBits == 0);
  }
}

/* ====================================================================================== */
/* The child: joins with the invitation, connects by address, reports what it sees.       */
/* ====================================================================================== */

static int child(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR bob = NULL, xml = NULL, s = NULL;
  HGROUP g = NULL;

  setenv("PEERGROUP_HOME", home, 1);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"bob", u"Bob", 0, &bob), S_OK);
  CHECK_HR(PeerIdentityGetXML(bob, &xml), S_OK);
  send_wide(out, bob);
  send_wide(out, xml);

  char *group = recv_msg(in);
  char *issuer = recv_msg(in);
  char *invitation_a = recv_msg(in);
  CHECK(group && issuer && invitation_a);
  if (!group || !issuer || !invitation_a) goto done;
  WCHAR *invitation = widen(invitation_a);
  char *bob_a = narrow(bob);

  /* What the invitation says. */
  PEER_INVITATION_INFO *info = NULL;
  CHECK_HR(PeerGroupParseInvitation(invitation, &info), S_OK);
  if (info) check_invitation_info(info, group, issuer, bob_a);
  PeerFreeData(info);

  /* Join (nothing is sent), then connect to the address in the invitation, v4-mapped. */
  CHECK_HR(PeerGroupJoin(bob, invitation, NULL, NULL), E_POINTER);
  CHECK_HR(PeerGroupJoin(bob, NULL, NULL, &g), E_INVALIDARG);
  CHECK_HR(PeerGroupJoin(bob, u"<PEERINVITATION/>", NULL, &g), E_INVALIDARG);
  CHECK_HR(PeerGroupJoin(bob, invitation, NULL, &g), S_OK);
  {
    DWORD status = 0xFF;
    CHECK_HR(PeerGroupGetStatus(g, &status), S_OK);
    CHECK(status == 0);
  }
  int port = invitation_port(invitation);
  CHECK(port > 0);
  PEER_ADDRESS addr = loopback_address(port);
  CHECK_HR(PeerGroupConnectByAddress(g, 0, &addr), E_INVALIDARG);
  CHECK_HR(PeerGroupConnectByAddress(g, 1, NULL), E_INVALIDARG);
  {
    PEER_ADDRESS bad = addr;
    bad.dwSize = 8;
    CHECK_HR(PeerGroupConnectByAddress(g, 1, &bad), E_INVALIDARG);
    bad = addr;
    bad.sin6.sin6_family = AF_INET;
    CHECK_HR(PeerGroupConnectByAddress(g, 1, &bad), E_INVALIDARG);
  }
  CHECK_HR(PeerGroupConnectByAddress((HGROUP)(intptr_t)0x4242, 1, &addr), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupConnectByAddress(g, 1, &addr), S_OK);
  CHECK(wait_status(g, is_both) == BOTH);
  send_msg(out, "connected");

  /* The relay opt-in (a Peergroup extension): a BOOL, a live handle. */
  CHECK_HR(PeerGroupSetRelay(g, 2), E_INVALIDARG);
  CHECK_HR(PeerGroupSetRelay((HGROUP)(intptr_t)0x4242, 1), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupSetRelay(g, 1), S_OK);
  CHECK_HR(PeerGroupSetRelay(g, 0), S_OK);
  CHECK(PEERGROUP_CONNECTION_RELAYED == 0x10000 && PEERGROUP_DISABLE_RELAYS == 0x10000);

  /* What the member knows of its NAT (a Peergroup extension): on loopback, no NAT, so no
     dial-back to make; it advertises where it listens. */
  CHECK_HR(PeerGroupGetReachability(g, NULL), E_POINTER);
  {
    PEERGROUP_REACHABILITY *r = NULL;
    CHECK_HR(PeerGroupGetReachability((HGROUP)(intptr_t)0x4242, &r), PEER_E_INVALID_GROUP);
    CHECK(r == NULL);
    CHECK_HR(PeerGroupGetReachability(g, &r), S_OK);
    if (r) {
      CHECK(r->dwSize == sizeof(PEERGROUP_REACHABILITY));
      CHECK(r->natClass == PEERGROUP_NAT_NONE || r->natClass == PEERGROUP_NAT_UNKNOWN);
      CHECK(r->outside == PEERGROUP_OUTSIDE_UNKNOWN);
      CHECK(r->reachableAt.dwSize == 0);
      CHECK(r->cAddresses >= 1 && r->pAddresses != NULL);
      for (ULONG i = 0; r->pAddresses && i < r->cAddresses; i++) {
        CHECK(r->pAddresses[i].dwSize == sizeof(PEER_ADDRESS));
        CHECK(r->pAddresses[i].sin6.sin6_family == AF_INET6);
        CHECK(r->pAddresses[i].sin6.sin6_port != 0);
      }
      CHECK((r->cRelays == 0) == (r->pRelays == NULL));
    }
    PeerFreeData(r);
  }
  CHECK(PEERGROUP_NAT_ENDPOINT_INDEPENDENT == 2 && PEERGROUP_NAT_ENDPOINT_DEPENDENT == 3);
  CHECK(PEERGROUP_OUTSIDE_REACHABLE == 1 && PEERGROUP_OUTSIDE_UNREACHABLE == 2);

  /* A member may not change properties nor invite. */
  {
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupGetProperties(g, &p), S_OK);
    if (p) {
      CHECK(weq(p->pwzGroupPeerName, group));
      CHECK(weq(p->pwzFriendlyName, "The Club"));
      p->pwzComment = u"a member's comment";
      CHECK_HR(PeerGroupSetProperties(g, p), PEER_E_NOT_AUTHORIZED);
    }
    PeerFreeData(p);
    CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 0, NULL, &s), PEER_E_NOT_AUTHORIZED);
    CHECK_HR(PeerGroupCreatePasswordInvitation(g, &s), PEER_E_NOT_AUTHORIZED);
  }

  /* The close cascade, seen from here. */
  char *m = recv_msg(in); /* the creator closed its first handle */
  CHECK(m && strcmp(m, "first-closed") == 0);
  free(m);
  {
    DWORD status = 0;
    CHECK_HR(PeerGroupGetStatus(g, &status), S_OK);
    send_msg(out, is_both(status) ? "still-connected" : "dropped-early");
  }
  m = recv_msg(in); /* the creator closed its last handle */
  CHECK(m && strcmp(m, "last-closed") == 0);
  free(m);
  send_msg(out, no_connections(wait_status(g, no_connections)) ? "dropped" : "still-connected");

  CHECK_HR(PeerGroupClose(g), S_OK);
  free(invitation);
  free(bob_a);
done:
  free(group);
  free(issuer);
  free(invitation_a);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  PeerFreeData(bob);
  PeerFreeData(xml);
  {
    char result[64];
    snprintf(result, sizeof result, "%d %d", g_passed, g_failed);
    send_msg(out, result);
  }
  return summary("group-child");
}

/* ====================================================================================== */
/* The parent: creator and administrator.                                                   */
/* ====================================================================================== */

static PEER_GROUP_PROPERTIES club_properties(PCWSTR creator) {
  PEER_GROUP_PROPERTIES p;
  memset(&p, 0, sizeof p);
  p.dwSize = sizeof p;
  p.dwFlags = PEER_MEMBER_DATA_OPTIONAL;
  p.pwzClassifier = u"club";
  p.pwzCreatorPeerName = (PWSTR)creator;
  p.pwzFriendlyName = u"The Club";
  p.pwzComment = u"for tests";
  p.ulMemberDataLifetime = 86400;
  p.ulPresenceLifetime = 600;
  p.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION;
  return p;
}

static int udp_port_free(int port) {
  int fd = socket(AF_INET, SOCK_DGRAM, 0);
  struct sockaddr_in sa;
  memset(&sa, 0, sizeof sa);
  sa.sin_family = AF_INET;
  sa.sin_port = htons((uint16_t)port);
  sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  int ok = bind(fd, (struct sockaddr *)&sa, sizeof sa) == 0;
  close(fd);
  return ok;
}

static ULONG group_count(PCWSTR identity) {
  HPEERENUM e = NULL;
  ULONG n = 0xFFFF;
  CHECK_HR(PeerEnumGroups(identity, &e), S_OK);
  CHECK_HR(PeerGetItemCount(e, &n), S_OK);
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return n;
}

static void parent(int in, int out) {
  PEER_VERSION_DATA v;
  PWSTR alice = NULL, s = NULL, invitation = NULL, group_name = NULL;
  HGROUP g = NULL, g2 = NULL;

  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);

  /* Create: refusals, then the club. */
  PEER_GROUP_PROPERTIES props = club_properties(alice);
  CHECK_HR(PeerGroupCreate(&props, NULL), E_POINTER);
  CHECK_HR(PeerGroupCreate(NULL, &g), E_INVALIDARG);
  {
    PEER_GROUP_PROPERTIES bad = props;
    bad.pwzGroupPeerName = u"0.chosen";
    CHECK_HR(PeerGroupCreate(&bad, &g), PEER_E_INVALID_GROUP_PROPERTIES);
    bad = props;
    bad.dwSize = 8;
    CHECK_HR(PeerGroupCreate(&bad, &g), E_INVALIDARG);
    bad = props;
    bad.pwzClassifier = u"has space";
    CHECK_HR(PeerGroupCreate(&bad, &g), PEER_E_INVALID_CLASSIFIER);
    bad = props;
    bad.ulPresenceLifetime = 10;
    CHECK_HR(PeerGroupCreate(&bad, &g), PEER_E_INVALID_GROUP_PROPERTIES);
    bad = props;
    bad.dwAuthenticationSchemes = PEER_GROUP_PASSWORD_AUTHENTICATION;
    bad.groupPasswordRole.Data1 = 0x1234; /* no role */
    bad.pwzGroupPassword = u"secret";
    CHECK_HR(PeerGroupCreate(&bad, &g), PEER_E_INVALID_ROLE_PROPERTY);
    bad = props;
    bad.pwzCreatorPeerName = u"0123456789012345678901234567890123456789.nobody";
    CHECK_HR(PeerGroupCreate(&bad, &g), PEER_E_NOT_FOUND);
  }
  CHECK(group_count(alice) == 0);
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);
  CHECK(g != NULL);
  CHECK(group_count(alice) == 1);

  /* Properties round trip, one block. */
  {
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupGetProperties(g, NULL), E_POINTER);
    CHECK_HR(PeerGroupGetProperties(g, &p), S_OK);
    if (p) {
      CHECK(p->dwSize == sizeof(PEER_GROUP_PROPERTIES));
      CHECK(p->dwFlags == PEER_MEMBER_DATA_OPTIONAL);
      CHECK(weq(p->pwzCloud, ""));
      CHECK(weq(p->pwzClassifier, "club"));
      {
        char *n = narrow(p->pwzGroupPeerName);
        CHECK(strlen(n) == 40 + 1 + 4 && strcmp(n + 40, ".club") == 0);
        free(n);
      }
      char *a = narrow(alice);
      CHECK(weq(p->pwzCreatorPeerName, a));
      free(a);
      CHECK(weq(p->pwzFriendlyName, "The Club"));
      CHECK(weq(p->pwzComment, "for tests"));
      CHECK(p->ulMemberDataLifetime == 86400 && p->ulPresenceLifetime == 600);
      CHECK(p->dwAuthenticationSchemes == PEER_GROUP_GMC_AUTHENTICATION);
      CHECK(p->pwzGroupPassword == NULL);
      CHECK(guid_eq(&p->groupPasswordRole, &PEER_GROUP_ROLE_MEMBER));
      {
        char *n = narrow(p->pwzGroupPeerName);
        group_name = widen(n); /* freed with free() */
        free(n);
      }
      /* The creator changes what may change; the classifier may not. */
      p->pwzComment = u"changed";
      p->ulPresenceLifetime = 900;
      CHECK_HR(PeerGroupSetProperties(g, p), S_OK);
      p->pwzClassifier = u"other";
      CHECK_HR(PeerGroupSetProperties(g, p), PEER_E_INVALID_GROUP_PROPERTIES);
    }
    PeerFreeData(p);
    CHECK_HR(PeerGroupSetProperties(g, NULL), E_INVALIDARG);
    p = NULL;
    CHECK_HR(PeerGroupGetProperties(g, &p), S_OK);
    if (p) {
      CHECK(weq(p->pwzComment, "changed") && p->ulPresenceLifetime == 900);
      CHECK(weq(p->pwzClassifier, "club"));
    }
    PeerFreeData(p);
  }
  if (!group_name) group_name = widen("missing");
  char *group_a = narrow(group_name);

  /* Offline until connected; then the creator listens at once. */
  {
    DWORD status = 0xFF;
    CHECK_HR(PeerGroupGetStatus(g, NULL), E_POINTER);
    CHECK_HR(PeerGroupGetStatus(g, &status), S_OK);
    CHECK(status == 0);
  }
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(is_listening(wait_status(g, is_listening)));

  /* Invitations: refusals, an explicit one, then the child's. */
  char *bob_a = recv_msg(in);
  char *xml_a = recv_msg(in);
  CHECK(bob_a && xml_a);
  if (!bob_a) bob_a = strdup("missing");
  if (!xml_a) xml_a = strdup("missing");
  WCHAR *xml = widen(xml_a);
  {
    GUID member = PEER_GROUP_ROLE_MEMBER, nobody = {1, 2, 3, {4, 5, 6, 7, 8, 9, 10, 11}};
    time_t now = time(NULL);
    FILETIME past = filetime_from_unix((long long)now - 3600);
    FILETIME in_an_hour = filetime_from_unix((long long)now + 3600);
    CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 0, NULL, NULL), E_POINTER);
    CHECK_HR(PeerGroupCreateInvitation(g, NULL, NULL, 0, NULL, &s), E_INVALIDARG);
    CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 1, NULL, &s), E_INVALIDARG);
    CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 1, &nobody, &s),
             PEER_E_INVALID_ROLE_PROPERTY);
    CHECK_HR(PeerGroupCreateInvitation(g, xml, &past, 0, NULL, &s), PEER_E_INVALID_TIME_PERIOD);
    CHECK_HR(PeerGroupCreateInvitation(g, u"<PEERIDENTITYINFO/>", NULL, 0, NULL, &s),
             E_INVALIDARG);
    CHECK_HR(PeerGroupCreateInvitation((HGROUP)(intptr_t)0x777, xml, NULL, 0, NULL, &s),
             PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupCreatePasswordInvitation(g, &s), PEER_E_INVALID_GROUP_PROPERTIES);
    CHECK_HR(PeerGroupCreatePasswordInvitation(g, NULL), E_POINTER);

    PWSTR explicit_inv = NULL;
    CHECK_HR(PeerGroupCreateInvitation(g, xml, &in_an_hour, 1, &member, &explicit_inv), S_OK);
    PEER_INVITATION_INFO *info = NULL;
    CHECK_HR(PeerGroupParseInvitation(explicit_inv, &info), S_OK);
    if (info) {
      char *a = narrow(alice);
      check_invitation_info(info, group_a, a, bob_a);
      free(a);
      CHECK(ticks(info->ftValidityEnd) == ticks(in_an_hour));
      CHECK(ticks(info->ftValidityStart) <= ticks(filetime_from_unix((long long)now)));
    }
    PeerFreeData(info);
    PeerFreeData(explicit_inv);
  }
  {
    PEER_INVITATION_INFO *info = NULL;
    CHECK_HR(PeerGroupParseInvitation(u"garbage", &info), E_INVALIDARG);
    CHECK_HR(PeerGroupParseInvitation(NULL, &info), E_INVALIDARG);
  }
  CHECK_HR(PeerGroupParseInvitation(u"garbage", NULL), E_POINTER);

  CHECK_HR(PeerGroupCreateInvitation(g, xml, NULL, 0, NULL, &invitation), S_OK);
  int port = invitation ? invitation_port(invitation) : 0;
  CHECK(port > 0);
  {
    char *a = narrow(alice);
    send_msg(out, group_a);
    send_msg(out, a);
    free(a);
    if (invitation) {
      send_wide(out, invitation);
    } else {
      send_msg(out, "none");
    }
  }

  /* The child joins and connects; both sides see each other. */
  char *m = recv_msg(in);
  CHECK(m && strcmp(m, "connected") == 0);
  free(m);
  CHECK(wait_status(g, is_both) == BOTH);

  /* A second handle to the same group shares its state. */
  CHECK_HR(PeerGroupOpen(alice, group_name, NULL, NULL), E_POINTER);
  CHECK_HR(PeerGroupOpen(alice, NULL, NULL, &g2), E_INVALIDARG);
  CHECK_HR(PeerGroupOpen(alice, u"not a peer name", NULL, &g2), PEER_E_INVALID_PEER_NAME);
  CHECK_HR(PeerGroupOpen(alice, u"0123456789012345678901234567890123456789.nothing", NULL, &g2),
           PEER_E_NOT_FOUND);
  CHECK_HR(PeerGroupOpen(alice, group_name, NULL, &g2), S_OK);
  CHECK(g2 != NULL && g2 != g);
  {
    DWORD status = 0;
    CHECK_HR(PeerGroupGetStatus(g2, &status), S_OK);
    CHECK(status == BOTH);
  }

  /* Closing the first handle keeps the group up; a second close of it is refused. */
  CHECK_HR(PeerGroupClose(g), S_OK);
  CHECK_HR(PeerGroupClose(g), PEER_E_INVALID_GROUP);
  {
    DWORD status = 0;
    CHECK_HR(PeerGroupGetStatus(g, &status), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupGetStatus(g2, &status), S_OK);
    CHECK(status == BOTH);
  }
  send_msg(out, "first-closed");
  m = recv_msg(in);
  CHECK(m && strcmp(m, "still-connected") == 0);
  free(m);

  /* Forged, NULL and wrong-kind handles. */
  {
    DWORD status = 0;
    HPEERENUM e = NULL;
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupGetStatus((HGROUP)(intptr_t)0x12345, &status), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupGetStatus(NULL, &status), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupClose((HGROUP)(intptr_t)0xdeadbeef0001), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupConnect((HGROUP)(intptr_t)0x12345), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupGetProperties((HGROUP)(intptr_t)0x12345, &p), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerEnumIdentities(&e), S_OK);
    CHECK_HR(PeerGroupGetStatus((HGROUP)e, &status), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupClose((HGROUP)e), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerEndEnumeration(e), S_OK); /* still open: the close above did not take it */
  }

  /* The last close takes the group offline: the child's connection drops, the port frees. */
  CHECK_HR(PeerGroupClose(g2), S_OK);
  send_msg(out, "last-closed");
  m = recv_msg(in);
  CHECK(m && strcmp(m, "dropped") == 0);
  free(m);
  CHECK(port > 0 && udp_port_free(port));

  /* Delete invalidates every handle; the group is gone from the store. */
  {
    HGROUP g3 = NULL, g4 = NULL;
    DWORD status = 0;
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupOpen(alice, group_name, NULL, &g3), S_OK);
    CHECK_HR(PeerGroupOpen(NULL, group_name, NULL, &g4), PEER_E_NOT_FOUND); /* default id */
    CHECK_HR(PeerGroupOpen(alice, group_name, NULL, &g4), S_OK);
    CHECK_HR(PeerGroupConnect(g3), S_OK);
    CHECK(is_listening(wait_status(g3, is_listening)));
    CHECK_HR(PeerGroupDelete(alice, NULL), E_INVALIDARG);
    CHECK_HR(PeerGroupDelete(alice, group_name), S_OK);
    CHECK_HR(PeerGroupGetStatus(g3, &status), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupGetProperties(g4, &p), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupConnect(g4), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupSetProperties(g4, &props), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupCreateInvitation(g3, xml, NULL, 0, NULL, &s), PEER_E_INVALID_GROUP);
    /* Closing a deleted group's handle releases it and says the handle was invalid. */
    CHECK_HR(PeerGroupClose(g3), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupClose(g3), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupClose(g4), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupOpen(alice, group_name, NULL, &g3), PEER_E_NOT_FOUND);
    CHECK_HR(PeerGroupDelete(alice, group_name), PEER_E_NOT_FOUND);
    CHECK(group_count(alice) == 0);
  }

  /* The last shutdown closes the groups still open and frees their port. */
  {
    HGROUP open_at_shutdown = NULL;
    PWSTR inv = NULL;
    DWORD status = 0;
    props = club_properties(alice);
    CHECK_HR(PeerGroupCreate(&props, &open_at_shutdown), S_OK);
    CHECK_HR(PeerGroupConnect(open_at_shutdown), S_OK);
    CHECK(is_listening(wait_status(open_at_shutdown, is_listening)));
    CHECK_HR(PeerGroupCreateInvitation(open_at_shutdown, xml, NULL, 0, NULL, &inv), S_OK);
    int port2 = inv ? invitation_port(inv) : 0;
    PeerFreeData(inv);
    CHECK(port2 > 0);
    CHECK_HR(PeerGroupShutdown(), S_OK);
    CHECK_HR(PeerGroupGetStatus(open_at_shutdown, &status), PEER_E_NOT_INITIALIZED);
    CHECK(port2 > 0 && udp_port_free(port2));
    CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
    CHECK_HR(PeerGroupGetStatus(open_at_shutdown, &status), PEER_E_INVALID_GROUP);
    CHECK_HR(PeerGroupShutdown(), S_OK);
  }

  free(xml);
  free(xml_a);
  free(bob_a);
  free(group_a);
  free(group_name);
  PeerFreeData(invitation);
  PeerFreeData(alice);
}

int main(void) {
  HGROUP g = NULL;
  DWORD status = 0;
  PEER_GROUP_PROPERTIES props = club_properties(NULL);

  /* Before startup: pointer checks first, then PEER_E_NOT_INITIALIZED. */
  CHECK_HR(PeerGroupCreate(&props, NULL), E_POINTER);
  CHECK_HR(PeerGroupCreate(&props, &g), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerGroupGetStatus((HGROUP)(intptr_t)0x1234, &status), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerGroupClose((HGROUP)(intptr_t)0x1234), PEER_E_NOT_INITIALIZED);
  {
    PEER_INVITATION_INFO *info = NULL;
    CHECK_HR(PeerGroupParseInvitation(u"x", &info), PEER_E_NOT_INITIALIZED);
  }

  return run_pair("group", child, parent);
}
