#include "runtime/caps.h"
