// idshift-tool ROOT BASE: shifts the tree at ROOT to the 64K id range at
// BASE (common/idshift.h, what the nspawn flavor's private_users_ownership =
// "chown" runs) and prints "from=<old base> inodes=<n> changed=<n>". For
// tests/integration/test_ownership.py. Not installed.
#include <cstdio>
#include <cstdlib>

#include "common/idshift.h"

int main(int argc, char** argv) {
  if (argc != 3) {
    fprintf(stderr, "usage: idshift-tool ROOT BASE\n");
    return 2;
  }
  auto r = husk::idshift::shift_tree(argv[1], static_cast<uint32_t>(strtoul(argv[2], nullptr, 0)));
  if (!r) {
    fprintf(stderr, "idshift-tool: %s\n", r.error().str().c_str());
    return 1;
  }
  printf("from=%u inodes=%llu changed=%llu\n", r->from, static_cast<unsigned long long>(r->inodes),
         static_cast<unsigned long long>(r->changed));
  return 0;
}
