/* PEER_GROUP_EVENT_AUTHENTICATION_FAILED and PeerGroupResumePasswordAuthentication through
 * the C ABI, under ASan/UBSan/LSan, in two processes. The parent's group takes passwords and
 * holds a registration for authentication failures; a forked child (its own home) tries a
 * wrong password: the parent gets the event (reason 0x80070056 in hrConnectionFailedReason)
 * and password authentication is suspended, so the child's right password is refused with
 * PEER_E_NOT_AUTHORIZED; after PeerGroupResumePasswordAuthentication it joins. Refusals of
 * the resume call: bad handles, a registration not for failures, nothing suspended. */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include "procs.h"


static int child(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR me = NULL;
  HGROUP g = NULL;
  setenv("PEERGROUP_HOME", home, 1);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"joiner", u"Joiner", 0, &me), S_OK);
  char *invitation = recv_msg(in);
  CHECK(invitation != NULL);
  if (invitation) {
    WCHAR *inv = widen(invitation);
    CHECK_HR(PeerGroupPasswordJoin(me, inv, u"not it", NULL, &g), 0x80070056);
    send_msg(out, "tried");
    char *go = recv_msg(in); /* the parent saw the event */
    CHECK(go != NULL);
    free(go);
    CHECK_HR(PeerGroupPasswordJoin(me, inv, u"open sesame", NULL, &g), PEER_E_NOT_AUTHORIZED);
    send_msg(out, "refused");
    go = recv_msg(in); /* the parent resumed */
    CHECK(go != NULL);
    free(go);
    CHECK_HR(PeerGroupPasswordJoin(me, inv, u"open sesame", NULL, &g), S_OK);
    CHECK_HR(PeerGroupClose(g), S_OK);
    free(inv);
    free(invitation);
  }
  send_msg(out, "done");
  PeerFreeData(me);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  return summary("password_auth-child");
}

/* The next event of `h`, waiting up to WAIT_MS on its eventfd. */
static PEER_GROUP_EVENT_DATA *next_event(HPEEREVENT h, int efd) {
  for (int waited = 0; waited <= WAIT_MS; waited += 50) {
    PEER_GROUP_EVENT_DATA *d = NULL;
    HRESULT hr = PeerGroupGetEventData(h, &d);
    if (hr == S_OK && d) return d;
    struct pollfd p = {efd, POLLIN, 0};
    if (poll(&p, 1, 50) > 0) {
      uint64_t n;
      CHECK(read(efd, &n, sizeof n) == (ssize_t)sizeof n);
    }
  }
  return NULL;
}

int main(void) {
  CHECK_HR(PeerGroupResumePasswordAuthentication((HGROUP)(intptr_t)0x12, (HPEEREVENT)(intptr_t)0x34),
           PEER_E_NOT_INITIALIZED);
  child_t c = start_child(child, "child");
  if (c.pid < 0) return 2;

  PEER_VERSION_DATA v;
  PWSTR creator = NULL, invitation = NULL;
  HGROUP g = NULL;
  HPEEREVENT failures = NULL, status_only = NULL;
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"creator", u"Creator", 0, &creator), S_OK);
  PEER_GROUP_PROPERTIES props;
  memset(&props, 0, sizeof props);
  props.dwSize = sizeof props;
  props.pwzClassifier = u"pwauth";
  props.pwzCreatorPeerName = creator;
  props.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION | PEER_GROUP_PASSWORD_AUTHENTICATION;
  props.pwzGroupPassword = u"open sesame";
  props.groupPasswordRole = PEER_GROUP_ROLE_MEMBER;
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(wait_status(g, is_listening) & PEER_GROUP_STATUS_LISTENING);

  int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC), efd2 = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  PEER_GROUP_EVENT_REGISTRATION auth = {PEER_GROUP_EVENT_AUTHENTICATION_FAILED, NULL};
  PEER_GROUP_EVENT_REGISTRATION status = {PEER_GROUP_EVENT_STATUS_CHANGED, NULL};
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd), 1, &auth, &failures), S_OK);
  CHECK_HR(PeerGroupRegisterEvent(g, as_handle(efd2), 1, &status, &status_only), S_OK);

  /* Refusals: bad handles, a registration not for failures, nothing suspended yet. */
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, NULL), E_INVALIDARG);
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, (HPEEREVENT)(intptr_t)0x4242), E_INVALIDARG);
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, (HPEEREVENT)g), E_INVALIDARG);
  CHECK_HR(PeerGroupResumePasswordAuthentication((HGROUP)(intptr_t)0x4242, failures), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, status_only), E_INVALIDARG);
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, failures), PEER_E_NOT_FOUND);

  CHECK_HR(PeerGroupCreatePasswordInvitation(g, &invitation), S_OK);
  send_wide(c.out, invitation);
  char *msg = recv_msg(c.in);
  CHECK(msg != NULL && strcmp(msg, "tried") == 0);
  free(msg);
  PEER_GROUP_EVENT_DATA *d = next_event(failures, efd);
  CHECK(d != NULL);
  if (d) {
    CHECK(d->eventType == PEER_GROUP_EVENT_AUTHENTICATION_FAILED);
    CHECK(d->hrConnectionFailedReason == (HRESULT)0x80070056);
    PeerFreeData(d);
  }
  send_msg(c.out, "suspended");
  msg = recv_msg(c.in);
  CHECK(msg != NULL && strcmp(msg, "refused") == 0);
  free(msg);
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, failures), S_OK);
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, failures), PEER_E_NOT_FOUND);
  send_msg(c.out, "resumed");
  msg = recv_msg(c.in);
  CHECK(msg != NULL && strcmp(msg, "done") == 0);
  free(msg);

  int wstatus = 0;
  CHECK(waitpid(c.pid, &wstatus, 0) == c.pid);
  CHECK(WIFEXITED(wstatus) && WEXITSTATUS(wstatus) == 0);
  CHECK_HR(PeerGroupUnregisterEvent(failures), S_OK);
  CHECK_HR(PeerGroupUnregisterEvent(status_only), S_OK);
  CHECK_HR(PeerGroupResumePasswordAuthentication(g, failures), E_INVALIDARG);
  CHECK_HR(PeerGroupClose(g), S_OK);
  close(efd);
  close(efd2);
  PeerFreeData(invitation);
  PeerFreeData(creator);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  close(c.out);
  close(c.in);
  return summary("password_auth");
}
