#include "runtime/mounts.h"
