// The awslogs log driver: each line as a CloudWatch Logs event, posted in
// batches with PutLogEvents (the JSON API, signed with AWS SigV4) as
// docker's awslogs driver does, the log stream (and group) made first when
// asked.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/error.h"
#include "logs/sigv4.h"
#include "runtime/log_sink.h"

namespace husk::logs {

// Options (--log-opt KEY=VALUE, docker's awslogs-KEY without "awslogs-"):
// region (default $AWS_REGION, $AWS_DEFAULT_REGION), group (required),
// stream (default the container's id), create-group (default false),
// create-stream (default true), endpoint (a URL instead of
// https://logs.REGION.amazonaws.com), multiline-pattern (a regular
// expression: a line that matches starts an event, the lines up to the
// next one are its message, each ending in '\n') or datetime-format (a
// strftime format at the start of a line, as docker turns it into such a
// pattern). Credentials come from credentials-endpoint (a path on ECS's
// container credentials endpoint, http://169.254.170.2; fetched again
// before they expire), else AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY and
// AWS_SESSION_TOKEN, else the [default] (or $AWS_PROFILE) profile of
// ~/.aws/credentials ($AWS_SHARED_CREDENTIALS_FILE). Batches go every 5 s or at 10000 events
// or 1 MiB, as docker's. Checks them, and makes the stream (and group)
// before the container starts; errors name the option.
Result<std::unique_ptr<runtime::LogSink>> open_awslogs(const std::vector<std::string>& opts,
                                                       const std::string& container_id);

// The credentials as the driver finds them, for tests.
Result<AwsCredentials> find_aws_credentials();

}  // namespace husk::logs
