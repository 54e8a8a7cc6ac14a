#include "oci/config.h"
