// The fluentd log driver: each line as a Fluentd Forward protocol v1 event
// [tag, time, record(, option)] in msgpack over TCP or a unix socket, with
// the record docker's fluentd driver sends (container_id, container_name,
// source, log, and the labels and env asked for).
#pragma once

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "runtime/log_sink.h"

namespace husk::runtime {

// Options (--log-opt KEY=VALUE): address (HOST[:PORT], tcp://HOST[:PORT],
// tls://HOST[:PORT], unix://PATH; default localhost:24224), tag (default
// the first 12 characters of the id), name (container_name; default the id),
// field=NAME=VALUE (repeatable: an extra record key), async (true: the
// destination is not needed at start; lines wait, up to buffer-limit bytes,
// while it is away), async-connect (docker's older name of async),
// buffer-limit (bytes, with k/m/g; default 1 MiB), retry-wait (a Go
// duration, default 1s; each retry waits 1.5 times longer, at most 60 s),
// max-retries (default 2147483647), sub-second-precision (the time as an
// EventTime with nanoseconds), request-ack (each event carries a chunk id
// and is sent again until fluentd acks it), write-timeout (a Go duration
// for a send or an ack; default none). Checks them and, unless async,
// connects; errors name the option. address tls://HOST[:PORT] needs `tls`,
// which husk-log gives: the server's certificate must chain to the
// system's CAs and name HOST, as docker's fluentd over tls.
using TlsConnect = std::function<Result<std::unique_ptr<LogConnection>>(
    const Endpoint& endpoint, const std::string& host, int connect_timeout_ms, long send_timeout_ms)>;
Result<std::unique_ptr<LogSink>> open_fluentd(const std::vector<std::string>& opts, const std::string& container_id,
                                              const TlsConnect& tls = {});

// The msgpack of one event, for tests: [tag, time, record] and, with a
// chunk id, the option map {"chunk": chunk}.
std::string fluentd_event(const std::string& tag, long long sec, long nsec, bool event_time,
                          const std::vector<std::pair<std::string, std::string>>& record, const std::string& chunk);

}  // namespace husk::runtime
