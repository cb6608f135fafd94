/* PeerGroupPasswordJoin through the C ABI, under AddressSanitizer and LeakSanitizer: the
 * parent creates a group with password authentication and hands a password invitation to a
 * forked child (its own PEERGROUP_HOME, its own PeerGroupStartup after the fork). The child's
 * wrong password is refused with HRESULT_FROM_WIN32(ERROR_INVALID_PASSWORD) and stores
 * nothing; the right one joins (S_OK), connects, and a second join answers
 * PEER_S_ALREADY_A_MEMBER. The parent's summary counts the child's exit status. */
#define _GNU_SOURCE
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include "procs.h"

static ULONG group_count(PCWSTR identity) {
  HPEERENUM e = NULL;
  ULONG n = 99;
  CHECK_HR(PeerEnumGroups(identity, &e), S_OK);
  CHECK_HR(PeerGetItemCount(e, &n), S_OK);
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return n;
}

static int child(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR me = NULL;
  HGROUP g = NULL, again = NULL;
  setenv("PEERGROUP_HOME", home, 1);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"joiner", u"Joiner", 0, &me), S_OK);
  char *invitation = recv_msg(in);
  CHECK(invitation != NULL);
  if (invitation) {
    WCHAR *inv = widen(invitation);
    CHECK_HR(PeerGroupPasswordJoin(me, inv, NULL, NULL, &g), E_INVALIDARG);
    CHECK_HR(PeerGroupJoin(me, inv, NULL, &g), E_INVALIDARG); /* needs the password */
    CHECK_HR(PeerGroupPasswordJoin(me, inv, u"not it", NULL, &g), 0x80070056);
    CHECK(group_count(me) == 0);
    CHECK_HR(PeerGroupPasswordJoin(me, inv, u"open sesame", NULL, &g), S_OK);
    CHECK(group_count(me) == 1);
    CHECK_HR(PeerGroupConnect(g), S_OK);
    CHECK(wait_status(g, is_both) == BOTH);
    CHECK_HR(PeerGroupPasswordJoin(me, inv, u"open sesame", NULL, &again), PEER_S_ALREADY_A_MEMBER);
    CHECK_HR(PeerGroupClose(again), S_OK);
    CHECK_HR(PeerGroupClose(g), S_OK);
    free(inv);
    free(invitation);
  }
  send_msg(out, "done");
  PeerFreeData(me);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  return summary("password-child");
}

int main(void) {
  child_t c = start_child(child, "child");
  if (c.pid < 0) return 2;

  PEER_VERSION_DATA v;
  PWSTR creator = NULL, invitation = NULL;
  HGROUP g = NULL;
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"creator", u"Creator", 0, &creator), S_OK);
  PEER_GROUP_PROPERTIES props;
  memset(&props, 0, sizeof props);
  props.dwSize = sizeof props;
  props.pwzClassifier = u"pw";
  props.pwzFriendlyName = u"Password Club";
  props.pwzCreatorPeerName = creator;
  props.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION | PEER_GROUP_PASSWORD_AUTHENTICATION;
  props.pwzGroupPassword = u"open sesame";
  props.groupPasswordRole = PEER_GROUP_ROLE_MEMBER;
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(wait_status(g, is_listening) & PEER_GROUP_STATUS_LISTENING);
  CHECK_HR(PeerGroupCreatePasswordInvitation(g, &invitation), S_OK);
  {
    PEER_INVITATION_INFO *info = NULL;
    CHECK_HR(PeerGroupParseInvitation(invitation, &info), S_OK);
    if (info) {
      CHECK(info->authScheme == PEER_GROUP_PASSWORD_AUTHENTICATION);
      CHECK(info->pSubjectPublicKey == NULL);
      CHECK(info->cRoles == 1 && memcmp(&info->pRoles[0], &PEER_GROUP_ROLE_MEMBER, sizeof(GUID)) == 0);
    }
    PeerFreeData(info);
  }
  send_wide(c.out, invitation);
  char *done = recv_msg(c.in);
  CHECK(done != NULL && strcmp(done, "done") == 0);
  free(done);
  int status = 0;
  CHECK(waitpid(c.pid, &status, 0) == c.pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_HR(PeerGroupClose(g), S_OK);
  PeerFreeData(invitation);
  PeerFreeData(creator);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  close(c.out);
  close(c.in);
  return summary("password");
}
