/* PeerGroupExportConfig/ImportConfig and the peer time functions through the C ABI, under
 * ASan/UBSan/LSan, in two processes. The parent creates a group (Alice), adds a record and
 * connects; it also holds Bob, who joins offline: his peer time is not ready. It exports
 * Bob's identity and his group configuration and hands both to a forked child with a home of
 * its own. The child's import is refused without the identity (PEER_E_NOT_FOUND), with a
 * wrong password (0x80070056, nothing stored), for garbage (E_INVALIDARG) and again without
 * fOverwrite (PEER_E_ALREADY_EXISTS); then the child opens the group, connects to Alice,
 * sees her record, and its peer time works once it synchronised. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdint.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include "procs.h"

static const GUID NOTES = {0x5eedc0de, 0x1111, 0x2222, {0x33, 0x44, 0x55, 0x66, 0x77, 0x88, 0x99, 0xaa}};

static FILETIME filetime_in(long long secs) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + secs * 1000;
  unsigned long long ticks = (unsigned long long)(ms + 11644473600000LL) * 10000ULL;
  FILETIME ft = {(DWORD)ticks, (DWORD)(ticks >> 32)};
  return ft;
}

static ULONG group_count(PCWSTR identity) {
  HPEERENUM e = NULL;
  ULONG n = 99;
  CHECK_HR(PeerEnumGroups(identity, &e), S_OK);
  CHECK_HR(PeerGetItemCount(e, &n), S_OK);
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return n;
}

static ULONG record_count(HGROUP g) {
  HPEERENUM e = NULL;
  ULONG n = 0;
  if (PeerGroupEnumRecords(g, &NOTES, &e) != S_OK) return 0;
  PeerGetItemCount(e, &n);
  PeerEndEnumeration(e);
  return n;
}

/* Peer time round trip: S_OK both ways, and the value (sub-millisecond ticks too) is kept. */
static void check_peer_time_works(HGROUP g) {
  FILETIME in = {0x12345679, 0x01dc0000}, utc, back;
  CHECK_HR(PeerGroupPeerTimeToUniversalTime(g, &in, &utc), S_OK);
  CHECK(utc.dwLowDateTime == in.dwLowDateTime && utc.dwHighDateTime == in.dwHighDateTime);
  CHECK_HR(PeerGroupUniversalTimeToPeerTime(g, &utc, &back), S_OK);
  CHECK(back.dwLowDateTime == in.dwLowDateTime && back.dwHighDateTime == in.dwHighDateTime);
}

static void check_peer_time_not_ready(HGROUP g) {
  FILETIME in = {1, 1}, out;
  CHECK_HR(PeerGroupPeerTimeToUniversalTime(g, &in, &out), PEER_E_GROUP_NOT_READY);
  CHECK_HR(PeerGroupUniversalTimeToPeerTime(g, &in, &out), PEER_E_GROUP_NOT_READY);
}

static int child(int in, int out, const char *home) {
  PEER_VERSION_DATA v;
  PWSTR identity = NULL, group = NULL, imported = NULL;
  HGROUP g = NULL;
  setenv("PEERGROUP_HOME", home, 1);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  char *id_xml_a = recv_msg(in);
  char *config_a = recv_msg(in);
  char *bob_a = recv_msg(in);
  CHECK(id_xml_a && config_a && bob_a);
  if (!id_xml_a || !config_a || !bob_a) goto done;
  WCHAR *id_xml = widen(id_xml_a), *config = widen(config_a), *bob = widen(bob_a);

  /* Pointer checks, then: the identity must be here first. */
  CHECK_HR(PeerGroupImportConfig(config, u"move", 0, NULL, &group), E_POINTER);
  CHECK_HR(PeerGroupImportConfig(config, u"move", 0, &identity, NULL), E_POINTER);
  CHECK_HR(PeerGroupImportConfig(NULL, u"move", 0, &identity, &group), E_INVALIDARG);
  CHECK_HR(PeerGroupImportConfig(config, NULL, 0, &identity, &group), E_INVALIDARG);
  CHECK_HR(PeerGroupImportConfig(config, u"move", 0, &identity, &group), PEER_E_NOT_FOUND);
  CHECK_HR(PeerIdentityImport(id_xml, u"id pw", &imported), S_OK);
  CHECK(weq(imported, bob_a));

  /* Refusals store nothing. */
  CHECK_HR(PeerGroupImportConfig(config, u"wrong", 0, &identity, &group), 0x80070056);
  CHECK_HR(PeerGroupImportConfig(u"<PEERGROUPCONFIG VERSION=\"1.0\">", u"move", 0, &identity, &group),
           E_INVALIDARG);
  CHECK_HR(PeerGroupImportConfig(u"garbage", u"move", 0, &identity, &group), E_INVALIDARG);
  CHECK(identity == NULL && group == NULL);
  CHECK(group_count(bob) == 0);

  CHECK_HR(PeerGroupImportConfig(config, u"move", 0, &identity, &group), S_OK);
  CHECK(weq(identity, bob_a));
  CHECK(group_count(bob) == 1);
  {
    PWSTR i2 = NULL, g2 = NULL;
    CHECK_HR(PeerGroupImportConfig(config, u"move", 0, &i2, &g2), PEER_E_ALREADY_EXISTS);
    CHECK_HR(PeerGroupImportConfig(config, u"move", 1, &i2, &g2), S_OK);
    PeerFreeData(i2);
    PeerFreeData(g2);
  }

  /* Open, connect to Alice at the exported addresses, and see her record. */
  if (group) {
    CHECK_HR(PeerGroupOpen(identity, group, NULL, &g), S_OK);
    check_peer_time_not_ready(g);
    CHECK_HR(PeerGroupConnect(g), S_OK);
    CHECK(wait_status(g, is_both) == BOTH);
    ULONG n = 0;
    for (int waited = 0; waited <= WAIT_MS && (n = record_count(g)) == 0; waited += 50) sleep_ms(50);
    CHECK(n == 1);
    check_peer_time_works(g);
    CHECK_HR(PeerGroupClose(g), S_OK);
  }
  free(id_xml);
  free(config);
  free(bob);
done:
  free(id_xml_a);
  free(config_a);
  free(bob_a);
  send_msg(out, "done");
  PeerFreeData(identity);
  PeerFreeData(group);
  PeerFreeData(imported);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  return summary("config-child");
}

int main(void) {
  PEER_VERSION_DATA v;
  PWSTR alice = NULL, bob = NULL, bob_xml = NULL, invitation = NULL, config = NULL, id_export = NULL;
  HGROUP g = NULL, joined = NULL;
  FILETIME ft = {0, 0}, out;

  /* Before startup: pointer checks first, then PEER_E_NOT_INITIALIZED. */
  CHECK_HR(PeerGroupPeerTimeToUniversalTime((HGROUP)(intptr_t)0x1234, &ft, NULL), E_POINTER);
  CHECK_HR(PeerGroupPeerTimeToUniversalTime((HGROUP)(intptr_t)0x1234, NULL, &out), E_INVALIDARG);
  CHECK_HR(PeerGroupUniversalTimeToPeerTime((HGROUP)(intptr_t)0x1234, &ft, &out), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerGroupExportConfig((HGROUP)(intptr_t)0x1234, u"pw", &config), PEER_E_NOT_INITIALIZED);
  {
    PWSTR i = NULL, gr = NULL;
    CHECK_HR(PeerGroupImportConfig(u"x", u"pw", 0, &i, &gr), PEER_E_NOT_INITIALIZED);
  }
  child_t c = start_child(child, "moved");
  if (c.pid < 0) return 2;

  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);
  CHECK_HR(PeerIdentityCreate(u"bob", u"Bob", 0, &bob), S_OK);
  PEER_GROUP_PROPERTIES props;
  memset(&props, 0, sizeof props);
  props.dwSize = sizeof props;
  props.pwzClassifier = u"cfg";
  props.pwzFriendlyName = u"Config Club";
  props.pwzCreatorPeerName = alice;
  props.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION;
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);

  /* The creator is synchronised from the start; bad pointers and handles first. */
  CHECK_HR(PeerGroupPeerTimeToUniversalTime(g, &ft, NULL), E_POINTER);
  CHECK_HR(PeerGroupPeerTimeToUniversalTime(g, NULL, &out), E_INVALIDARG);
  CHECK_HR(PeerGroupUniversalTimeToPeerTime(g, NULL, &out), E_INVALIDARG);
  CHECK_HR(PeerGroupUniversalTimeToPeerTime((HGROUP)(intptr_t)0x4242, &ft, &out), PEER_E_INVALID_GROUP);
  check_peer_time_works(g);

  BYTE data[] = {'h', 'i'};
  PEER_RECORD r;
  memset(&r, 0, sizeof r);
  r.dwSize = sizeof r;
  r.type = NOTES;
  r.ftExpiration = filetime_in(3600);
  r.data.cbData = sizeof data;
  r.data.pbData = data;
  GUID id;
  CHECK_HR(PeerGroupAddRecord(g, &r, &id), S_OK);
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK(wait_status(g, is_listening) & PEER_GROUP_STATUS_LISTENING);

  /* Bob joins offline here: not synchronised, so no peer time yet; his export carries the
   * invitation's addresses (Alice's). */
  CHECK_HR(PeerIdentityGetXML(bob, &bob_xml), S_OK);
  CHECK_HR(PeerGroupCreateInvitation(g, bob_xml, NULL, 0, NULL, &invitation), S_OK);
  CHECK_HR(PeerGroupJoin(bob, invitation, NULL, &joined), S_OK);
  check_peer_time_not_ready(joined);
  CHECK_HR(PeerGroupExportConfig(joined, u"move", NULL), E_POINTER);
  CHECK_HR(PeerGroupExportConfig(joined, NULL, &config), E_INVALIDARG);
  CHECK_HR(PeerGroupExportConfig((HGROUP)(intptr_t)0x4242, u"move", &config), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupExportConfig(joined, u"move", &config), S_OK);
  CHECK(config != NULL && config[0] == u'<');
  CHECK_HR(PeerIdentityExport(bob, u"id pw", &id_export), S_OK);
  CHECK_HR(PeerGroupClose(joined), S_OK);
  CHECK_HR(PeerGroupExportConfig(joined, u"move", &config), PEER_E_INVALID_GROUP);

  if (id_export && config) {
    send_wide(c.out, id_export);
    send_wide(c.out, config);
    send_wide(c.out, bob);
  }
  char *done = recv_msg(c.in);
  CHECK(done != NULL && strcmp(done, "done") == 0);
  free(done);
  int status = 0;
  CHECK(waitpid(c.pid, &status, 0) == c.pid);
  CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0);
  CHECK_HR(PeerGroupClose(g), S_OK);
  PeerFreeData(config);
  PeerFreeData(id_export);
  PeerFreeData(invitation);
  PeerFreeData(bob_xml);
  PeerFreeData(bob);
  PeerFreeData(alice);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  close(c.out);
  close(c.in);
  return summary("config");
}
