/* The Identity Manager through the C ABI, under AddressSanitizer and LeakSanitizer:
 * create, list, rename, export, delete, import, key handles, and every documented error. */
#include <pthread.h>
#include "harness.h"

static ULONG count_identities(void) {
  HPEERENUM e = NULL;
  ULONG n = 0;
  CHECK_HR(PeerEnumIdentities(&e), S_OK);
  CHECK_HR(PeerGetItemCount(e, &n), S_OK);
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  return n;
}

/* Replaces the base64 text of <DATA> with `data` (ASCII), returning a new wide document. */
static WCHAR *with_data(const WCHAR *xml, const char *data) {
  char *s = narrow(xml);
  char *start = strstr(strstr(s, "<DATA"), "\">") + 2;
  char *end = strstr(start, "</DATA>");
  size_t len = (size_t)(start - s) + strlen(data) + strlen(end) + 1;
  char *out = malloc(len);
  snprintf(out, len, "%.*s%s%s", (int)(start - s), s, data, end);
  WCHAR *w = widen(out);
  free(out);
  free(s);
  return w;
}

/* Flips one base64 digit well inside the ciphertext of <DATA>. */
static WCHAR *tampered(const WCHAR *xml) {
  char *s = narrow(xml);
  char *start = strstr(strstr(s, "<DATA"), "\">") + 2;
  start[120] = start[120] == 'A' ? 'B' : 'A';
  WCHAR *w = widen(s);
  free(s);
  return w;
}

static void *create_three(void *arg) {
  (void)arg;
  for (int i = 0; i < 3; i++) {
    PWSTR name = NULL;
    HRESULT hr = PeerIdentityCreate(u"threaded", NULL, 0, &name);
    CHECK(hr == S_OK);
    PeerFreeData(name);
  }
  return NULL;
}

int main(void) {
  PEER_VERSION_DATA v = {0, 0};
  PWSTR alice = NULL, bob = NULL, anon = NULL, s = NULL;
  HPEERENUM e = NULL;

  /* Nothing works before startup. */
  CHECK_HR(PeerIdentityCreate(u"x", NULL, 0, &s), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerEnumIdentities(&e), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerGroupShutdown(), PEER_E_NOT_INITIALIZED);

  /* Version negotiation. */
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, NULL), E_POINTER);
  CHECK_HR(PeerGroupStartup(MAKEWORD(0, 9), &v), PEER_E_UNSUPPORTED_VERSION);
  CHECK_HR(PeerGroupStartup(MAKEWORD(1, 0), &v), S_OK);
  CHECK(v.wVersion == MAKEWORD(1, 0) && v.wHighestVersion == PEER_GROUP_VERSION);
  CHECK_HR(PeerGroupStartup(MAKEWORD(2, 0), &v), S_OK);
  CHECK(v.wVersion == PEER_GROUP_VERSION);
  CHECK_HR(PeerGroupShutdown(), S_OK); /* one of the two startups */

  /* Create. */
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, &alice), S_OK);
  CHECK_HR(PeerIdentityCreate(u"bob", u"Bob", 0, &bob), S_OK);
  CHECK_HR(PeerIdentityCreate(NULL, NULL, 0, &anon), S_OK);
  CHECK_HR(PeerIdentityCreate(u"alice", u"Alice", 0, NULL), E_POINTER);
  CHECK_HR(PeerIdentityCreate(u"has space", NULL, 0, &s), PEER_E_INVALID_CLASSIFIER);
  {
    WCHAR longc[200];
    for (int i = 0; i < 199; i++) longc[i] = u'c';
    longc[199] = 0;
    CHECK_HR(PeerIdentityCreate(longc, NULL, 0, &s), PEER_E_CLASSIFIER_TOO_LONG);
  }
  {
    char *a = narrow(alice);
    CHECK(strlen(a) == 40 + 1 + 5 && strcmp(a + 41, "alice") == 0 && a[40] == '.');
    free(a);
  }
  CHECK(count_identities() == 3);

  /* Enumerate in pages; the end is S_OK with a count of 0. */
  CHECK_HR(PeerEnumIdentities(&e), S_OK);
  {
    ULONG n = 2, left = 0, seen_alice = 0;
    PVOID *items = NULL;
    CHECK_HR(PeerGetItemCount(e, NULL), E_POINTER);
    CHECK_HR(PeerGetNextItem(e, &n, &items), S_OK);
    CHECK(n == 2 && items != NULL);
    for (ULONG i = 0; i < n; i++) {
      PEER_NAME_PAIR *p = (PEER_NAME_PAIR *)items[i];
      CHECK(p->dwSize == sizeof(PEER_NAME_PAIR));
      char *pn = narrow(p->pwzPeerName), *an = narrow(alice);
      if (strcmp(pn, an) == 0) seen_alice = weq(p->pwzFriendlyName, "Alice");
      free(pn);
      free(an);
    }
    PeerFreeData(items);
    CHECK_HR(PeerGetItemCount(e, &left), S_OK);
    CHECK(left == 1);
    n = 10;
    CHECK_HR(PeerGetNextItem(e, &n, &items), S_OK);
    CHECK(n == 1);
    if (n == 1) {
      PEER_NAME_PAIR *p = (PEER_NAME_PAIR *)items[0];
      char *pn = narrow(p->pwzPeerName), *an = narrow(alice);
      if (strcmp(pn, an) == 0) seen_alice = weq(p->pwzFriendlyName, "Alice");
      free(pn);
      free(an);
    }
    PeerFreeData(items);
    CHECK(seen_alice);
    n = 10;
    CHECK_HR(PeerGetNextItem(e, &n, &items), S_OK);
    CHECK(n == 0 && items == NULL);
  }
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  CHECK_HR(PeerEndEnumeration(e), E_INVALIDARG);          /* closed */
  CHECK_HR(PeerEndEnumeration((HPEERENUM)(intptr_t)0x12345), E_INVALIDARG); /* forged */
  CHECK_HR(PeerEndEnumeration(NULL), E_INVALIDARG);

  /* Friendly names. */
  CHECK_HR(PeerIdentityGetFriendlyName(alice, &s), S_OK);
  CHECK(weq(s, "Alice"));
  PeerFreeData(s);
  CHECK_HR(PeerIdentitySetFriendlyName(alice, u"Alicia"), S_OK);
  CHECK_HR(PeerIdentitySetFriendlyName(alice, NULL), E_INVALIDARG);
  CHECK_HR(PeerIdentitySetFriendlyName(alice, u""), PEER_E_INVALID_FRIENDLY_NAME);
  CHECK_HR(PeerIdentityGetFriendlyName(alice, &s), S_OK);
  CHECK(weq(s, "Alicia"));
  PeerFreeData(s);
  CHECK_HR(PeerIdentityGetFriendlyName(u"not a peer name", &s), PEER_E_INVALID_PEER_NAME);
  CHECK_HR(PeerIdentityGetFriendlyName(
               u"0123456789012345678901234567890123456789.nobody", &s),
           PEER_E_NOT_FOUND);

  /* Public XML, peer names, default identity. */
  CHECK_HR(PeerIdentityGetXML(bob, &s), S_OK);
  {
    char *x = narrow(s);
    CHECK(strncmp(x, "<PEERIDENTITYINFO VERSION=\"1.0\"><IDC", 36) == 0);
    free(x);
  }
  PeerFreeData(s);
  CHECK_HR(PeerCreatePeerName(NULL, u"Games", &s), S_OK);
  CHECK(weq(s, "0.Games"));
  PeerFreeData(s);
  CHECK_HR(PeerCreatePeerName(NULL, NULL, &s), E_INVALIDARG);
  CHECK_HR(PeerCreatePeerName(bob, u"files", &s), S_OK);
  {
    char *n = narrow(s), *b = narrow(bob);
    CHECK(strncmp(n, b, 41) == 0 && strcmp(n + 41, "files") == 0);
    free(n);
    free(b);
  }
  PeerFreeData(s);
  {
    PWSTR d1 = NULL, d2 = NULL;
    CHECK_HR(PeerIdentityGetDefault(&d1), S_OK);
    CHECK_HR(PeerIdentityGetDefault(&d2), S_OK);
    char *a = narrow(d1), *b = narrow(d2);
    CHECK(strcmp(a, b) == 0);
    free(a);
    free(b);
    CHECK_HR(PeerIdentityDelete(d1), S_OK);
    PeerFreeData(d1);
    PeerFreeData(d2);
  }

  /* Groups: none yet. */
  CHECK_HR(PeerEnumGroups(alice, &e), S_OK);
  {
    ULONG n = 0;
    CHECK_HR(PeerGetItemCount(e, &n), S_OK);
    CHECK(n == 0);
  }
  CHECK_HR(PeerEndEnumeration(e), S_OK);
  CHECK_HR(PeerEnumGroups(NULL, &e), E_INVALIDARG);

  /* Export, delete, refuse bad imports without changing anything, import. */
  PWSTR exported = NULL;
  CHECK_HR(PeerIdentityExport(alice, u"correct horse", &exported), S_OK);
  CHECK_HR(PeerIdentityExport(alice, NULL, &s), E_INVALIDARG);
  CHECK_HR(PeerIdentityDelete(alice), S_OK);
  CHECK_HR(PeerIdentityDelete(alice), PEER_E_NOT_FOUND);
  CHECK_HR(PeerIdentityGetFriendlyName(alice, &s), PEER_E_NOT_FOUND);
  ULONG before = count_identities();
  CHECK_HR(PeerIdentityImport(exported, u"battery staple", &s), 0x80070056);
  CHECK_HR(PeerIdentityImport(u"garbage", u"correct horse", &s), E_INVALIDARG);
  {
    WCHAR *bad = tampered(exported);
    CHECK_HR(PeerIdentityImport(bad, u"correct horse", &s), NTE_BAD_DATA);
    free(bad);
    bad = with_data(exported, "UEdJWA=="); /* "PGIX": the magic and nothing more */
    CHECK_HR(PeerIdentityImport(bad, u"correct horse", &s), NTE_BAD_LEN);
    free(bad);
    bad = with_data(exported, "Z2FyYmFnZSBnYXJiYWdl"); /* "garbage garbage" */
    CHECK_HR(PeerIdentityImport(bad, u"correct horse", &s), CRYPT_E_BAD_ENCODE);
    free(bad);
    char *x = narrow(exported);
    x[strlen(x) / 2] = 0; /* truncated document */
    bad = widen(x);
    free(x);
    CHECK_HR(PeerIdentityImport(bad, u"correct horse", &s), E_INVALIDARG);
    free(bad);
  }
  CHECK(count_identities() == before);
  PWSTR imported = NULL;
  CHECK_HR(PeerIdentityImport(exported, u"correct horse", &imported), S_OK);
  {
    char *a = narrow(alice), *b = narrow(imported);
    CHECK(strcmp(a, b) == 0);
    free(a);
    free(b);
  }
  CHECK_HR(PeerIdentityGetFriendlyName(imported, &s), S_OK);
  CHECK(weq(s, "Alicia"));
  PeerFreeData(s);
  CHECK_HR(PeerIdentityImport(exported, u"correct horse", &s), NTE_EXISTS);
  PeerFreeData(imported);
  PeerFreeData(exported);

  /* Key handles: a new identity from an existing key. */
  HCRYPTPROV key = 0;
  CHECK_HR(PeerIdentityGetCryptKey(bob, &key), S_OK);
  CHECK(key != 0);
  CHECK_HR(PeerIdentityCreate(u"bob", NULL, key, &s), PEER_E_ALREADY_EXISTS);
  PWSTR bob2 = NULL;
  CHECK_HR(PeerIdentityCreate(u"bob2", u"Bob again", key, &bob2), S_OK);
  {
    char *a = narrow(bob), *b = narrow(bob2);
    CHECK(strncmp(a, b, 40) == 0 && strcmp(b + 41, "bob2") == 0);
    free(a);
    free(b);
  }
  PeerFreeData(bob2);
  CHECK(CryptReleaseContext(key, 0) == 1);
  CHECK(CryptReleaseContext(key, 0) == 0);
  CHECK_HR(PeerIdentityCreate(u"bob3", NULL, key, &s), E_HANDLE);
  CHECK_HR(PeerIdentityCreate(u"bob3", NULL, (HCRYPTPROV)0xdeadbeef, &s), E_HANDLE);

  /* Several threads at once. */
  {
    ULONG start = count_identities();
    pthread_t t[4];
    for (int i = 0; i < 4; i++) pthread_create(&t[i], NULL, create_three, NULL);
    for (int i = 0; i < 4; i++) pthread_join(t[i], NULL);
    CHECK(count_identities() == start + 12);
  }

  /* Shutdown closes what is open; handles from before stay invalid after a restart. */
  CHECK_HR(PeerEnumIdentities(&e), S_OK);
  CHECK_HR(PeerGroupShutdown(), S_OK);
  CHECK_HR(PeerEndEnumeration(e), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerIdentityGetXML(bob, &s), PEER_E_NOT_INITIALIZED);
  CHECK_HR(PeerGroupStartup(PEER_GROUP_VERSION, &v), S_OK);
  CHECK_HR(PeerEndEnumeration(e), E_INVALIDARG);
  CHECK_HR(PeerGroupShutdown(), S_OK);

  PeerFreeData(NULL);
  PeerFreeData(alice);
  PeerFreeData(bob);
  PeerFreeData(anon);
  return summary("identity");
}
