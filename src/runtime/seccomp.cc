#include "runtime/seccomp.h"
