// The gelf log driver: each line as a GELF 1.1 message, docker's fields
// and all, over UDP (compressed, chunked past 1420 bytes) or TCP
// (uncompressed, null-byte delimited), as docker's gelf driver sends it.
#pragma once

#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "common/error.h"
#include "runtime/log_sink.h"

namespace husk::runtime {

// Options (--log-opt KEY=VALUE): address (udp://HOST:PORT or
// tcp://HOST:PORT; required), compression-type (gzip, zlib, none; default
// gzip; UDP only), compression-level (-1 to 9, default 1; UDP only),
// tcp-max-reconnect (default 3) and tcp-reconnect-delay (seconds, default
// 1; TCP only), tag (_tag; default the first 12 characters of the id),
// name (_container_name; default the id), image-id, image-name, command
// (_image_id, _image_name, _command; default empty), created (_created;
// default now, RFC 3339), field=NAME=VALUE (repeatable: an extra field
// _NAME, or NAME when it starts with '_'). Checks them and opens the
// socket; errors name the option.
Result<std::unique_ptr<LogSink>> open_gelf(const std::vector<std::string>& opts, const std::string& container_id);

// gzip (else zlib) of `in` in one go, at `level`; "" when zlib fails
// (never for memory it has). Also splunk's (husk-log).
std::string deflate_all(std::string_view in, bool gzip, int level);

}  // namespace husk::runtime
