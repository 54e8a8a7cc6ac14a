#include "oci/tables.h"
