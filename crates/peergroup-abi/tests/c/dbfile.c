/* PeerGroupExportDatabase and PeerGroupImportDatabase in one process: the creator exports its
 * records (live ones and a tombstone), the group's database file is removed while the group
 * is closed, the group is opened again and imports the file: EnumRecords and SearchRecords
 * give the same records, field by field. A truncated file, a garbage file and a missing file
 * are refused and change nothing; export and import are refused once the group connected.
 * ASan/UBSan/LSan (set by the harness) check the memory. */
#define _XOPEN_SOURCE 700
#include <ftw.h>
#include <stdint.h>
#include <time.h>
#include <unistd.h>
#include "harness.h"

static const GUID TYPE_A = {0x11223344, 0x5566, 0x7788, {0x99, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff, 0x01}};

#define ATTRS u"<attributes><attribute name=\"n\" type=\"int\">5</attribute></attributes>"
#define SEARCH u"<peersearch><clause attrib=\"N\" type=\"int\" compare=\"greaterorequal\">5</clause></peersearch>"
#define MAX_RECORDS 16

static FILETIME filetime_in(long long secs) {
  struct timespec ts;
  clock_gettime(CLOCK_REALTIME, &ts);
  long long ms = (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + secs * 1000;
  unsigned long long ticks = (unsigned long long)(ms + 11644473600000LL) * 10000ULL;
  FILETIME ft = {(DWORD)ticks, (DWORD)(ticks >> 32)};
  return ft;
}

static PEER_RECORD new_record(PCWSTR attributes, BYTE *data, ULONG n, FILETIME expires) {
  PEER_RECORD r;
  memset(&r, 0, sizeof r);
  r.dwSize = sizeof r;
  r.type = TYPE_A;
  r.pwzAttributes = (PWSTR)attributes;
  r.ftExpiration = expires;
  r.data.cbData = n;
  r.data.pbData = data;
  return r;
}

/* What a record is, for comparing two enumerations: the fixed fields, the attributes as
 * ASCII, and the data and security bytes. */
typedef struct {
  GUID type, id;
  DWORD version, flags;
  FILETIME created, expires, modified;
  char *attributes, *creator, *modifier;
  BYTE data[64];
  ULONG data_len, security_len;
} snap;

static void snap_free(snap *s, ULONG n) {
  for (ULONG i = 0; i < n; i++) {
    free(s[i].attributes);
    free(s[i].creator);
    free(s[i].modifier);
  }
}

/* Drains an enumeration into `out` (at most MAX_RECORDS); returns the count. */
static ULONG collect(HPEERENUM e, snap *out) {
  ULONG total = 0;
  for (;;) {
    ULONG n = 3;
    PVOID *items = NULL;
    CHECK_HR(PeerGetNextItem(e, &n, &items), S_OK);
    if (n == 0) break;
    for (ULONG i = 0; i < n && total < MAX_RECORDS; i++) {
      PEER_RECORD *r = (PEER_RECORD *)items[i];
      snap *s = &out[total++];
      memset(s, 0, sizeof *s);
      s->type = r->type;
      s->id = r->id;
      s->version = r->dwVersion;
      s->flags = r->dwFlags;
      s->created = r->ftCreation;
      s->expires = r->ftExpiration;
      s->modified = r->ftLastModified;
      s->attributes = narrow(r->pwzAttributes);
      s->creator = narrow(r->pwzCreatorId);
      s->modifier = narrow(r->pwzModifiedById);
      s->data_len = r->data.cbData;
      if (r->data.cbData <= sizeof s->data && r->data.cbData > 0)
        memcpy(s->data, r->data.pbData, r->data.cbData);
      s->security_len = r->securityData.cbData;
    }
    PeerFreeData(items);
  }
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return total;
}

static int same(const snap *a, ULONG na, const snap *b, ULONG nb) {
  if (na != nb) return 0;
  for (ULONG i = 0; i < na; i++) {
    const snap *x = &a[i], *y = &b[i];
    if (memcmp(&x->type, &y->type, sizeof(GUID)) || memcmp(&x->id, &y->id, sizeof(GUID)) ||
        x->version != y->version || x->flags != y->flags ||
        memcmp(&x->created, &y->created, sizeof(FILETIME)) ||
        memcmp(&x->expires, &y->expires, sizeof(FILETIME)) ||
        memcmp(&x->modified, &y->modified, sizeof(FILETIME)) ||
        strcmp(x->attributes, y->attributes) || strcmp(x->creator, y->creator) ||
        strcmp(x->modifier, y->modifier) || x->data_len != y->data_len ||
        memcmp(x->data, y->data, sizeof x->data) || x->security_len != y->security_len)
      return 0;
  }
  return 1;
}

static ULONG enum_all(HGROUP g, snap *out) {
  HPEERENUM e = NULL;
  CHECK_HR(PeerGroupEnumRecords(g, NULL, &e), S_OK);
  return e ? collect(e, out) : 0;
}

static ULONG search_all(HGROUP g, snap *out) {
  HPEERENUM e = NULL;
  CHECK_HR(PeerGroupSearchRecords(g, SEARCH, &e), S_OK);
  return e ? collect(e, out) : 0;
}

static int remove_records_db(const char *path, const struct stat *sb, int flag, struct FTW *ftw) {
  (void)sb;
  if (flag == FTW_F && strncmp(path + ftw->base, "records.db", 10) == 0) unlink(path);
  return 0;
}

static void write_file(const char *path, const void *bytes, size_t n) {
  FILE *f = fopen(path, "wb");
  CHECK(f != NULL);
  if (!f) return;
  CHECK(fwrite(bytes, 1, n, f) == n);
  fclose(f);
}

/* Reads a whole file into a malloc'd buffer; *n is its size. */
static BYTE *read_file(const char *path, size_t *n) {
  FILE *f = fopen(path, "rb");
  *n = 0;
  if (!f) return NULL;
  BYTE *buf = malloc(1 << 20);
  *n = fread(buf, 1, 1 << 20, f);
  fclose(f);
  return buf;
}

int main(void) {
  PEER_VERSION_DATA v;
  PWSTR alice = NULL;
  HGROUP g = NULL;
  GUID id1, id2, id3;
  BYTE d1[] = {1, 2, 3}, d2[] = {4}, d3[] = {5, 6};
  snap before[MAX_RECORDS], found_before[MAX_RECORDS], after[MAX_RECORDS],
      found_after[MAX_RECORDS];
  const char *home = getenv("PEERGROUP_HOME");
  CHECK(home != NULL);
  if (!home) return summary("dbfile");
  char path[4096], bad_path[4096], missing_path[4096];
  snprintf(path, sizeof path, "%s/club.pgdb", home);
  snprintf(bad_path, sizeof bad_path, "%s/bad.pgdb", home);
  snprintf(missing_path, sizeof missing_path, "%s/missing.pgdb", home);
  WCHAR *wpath = widen(path), *wbad = widen(bad_path), *wmissing = widen(missing_path);

  CHECK_HR(PeerGroupExportDatabase((HGROUP)(intptr_t)0x1234, wpath), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);
  PEER_GROUP_PROPERTIES props;
  memset(&props, 0, sizeof props);
  props.dwSize = sizeof props;
  props.pwzClassifier = u"dbfile";
  props.pwzCreatorPeerName = alice;
  props.pwzFriendlyName = u"Database";
  props.ulMemberDataLifetime = 86400;
  props.ulPresenceLifetime = 600;
  props.dwAuthenticationSchemes = PEER_GROUP_GMC_AUTHENTICATION;
  CHECK_HR(PeerGroupCreate(&props, &g), S_OK);
  PWSTR group_name = NULL;
  {
    PEER_GROUP_PROPERTIES *p = NULL;
    CHECK_HR(PeerGroupGetProperties(g, &p), S_OK);
    if (p) {
      size_t n = 0;
      while (p->pwzGroupPeerName[n]) n++;
      group_name = calloc(n + 1, sizeof(WCHAR));
      memcpy(group_name, p->pwzGroupPeerName, n * sizeof(WCHAR));
      PeerFreeData(p);
    }
  }

  /* Three records; one updated, one deleted (its tombstone is exported too). */
  FILETIME exp = filetime_in(3600);
  PEER_RECORD r1 = new_record(ATTRS, d1, sizeof d1, exp);
  PEER_RECORD r2 = new_record(ATTRS, d2, sizeof d2, exp);
  PEER_RECORD r3 = new_record(NULL, d3, sizeof d3, exp);
  CHECK_HR(PeerGroupAddRecord(g, &r1, &id1), S_OK);
  CHECK_HR(PeerGroupAddRecord(g, &r2, &id2), S_OK);
  CHECK_HR(PeerGroupAddRecord(g, &r3, &id3), S_OK);
  {
    PEER_RECORD u = new_record(ATTRS, d3, sizeof d3, filetime_in(7200));
    u.id = id1;
    CHECK_HR(PeerGroupUpdateRecord(g, &u), S_OK);
  }
  CHECK_HR(PeerGroupDeleteRecord(g, &id3), S_OK);
  ULONG n_before = enum_all(g, before);
  ULONG n_found_before = search_all(g, found_before);
  CHECK(n_before == 2 && n_found_before == 2);

  /* Export refusals, then the export. */
  CHECK_HR(PeerGroupExportDatabase(g, NULL), E_INVALIDARG);
  CHECK_HR(PeerGroupExportDatabase(g, u""), E_INVALIDARG);
  CHECK_HR(PeerGroupExportDatabase((HGROUP)(intptr_t)0x4242, wpath), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupExportDatabase(g, wpath), S_OK);
  size_t size = 0;
  BYTE *bytes = read_file(path, &size);
  CHECK(bytes != NULL && size > 100);

  /* Wipe: close the group, remove its record database, open it again. */
  CHECK_HR(PeerGroupClose(g), S_OK);
  g = NULL;
  CHECK(nftw(home, remove_records_db, 16, FTW_PHYS) == 0);
  CHECK_HR(PeerGroupOpen(alice, group_name, NULL, &g), S_OK);
  snap empty[MAX_RECORDS];
  CHECK(enum_all(g, empty) == 0);

  /* Bad files change nothing. */
  CHECK_HR(PeerGroupImportDatabase(g, NULL), E_INVALIDARG);
  CHECK_HR(PeerGroupImportDatabase((HGROUP)(intptr_t)0x4242, wpath), PEER_E_INVALID_GROUP);
  CHECK_HR(PeerGroupImportDatabase(g, wmissing), HRESULT_FILE_NOT_FOUND);
  if (bytes) {
    write_file(bad_path, bytes, size / 2);
    CHECK_HR(PeerGroupImportDatabase(g, wbad), PEER_E_INVALID_DATABASE);
    write_file(bad_path, bytes, size - 1);
    CHECK_HR(PeerGroupImportDatabase(g, wbad), PEER_E_INVALID_DATABASE);
    BYTE flipped[4096];
    size_t m = size < sizeof flipped ? size : sizeof flipped;
    memcpy(flipped, bytes, m);
    flipped[m / 2] ^= 0x55;
    write_file(bad_path, flipped, m);
    CHECK_HR(PeerGroupImportDatabase(g, wbad), PEER_E_INVALID_DATABASE);
  }
  {
    const char garbage[] = "this is not a Peergroup database, just some bytes of text";
    write_file(bad_path, garbage, sizeof garbage);
    CHECK_HR(PeerGroupImportDatabase(g, wbad), PEER_E_INVALID_DATABASE);
  }
  CHECK(enum_all(g, empty) == 0);

  /* The import restores the same records, and the tombstone keeps the third deleted. */
  CHECK_HR(PeerGroupImportDatabase(g, wpath), S_OK);
  ULONG n_after = enum_all(g, after);
  ULONG n_found_after = search_all(g, found_after);
  CHECK(same(before, n_before, after, n_after));
  CHECK(same(found_before, n_found_before, found_after, n_found_after));
  {
    PEER_RECORD *got = NULL;
    CHECK_HR(PeerGroupGetRecord(g, &id3, &got), PEER_E_RECORD_NOT_FOUND);
    CHECK_HR(PeerGroupGetRecord(g, &id1, &got), S_OK);
    if (got) {
      CHECK(got->dwVersion == 2);
      PeerFreeData(got);
    }
  }
  /* Again: nothing changes. */
  CHECK_HR(PeerGroupImportDatabase(g, wpath), S_OK);
  {
    snap again[MAX_RECORDS];
    ULONG n_again = enum_all(g, again);
    CHECK(same(before, n_before, again, n_again));
    snap_free(again, n_again);
  }

  /* Once connected, both are refused and the file is left alone. */
  CHECK_HR(PeerGroupConnect(g), S_OK);
  CHECK_HR(PeerGroupExportDatabase(g, wbad), PEER_E_GROUP_IN_USE);
  CHECK_HR(PeerGroupImportDatabase(g, wpath), PEER_E_GROUP_IN_USE);
  {
    size_t bad_size = 0;
    BYTE *bad = read_file(bad_path, &bad_size);
    CHECK(bad != NULL && bad_size == sizeof "this is not a Peergroup database, just some bytes of text");
    free(bad);
  }

  CHECK_HR(PeerGroupClose(g), S_OK);
  CHECK_HR(PeerGroupExportDatabase(g, wpath), PEER_E_INVALID_GROUP);
  snap_free(before, n_before);
  snap_free(found_before, n_found_before);
  snap_free(after, n_after);
  snap_free(found_after, n_found_after);
  free(bytes);
  free(group_name);
  free(wpath);
  free(wbad);
  free(wmissing);
  PeerFreeData(alice);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  return summary("dbfile");
}
