// ExecTaskStreaming (`nomad alloc exec`): a command run in a task's
// container through `husk exec`, its output, stdin and exit code relayed over
// the bidirectional stream; with pipes, or with a pty when the client asks
// for a tty (the master handed over a console socket, resizes applied).
#pragma once

#include <grpcpp/grpcpp.h>

#include "driver.grpc.pb.h"
#include "driver/tasks.h"

namespace husk::driver {

using ExecStream = grpc::ServerReaderWriter<hashicorp::nomad::plugins::drivers::proto::ExecTaskStreamingResponse,
                                            hashicorp::nomad::plugins::drivers::proto::ExecTaskStreamingRequest>;

grpc::Status exec_streaming(TaskManager& tasks, grpc::ServerContext* ctx, ExecStream* stream);

}  // namespace husk::driver
