/* The record functions in one process: the creator of a group is synchronized at once, so
 * records are added, read, updated, enumerated, searched and deleted without connecting.
 * Checks the round trip of every field, the version count, enumeration pages freed by one
 * PeerFreeData each, and the refusals (NULL pointers, dwSize, past expiration, bad
 * attributes, bad search, forged handle). ASan/LSan (set by the harness) catch leaks. */
#define _POSIX_C_SOURCE 200809L
#include <stdint.h>
#include <time.h>
#include "harness.h"

static const GUID TYPE_A = {0x11223344, 0x5566, 0x7788, {0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}};
static const GUID TYPE_B = {0xa1b2c3d4, 0xe5f6, 0x0718, {0x29, 0x3a, 0x4b, 0x5c, 0x6d, 0x7e, 0x8f, 0x90}};

#define ATTRS u"<attributes><attribute name=\"n\" type=\"int\">5</attribute></attributes>"
#define SEARCH u"<peersearch><clause attrib=\"n\" type=\"int\" compare=\"equal\">5</clause></peersearch>"

/* Now plus `secs` seconds as a FILETIME (100 ns ticks since 1601), whole milliseconds. */
static FILETIME filetime_in(long long secs) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + secs * 1000;
  unsigned long long ticks = (unsigned long long)(ms + 11644473600000LL) * 10000ULL;
  FILETIME ft = {(DWORD)ticks, (DWORD)(ticks >> 32)};
  return ft;
}

static int ft_eq(FILETIME a, FILETIME b) {
  return a.dwLowDateTime == b.dwLowDateTime && a.dwHighDateTime == b.dwHighDateTime;
}

static int guid_eq(const GUID *a, const GUID *b) { return memcmp(a, b, sizeof(GUID)) == 0; }

static int wide_eq(const WCHAR *a, const WCHAR *b) {
  if (!a || !b) return 0;
  while (*a && *a == *b) a++, b++;
  return *a == *b;
}

static PEER_RECORD new_record(const GUID *type, PCWSTR attributes, BYTE *data, ULONG n,
                              FILETIME expires) {
  PEER_RECORD r;
  memset(&r, 0, sizeof r);
  r.dwSize = sizeof r;
  r.type = *type;
  r.pwzAttributes = (PWSTR)attributes;
  r.ftExpiration = expires;
  r.data.cbData = n;
  r.data.pbData = data;
  return r;
}

/* Drains an enumeration page by page (two items a page); counts the items of `type` (NULL:
 * any) and checks each is a whole PEER_RECORD. */
static ULONG drain(HPEERENUM e, const GUID *type) {
  ULONG total = 0, left = 0xFFFF;
  CHECK_HR(PeerGetItemCount(e, &left), S_OK);
  for (;;) {
    ULONG n = 2;
    PVOID *items = NULL;
    CHECK_HR(PeerGetNextItem(e, &n, &items), S_OK);
    if (n == 0) {
      CHECK(items == NULL);
      break;
    }
    for (ULONG i = 0; i < n; i++) {
      PEER_RECORD *r = (PEER_RECORD *)items[i];
      CHECK(r->dwSize == sizeof(PEER_RECORD));
      CHECK(r->pwzCreatorId != NULL && r->pwzAttributes != NULL);
      if (!type || guid_eq(&r->type, type)) total++;
    }
    PeerFreeData(items);
  }
  CHECK(left == total || type != NULL);
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return total;
}

int main(void) {
  PEER_VERSION_DATA v;
  PWSTR alice = NULL;
  HGROUP g = NULL;
  HPEERENUM e = NULL;
  GUID id1, id2, id3, none;
  PEER_RECORD *got = NULL;
  BYTE data1[] = {1, 2, 3, 4, 5}, data2[] = {42}, data3[] = {7, 7};
  FILETIME exp = filetime_in(3600);

  /* Nothing before startup. */
  {
    PEER_RECORD r = new_record(&TYPE_A, ATTRS, data1, sizeof data1, exp);
    CHECK_HR(PeerGroupAddRecord((HGROUP)(intptr_t)0x1234, &r, &id1), PEER_E_NOT_INITIALIZED);
  }

  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);
  PEER_GROUP_PROPERTIES props;
  memset(&props, 0, sizeof props);
  props.dwSize = sizeof props;
  props.pwzClassifier = u"records";
  props.pwzCreatorPeerName = alice;
  props.pwzFriendlyName = u"Records";
  props.ulMemberDataLifetime = 86400;
  props.ulPresenceLifetime = 600;
  props.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION;
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);

  /* Add: two of type A, one of type B. */
  PEER_RECORD r1 = new_record(&TYPE_A, ATTRS, data1, sizeof data1, exp);
  PEER_RECORD r2 = new_record(&TYPE_A, NULL, data2, sizeof data2, exp);
  PEER_RECORD r3 = new_record(&TYPE_B, ATTRS, data3, sizeof data3, exp);
  CHECK_HR(PeerGroupAddRecord(g, &r1, &id1), S_OK);
  CHECK_HR(PeerGroupAddRecord(g, &r2, &id2), S_OK);
  CHECK_HR(PeerGroupAddRecord(g, &r3, &id3), S_OK);
  CHECK(!guid_eq(&id1, &id2) && !guid_eq(&id1, &id3) && !guid_eq(&id2, &id3));

  /* Add refusals. */
  CHECK_HR(PeerGroupAddRecord(g, &r1, NULL), E_POINTER);
  CHECK_HR(PeerGroupAddRecord(g, NULL, &none), E_INVALIDARG);
  {
    PEER_RECORD bad = r1;
    bad.dwSize = sizeof bad - 1;
    CHECK_HR(PeerGroupAddRecord(g, &bad, &none), E_INVALIDARG);
    bad = r1;
    bad.ftExpiration = filetime_in(-60);
    CHECK_HR(PeerGroupAddRecord(g, &bad, &none), PEER_E_INVALID_RECORD_EXPIRATION);
    bad = r1;
    bad.pwzAttributes = u"<attributes><attribute name=\"n\"";
    CHECK_HR(PeerGroupAddRecord(g, &bad, &none), PEER_E_INVALID_ATTRIBUTES);
    CHECK_HR(PeerGroupAddRecord((HGROUP)(intptr_t)0x4242, &r1, &none), PEER_E_INVALID_GROUP);
    /* A type whose last 12 bytes are zero is reserved to the infrastructure. */
    GUID reserved = {0x7, 0, 0, {0}};
    bad = new_record(&reserved, NULL, NULL, 0, exp);
    CHECK_HR(PeerGroupAddRecord(g, &bad, &none), PEER_E_NOT_AUTHORIZED);
    /* Data with a length and no bytes. */
    bad = r1;
    bad.data.pbData = NULL;
    CHECK_HR(PeerGroupAddRecord(g, &bad, &none), E_INVALIDARG);
  }

  /* Get: every field round-trips. */
  CHECK_HR(PeerGroupGetRecord(g, &id1, NULL), E_POINTER);
  CHECK_HR(PeerGroupGetRecord(g, NULL, &got), E_INVALIDARG);
  CHECK_HR(PeerGroupGetRecord((HGROUP)(intptr_t)0x4242, &id1, &got), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupGetRecord(g, &id1, &got), S_OK);
  if (got) {
    CHECK(got->dwSize == sizeof(PEER_RECORD));
    CHECK(guid_eq(&got->type, &TYPE_A));
    CHECK(guid_eq(&got->id, &id1));
    CHECK(got->dwVersion == 1);
    CHECK(wide_eq(got->pwzCreatorId, alice));
    CHECK(wide_eq(got->pwzModifiedById, alice));
    CHECK(wide_eq(got->pwzAttributes, ATTRS));
    CHECK(got->data.cbData == sizeof data1 &&
          memcmp(got->data.pbData, data1, sizeof data1) == 0);
    CHECK(ft_eq(got->ftExpiration, exp));
    CHECK(got->securityData.cbData > 0 && got->securityData.pbData != NULL);
    PeerFreeData(got);
    got = NULL;
  }

  /* Update: version 2, new data and expiration. */
  {
    FILETIME later = filetime_in(7200);
    PEER_RECORD u = new_record(&TYPE_A, ATTRS, data2, sizeof data2, later);
    u.id = id1;
    CHECK_HR(PeerGroupUpdateRecord(g, NULL), E_INVALIDARG);
    PEER_RECORD bad = u;
    bad.dwSize = 0;
    CHECK_HR(PeerGroupUpdateRecord(g, &bad), E_INVALIDARG);
    CHECK_HR(PeerGroupUpdateRecord((HGROUP)(intptr_t)0x4242, &u), PEER_E_INVALID_GROUP);
    bad = u;
    bad.ftExpiration = filetime_in(1800); /* earlier than the stored expiration */
    CHECK_HR(PeerGroupUpdateRecord(g, &bad), PEER_E_INVALID_RECORD_EXPIRATION);
    bad = u;
    bad.pwzAttributes = u"<attributes>";
    CHECK_HR(PeerGroupUpdateRecord(g, &bad), PEER_E_INVALID_ATTRIBUTES);
    bad = u;
    bad.id = TYPE_B; /* no record has this id */
    CHECK_HR(PeerGroupUpdateRecord(g, &bad), PEER_E_RECORD_NOT_FOUND);
    CHECK_HR(PeerGroupUpdateRecord(g, &u), S_OK);
    CHECK_HR(PeerGroupGetRecord(g, &id1, &got), S_OK);
    if (got) {
      CHECK(got->dwVersion == 2);
      CHECK(guid_eq(&got->id, &id1) && guid_eq(&got->type, &TYPE_A));
      CHECK(got->data.cbData == 1 && got->data.pbData[0] == 42);
      CHECK(ft_eq(got->ftExpiration, later));
      PeerFreeData(got);
      got = NULL;
    }
  }

  /* Enumerate: all three, two of type A, one of type B. */
  CHECK_HR(PeerGroupEnumRecords(g, NULL, NULL), E_POINTER);
  CHECK_HR(PeerGroupEnumRecords((HGROUP)(intptr_t)0x4242, NULL, &e), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupEnumRecords(g, NULL, &e), S_OK);
  CHECK(drain(e, NULL) == 3);
  CHECK_HR(PeerGroupEnumRecords(g, &TYPE_A, &e), S_OK);
  CHECK(drain(e, &TYPE_A) == 2);
  CHECK_HR(PeerGroupEnumRecords(g, &TYPE_B, &e), S_OK);
  CHECK(drain(e, &TYPE_B) == 1);

  /* Search: the two records with n = 5. */
  CHECK_HR(PeerGroupSearchRecords(g, SEARCH, NULL), E_POINTER);
  CHECK_HR(PeerGroupSearchRecords(g, NULL, &e), E_INVALIDARG);
  CHECK_HR(PeerGroupSearchRecords(g, u"<peersearch><bogus/></peersearch>", &e),
           PEER_E_INVALID_SEARCH);
  CHECK_HR(PeerGroupSearchRecords((HGROUP)(intptr_t)0x4242, SEARCH, &e), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupSearchRecords(g, SEARCH, &e), S_OK);
  CHECK(drain(e, NULL) == 2);

  /* Delete, then the record is gone. */
  CHECK_HR(PeerGroupDeleteRecord(g, NULL), E_INVALIDARG);
  CHECK_HR(PeerGroupDeleteRecord((HGROUP)(intptr_t)0x4242, &id2), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupDeleteRecord(g, &id2), S_OK);
  CHECK_HR(PeerGroupGetRecord(g, &id2, &got), PEER_E_RECORD_NOT_FOUND);
  CHECK(got == NULL);
  CHECK_HR(PeerGroupDeleteRecord(g, &id2), PEER_E_RECORD_NOT_FOUND);
  CHECK_HR(PeerGroupEnumRecords(g, NULL, &e), S_OK);
  CHECK(drain(e, NULL) == 2);

  CHECK_HR(PeerGroupClose(g), S_OK);
  CHECK_HR(PeerGroupAddRecord(g, &r1, &none), PEER_E_INVALID_GROUP);
  PeerFreeData(alice);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  return summary("records");
}
